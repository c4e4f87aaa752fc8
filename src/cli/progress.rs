//! Progress bars on stderr (drawn only when stderr is a terminal).

use indicatif::{ProgressBar, ProgressStyle};
use loadgen::{Progress, StopAfter};

/// A progress line for one load run: a bar over its duration or request count.
pub(crate) struct LoadProgress {
    bar: ProgressBar,
    by_time: bool,
}

impl LoadProgress {
    pub(crate) fn new(stop: &StopAfter, label: &str) -> Self {
        let (length, by_time) = match (stop.duration, stop.requests) {
            (Some(duration), _) => (duration.as_millis() as u64, true),
            (None, Some(requests)) => (requests, false),
            (None, None) => (stop.max_duration.as_millis() as u64, true),
        };
        let bar = ProgressBar::new(length).with_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_owned());
        Self { bar, by_time }
    }

    pub(crate) fn update(&self, progress: Progress) {
        let position = if self.by_time {
            progress.elapsed.as_millis() as u64
        } else {
            progress.replies
        };
        self.bar.set_position(position);
        let rate = progress.replies as f64 / progress.elapsed.as_secs_f64().max(1e-3);
        self.bar
            .set_message(format!("{} replies, {rate:.0}/s", progress.replies));
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A scenario's progress bar on stderr: `<name> [====>   ] done/total <message>`; the
/// caller sets its length, position and message at each step.
pub(crate) fn scenario_bar(name: &str) -> ProgressBar {
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(&format!("{name} [{{bar:30}}] {{pos}}/{{len}} {{msg}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    )
}
