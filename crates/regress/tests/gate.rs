//! The gate on fixture directories whose verdicts are known, and its errors.
//!
//! The gate tells the latest run's comparisons from older ones by modification times,
//! which a checkout does not keep: every test works on a copy of its fixture whose
//! times it sets (each baseline saved a minute before its comparison), never on the
//! committed files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use regress::{Mode, NotCompared, RegressError, Verdict};

/// When every fixture's baseline was saved.
const SAVED: Duration = Duration::from_secs(1_700_000_000);

fn at(seconds: Duration) -> SystemTime {
    SystemTime::UNIX_EPOCH + seconds
}

/// A criterion directory under the test's temporary directory, removed when dropped.
struct Tree(PathBuf);

impl Tree {
    fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "gate-{}-{}-{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A copy of the committed fixture `name`, every `base/` file saved at [`SAVED`] and
/// every other file written a minute later, as `--save-baseline base` then
/// `--baseline base` would leave them. A fixture that does not exist is not copied.
fn fixture(name: &str) -> Tree {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tree = Tree::new(name);
    if source.is_dir() {
        copy_with_times(&source, tree.path(), false).expect("copy the fixture");
    }
    tree
}

fn copy_with_times(source: &Path, target: &Path, in_baseline: bool) -> io::Result<()> {
    fs::create_dir_all(target)?;
    for entry in fs::read_dir(source)? {
        let entry = entry?;
        let to = target.join(entry.file_name());
        let in_baseline = in_baseline || entry.file_name() == "base";
        if entry.file_type()?.is_dir() {
            copy_with_times(&entry.path(), &to, in_baseline)?;
        } else {
            fs::copy(entry.path(), &to)?;
            let written = if in_baseline {
                SAVED
            } else {
                SAVED + Duration::from_secs(60)
            };
            set_modified(&to, at(written))?;
        }
    }
    Ok(())
}

fn set_modified(path: &Path, time: SystemTime) -> io::Result<()> {
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(time)
}

/// `{"point_estimate": …}` with its interval, as criterion writes an estimate.
fn estimate_json(point: f64, lower: f64, upper: f64) -> String {
    format!(
        r#"{{"confidence_interval": {{"confidence_level": 0.95, "lower_bound": {lower:?}, "upper_bound": {upper:?}}}, "point_estimate": {point:?}, "standard_error": 0.0}}"#
    )
}

/// `estimates.json` whose mean and median are both `point`, with its interval.
fn estimates_json(point: f64, lower: f64, upper: f64) -> String {
    let estimate = estimate_json(point, lower, upper);
    format!(r#"{{"mean": {estimate}, "median": {estimate}}}"#)
}

fn write(path: &Path, text: &str, time: SystemTime) {
    fs::create_dir_all(path.parent().expect("a parent")).expect("create the directory");
    fs::write(path, text).expect("write the file");
    set_modified(path, time).expect("set the modification time");
}

/// One benchmark `group/function/value` of a criterion directory built by a test.
struct Bench<'a> {
    root: &'a Path,
    id: &'a str,
}

impl Bench<'_> {
    fn directory(&self) -> PathBuf {
        self.root.join(self.id)
    }

    /// `new/`: measured at `time`, median `nanos` (±1 %).
    fn measured(self, nanos: f64, time: SystemTime) -> Self {
        let [group, function, value] = self.id.split('/').collect::<Vec<_>>()[..] else {
            panic!("{} is not group/function/value", self.id);
        };
        let ids = format!(
            r#"{{"group_id": "{group}", "function_id": "{function}", "value_str": "{value}", "throughput": null}}"#
        );
        let new = self.directory().join("new");
        write(&new.join("benchmark.json"), &ids, time);
        write(
            &new.join("estimates.json"),
            &estimates_json(nanos, nanos * 0.99, nanos * 1.01),
            time,
        );
        self
    }

    /// `base/`: saved at `time`, median `nanos` (±1 %).
    fn saved(self, nanos: f64, time: SystemTime) -> Self {
        write(
            &self.directory().join("base/estimates.json"),
            &estimates_json(nanos, nanos * 0.99, nanos * 1.01),
            time,
        );
        self
    }

    /// `change/`: compared at `time`, a relative change `point` within `lower … upper`.
    fn compared(self, point: f64, lower: f64, upper: f64, time: SystemTime) -> Self {
        write(
            &self.directory().join("change/estimates.json"),
            &estimates_json(point, lower, upper),
            time,
        );
        self
    }
}

/// A cached `target/criterion`: `fib_batch/*` saved as `base`, then compared (seq
/// unchanged, rayon +30 %), beside what earlier runs left, each slower by +50 %:
///
/// - `spawn/tokio/100`: a `change/` (against some other baseline), no `base/`;
/// - `ping_pong/{seq,tokio}/10000`: saved and compared in an earlier round, both older
///   than the latest save;
/// - `fib_batch/evloop/64x27`: measured by the latest save run only (which compared it
///   with the previous `base/` before overwriting it), so its `change/` is older than
///   its own `base/`;
/// - `fib_batch/threads/64x27`: saved, never compared;
/// - `ping_pong/rayon/10000`: compared by the latest run, unchanged, though its
///   reference (`seq`) was not;
/// - `spawn/seq/100`: measured, no baseline, no change: not listed at all.
fn cached_target() -> Tree {
    let tree = Tree::new("cached");
    let root = tree.path();
    let bench = |id: &'static str| Bench { root, id };
    let earlier = at(SAVED - Duration::from_secs(86_400));
    let earlier_compared = earlier + Duration::from_secs(60);
    let saved = at(SAVED);
    let compared = saved + Duration::from_secs(60);
    bench("fib_batch/seq/64x27")
        .saved(10e6, saved)
        .measured(10.1e6, compared)
        .compared(0.01, -0.01, 0.03, compared);
    bench("fib_batch/rayon/64x27")
        .saved(15e6, saved)
        .measured(19.5e6, compared)
        .compared(0.30, 0.25, 0.35, compared);
    bench("fib_batch/evloop/64x27")
        .measured(30e6, saved)
        .compared(0.50, 0.45, 0.55, saved - Duration::from_millis(5))
        .saved(30e6, saved);
    bench("fib_batch/threads/64x27")
        .measured(12e6, saved)
        .saved(12e6, saved);
    bench("spawn/tokio/100")
        .measured(3e3, compared)
        .compared(0.50, 0.45, 0.55, compared);
    bench("spawn/seq/100").measured(1e3, compared);
    for id in ["ping_pong/seq/10000", "ping_pong/tokio/10000"] {
        bench(id)
            .saved(2e6, earlier)
            .measured(3e6, earlier_compared)
            .compared(0.50, 0.45, 0.55, earlier_compared);
    }
    bench("ping_pong/rayon/10000")
        .saved(2e6, saved)
        .measured(2e6, compared)
        .compared(0.0, -0.02, 0.02, compared);
    tree
}

fn not_compared(id: &str, reason: &str) -> NotCompared {
    NotCompared {
        id: id.to_owned(),
        reason: reason.to_owned(),
    }
}

fn verdict_of(outcome: &regress::Outcome, id: &str) -> Verdict {
    outcome
        .comparisons
        .iter()
        .find(|comparison| comparison.id == id)
        .unwrap_or_else(|| panic!("{id} not compared: {outcome:#?}"))
        .verdict
}

#[test]
fn a_confirmed_regression_is_flagged_and_named() {
    let outcome =
        regress::compare(fixture("mixed").path(), "base", &Mode::Change, 0.05).expect("compare");
    assert!(outcome.regressed());
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/threads/64x27"),
        Verdict::Improved
    );
    // Within the threshold, and beyond it but not confirmed by the interval.
    assert_eq!(
        verdict_of(&outcome, "fib_batch/seq/64x27"),
        Verdict::Unchanged
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/evloop/64x27"),
        Verdict::Unchanged
    );
    // Regressions come first, and the table names them.
    assert_eq!(outcome.comparisons[0].id, "fib_batch/rayon/64x27");
    let table = outcome.markdown();
    assert!(
        table.contains("**Regression** — 1 regressed, 1 improved, 2 unchanged"),
        "{table}"
    );
    assert!(table.contains("| `fib_batch/rayon/64x27` | 15.00 ms | 19.50 ms | +30.0 % (+25.0 % … +35.0 %) | **regressed** |"), "{table}");
    // The threshold that would have stayed quiet: just the regression's lower bound.
    assert!(
        table.contains("Most confirmed slowdown: `fib_batch/rayon/64x27`, at least +25.0 %"),
        "{table}"
    );
}

#[test]
fn a_higher_threshold_lets_the_same_change_pass() {
    let outcome =
        regress::compare(fixture("mixed").path(), "base", &Mode::Change, 0.40).expect("compare");
    assert!(!outcome.regressed(), "{outcome:#?}");
    // Any threshold at or above the most confirmed slowdown passes; just below fails.
    let lower = outcome
        .most_confirmed_slowdown()
        .expect("rayon's slowdown")
        .change
        .lower;
    for (threshold, regressed) in [(lower, false), (lower - 0.001, true)] {
        let outcome = regress::compare(fixture("mixed").path(), "base", &Mode::Change, threshold)
            .expect("compare");
        assert_eq!(outcome.regressed(), regressed, "threshold {threshold}");
    }
}

#[test]
fn ratio_mode_ignores_a_uniformly_slower_machine_but_not_a_slower_style() {
    let change =
        regress::compare(fixture("drift").path(), "base", &Mode::Change, 0.05).expect("compare");
    assert_eq!(
        verdict_of(&change, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    let ratio = Mode::Ratio {
        reference: "seq".into(),
    };
    let outcome = regress::compare(fixture("drift").path(), "base", &ratio, 0.05).expect("compare");
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Unchanged
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/tokio/64x27"),
        Verdict::Regressed
    );
    // The reference itself is not compared with itself.
    assert!(
        outcome
            .comparisons
            .iter()
            .all(|comparison| !comparison.id.contains("/seq/"))
    );
    assert!(
        outcome
            .markdown()
            .contains("ratios to `seq` within each run")
    );
}

#[test]
fn unusable_input_is_an_error_that_says_what_to_run() {
    match regress::compare(
        fixture("missing-baseline").path(),
        "base",
        &Mode::Change,
        0.05,
    ) {
        Err(error @ RegressError::NoBaseline { .. }) => {
            assert!(
                error.to_string().contains("--save-baseline base"),
                "{error}"
            );
        }
        other => panic!("expected NoBaseline, got {other:?}"),
    }
    match regress::compare(fixture("no-change").path(), "base", &Mode::Change, 0.05) {
        Err(error @ RegressError::NoChange { .. }) => {
            assert!(error.to_string().contains("--baseline base"), "{error}");
        }
        other => panic!("expected NoChange, got {other:?}"),
    }
    assert!(matches!(
        regress::compare(
            fixture("does-not-exist").path(),
            "base",
            &Mode::Change,
            0.05
        ),
        Err(RegressError::NoBaseline { .. })
    ));
    let ratio = Mode::Ratio {
        reference: "no-such-style".into(),
    };
    assert!(matches!(
        regress::compare(fixture("mixed").path(), "base", &ratio, 0.05),
        Err(RegressError::NoReference(_))
    ));
}

#[test]
fn only_what_the_latest_run_compared_decides_the_verdict() {
    let tree = cached_target();
    let outcome = regress::compare(tree.path(), "base", &Mode::Change, 0.05).expect("compare");
    let compared: Vec<&str> = outcome
        .comparisons
        .iter()
        .map(|comparison| comparison.id.as_str())
        .collect();
    assert_eq!(
        compared,
        [
            "fib_batch/rayon/64x27",
            "fib_batch/seq/64x27",
            "ping_pong/rayon/10000"
        ],
        "{outcome:#?}"
    );
    assert_eq!(
        outcome.not_compared,
        [
            not_compared(
                "fib_batch/evloop/64x27",
                "not measured since the baseline was saved"
            ),
            not_compared("fib_batch/threads/64x27", "no comparison"),
            not_compared(
                "ping_pong/seq/10000",
                "not measured since the baseline was saved"
            ),
            not_compared(
                "ping_pong/tokio/10000",
                "not measured since the baseline was saved"
            ),
            not_compared("spawn/tokio/100", "no baseline `base`"),
        ]
    );
    // The real +30 % is still flagged, and is the most confirmed slowdown: the stale
    // +50 % ones are not.
    assert!(outcome.regressed());
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    assert_eq!(
        outcome
            .most_confirmed_slowdown()
            .map(|slowest| slowest.id.as_str()),
        Some("fib_batch/rayon/64x27")
    );
    let table = outcome.markdown();
    assert!(
        table.contains("**Regression** — 1 regressed, 0 improved, 2 unchanged"),
        "{table}"
    );
    assert!(
        table.contains(
            "\nNot compared (they do not decide the verdict):\n\n\
             - `fib_batch/evloop/64x27` — not measured since the baseline was saved\n\
             - `fib_batch/threads/64x27` — no comparison\n"
        ),
        "{table}"
    );
    assert!(
        table.contains("- `spawn/tokio/100` — no baseline `base`\n"),
        "{table}"
    );
    assert!(!table.contains("| `spawn/tokio/100`"), "{table}");
    assert!(!table.contains("spawn/seq/100"), "{table}");

    // Above the real change's lower bound, below the stale ones': nothing regressed.
    let outcome = regress::compare(tree.path(), "base", &Mode::Change, 0.40).expect("compare");
    assert!(!outcome.regressed(), "{}", outcome.markdown());
    assert_eq!(outcome.not_compared.len(), 5);
}

#[test]
fn ratio_mode_skips_a_group_whose_reference_was_not_compared() {
    let tree = cached_target();
    let ratio = Mode::Ratio {
        reference: "seq".into(),
    };
    let outcome = regress::compare(tree.path(), "base", &ratio, 0.05).expect("compare");
    // ping_pong's reference is stale, so ping_pong/rayon has nothing to be a ratio of;
    // fib_batch/evloop is stale itself.
    let compared: Vec<&str> = outcome
        .comparisons
        .iter()
        .map(|comparison| comparison.id.as_str())
        .collect();
    assert_eq!(compared, ["fib_batch/rayon/64x27"], "{outcome:#?}");
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    assert_eq!(outcome.not_compared.len(), 5);
}

#[test]
fn stale_comparisons_alone_are_no_comparison() {
    // The latest run saved `base` for fib_batch and compared nothing; ping_pong's
    // comparison is from an earlier round, spawn's is against another baseline.
    let tree = Tree::new("stale");
    let root = tree.path();
    let earlier = at(SAVED - Duration::from_secs(86_400));
    Bench {
        root,
        id: "ping_pong/tokio/10000",
    }
    .saved(2e6, earlier)
    .measured(3e6, earlier + Duration::from_secs(60))
    .compared(0.50, 0.45, 0.55, earlier + Duration::from_secs(60));
    Bench {
        root,
        id: "spawn/tokio/100",
    }
    .measured(3e3, at(SAVED))
    .compared(0.50, 0.45, 0.55, at(SAVED));
    Bench {
        root,
        id: "fib_batch/seq/64x27",
    }
    .measured(10e6, at(SAVED))
    .compared(0.50, 0.45, 0.55, at(SAVED))
    .saved(10e6, at(SAVED));
    match regress::compare(root, "base", &Mode::Change, 0.05) {
        Err(error @ RegressError::NoChange { .. }) => {
            assert!(error.to_string().contains("--baseline base"), "{error}");
        }
        other => panic!("expected NoChange, got {other:?}"),
    }
}

#[test]
fn a_comparison_as_old_as_its_own_baseline_is_from_the_save_run() {
    // Saved and compared within one tick of a coarse clock: the save run's own change.
    let tree = Tree::new("same-tick");
    let root = tree.path();
    let saved = at(SAVED);
    Bench {
        root,
        id: "fib_batch/seq/64x27",
    }
    .measured(10e6, saved)
    .compared(0.01, -0.01, 0.03, saved)
    .saved(10e6, saved);
    Bench {
        root,
        id: "fib_batch/rayon/64x27",
    }
    .saved(15e6, saved)
    .measured(19.5e6, saved + Duration::from_secs(1))
    .compared(0.30, 0.25, 0.35, saved + Duration::from_secs(1));
    let outcome = regress::compare(root, "base", &Mode::Change, 0.05).expect("compare");
    assert_eq!(outcome.comparisons.len(), 1, "{outcome:#?}");
    assert_eq!(
        outcome.not_compared,
        [not_compared(
            "fib_batch/seq/64x27",
            "not measured since the baseline was saved"
        )]
    );
    assert!(outcome.regressed());
}
