//! The CI regression gate behind `concbench regress`.
//!
//! criterion compares a run with a saved baseline but always exits 0. This crate turns
//! its comparison into a verdict per benchmark and a table for a pull request:
//!
//! - [`Mode::Change`] reads criterion's own change estimate (relative change of the
//!   median, with its 95 % confidence interval): *regressed* only when the whole
//!   interval lies above `+threshold`, *improved* when it lies wholly below
//!   `-threshold`, *unchanged* otherwise. Right when the baseline and the new run come
//!   from comparable machines, run close together.
//! - [`Mode::Ratio`] compares, in each run, every benchmark's median with the
//!   reference style's median in the same group and parameter, and gates on how that
//!   ratio moved. A machine that is uniformly slower (a noisy shared runner, another
//!   CPU) moves every time but not the ratios, so this mode holds where absolute times
//!   drift; it cannot see a change that slows every style alike, the reference included.
//!
//! Interval arithmetic is conservative: a ratio's interval spans the worst combination
//! of its two medians' intervals, so noise widens it rather than flagging it.
//!
//! Only the benchmarks that the latest `--baseline NAME` run compared are judged
//! ([`report::criterion::read_comparisons`]): a `change/` left in a cached `target/` by
//! an earlier run, or by another suite, is listed as not compared and never decides
//! the verdict.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use report::criterion::{self, Change, Estimate};

pub use report::criterion::NotCompared;

/// Why the gate could not judge.
#[derive(Debug, thiserror::Error)]
pub enum RegressError {
    /// No benchmark has the named baseline saved.
    #[error(
        "no baseline `{baseline}` in {criterion_dir}: run `cargo bench -- --save-baseline {baseline}` on the base commit first"
    )]
    NoBaseline {
        /// The baseline's name.
        baseline: String,
        /// Where it was looked for.
        criterion_dir: String,
    },
    /// The baseline exists but no run was compared with it.
    #[error(
        "no comparison with baseline `{baseline}` in {criterion_dir}: run `cargo bench -- --baseline {baseline}` on the change"
    )]
    NoChange {
        /// The baseline's name.
        baseline: String,
        /// Where it was looked for.
        criterion_dir: String,
    },
    /// The reference style of ratio mode was not measured.
    #[error(
        "ratio mode needs the reference style `{0}` in every compared group, and it ran in none"
    )]
    NoReference(String),
    /// Paired mode was asked of criterion's files: its rows come from
    /// `concbench compare` ([`paired`]).
    #[error("paired mode judges `concbench compare`'s rows, not criterion's files")]
    NotCriterion,
    /// criterion's files could not be read.
    #[error(transparent)]
    Read(#[from] report::ReportError),
}

/// What the gate compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// criterion's change estimate of each benchmark's median.
    Change,
    /// Each benchmark's median relative to this reference style's, in the same run.
    Ratio {
        /// The reference style (`seq`).
        reference: String,
    },
    /// The measurement engine's paired rounds of a base and a head build
    /// (`concbench compare`): each benchmark's head ÷ base per round, with a bootstrap
    /// interval over rounds.
    Paired {
        /// Rounds run and why they stopped, for the table's headline.
        summary: String,
    },
}

/// A benchmark's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// The whole interval lies above `+threshold`.
    Regressed,
    /// The whole interval lies below `-threshold`.
    Improved,
    /// Anything else: within the threshold, or not confirmed by the interval.
    Unchanged,
}

impl Verdict {
    /// The verdict as the table shows it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Regressed => "**regressed**",
            Self::Improved => "improved",
            Self::Unchanged => "unchanged",
        }
    }
}

/// One benchmark's comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// `group/style/parameter`.
    pub id: String,
    /// The baseline's median time (change mode) or ratio (ratio mode).
    pub baseline: Option<f64>,
    /// The new median time (change mode) or ratio (ratio mode).
    pub new: f64,
    /// The relative change, `+0.30` for 30 % slower, with its interval.
    pub change: Estimate,
    /// The verdict against the threshold.
    pub verdict: Verdict,
}

/// The gate's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// How the benchmarks were compared.
    pub mode: Mode,
    /// The threshold, as a fraction (`0.05` for 5 %).
    pub threshold: f64,
    /// Every comparison, regressions first.
    pub comparisons: Vec<Comparison>,
    /// The benchmarks with a baseline or a change that the latest run did not compare
    /// with the baseline, by id: listed, never judged.
    pub not_compared: Vec<NotCompared>,
}

impl Outcome {
    /// Whether any compared benchmark regressed: the gate fails. Benchmarks not compared
    /// by the latest run never count.
    pub fn regressed(&self) -> bool {
        self.comparisons
            .iter()
            .any(|comparison| comparison.verdict == Verdict::Regressed)
    }

    /// The benchmark whose change is most surely a slowdown (the highest lower bound of
    /// its interval), when any lower bound is above zero: at any threshold at or above
    /// that bound, nothing would be flagged. On an A/A comparison, this is the smallest
    /// threshold that stays quiet on this machine.
    pub fn most_confirmed_slowdown(&self) -> Option<&Comparison> {
        self.comparisons
            .iter()
            .filter(|comparison| comparison.change.lower > 0.0)
            .max_by(|a, b| a.change.lower.total_cmp(&b.change.lower))
    }

    /// The table for a pull-request comment.
    pub fn markdown(&self) -> String {
        let counts = |verdict| {
            self.comparisons
                .iter()
                .filter(|comparison| comparison.verdict == verdict)
                .count()
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "**{}** — {} regressed, {} improved, {} unchanged (threshold ±{:.1} %, {}).\n",
            if self.regressed() {
                "Regression"
            } else {
                "No regression"
            },
            counts(Verdict::Regressed),
            counts(Verdict::Improved),
            counts(Verdict::Unchanged),
            self.threshold * 100.0,
            match &self.mode {
                Mode::Change => "criterion's change estimates, 95 % intervals".to_owned(),
                Mode::Ratio { reference } => format!("ratios to `{reference}` within each run"),
                Mode::Paired { summary } => format!(
                    "base and head measured side by side in shuffled, alternating rounds, 95 % bootstrap intervals; {summary}"
                ),
            }
        );
        if let Some(slowest) = self.most_confirmed_slowdown() {
            let _ = writeln!(
                out,
                "Most confirmed slowdown: `{}`, at least {:+.1} %: a threshold of {:.1} % or more flags nothing here.\n",
                slowest.id,
                slowest.change.lower * 100.0,
                slowest.change.lower * 100.0,
            );
        }
        let (baseline, new) = match self.mode {
            Mode::Change | Mode::Paired { .. } => ("baseline", "new"),
            Mode::Ratio { .. } => ("baseline ratio", "new ratio"),
        };
        let _ = writeln!(
            out,
            "| benchmark | {baseline} | {new} | change (95 % interval) | verdict |"
        );
        out.push_str("|---|---:|---:|---:|---|\n");
        for comparison in &self.comparisons {
            let value = |value: f64| match self.mode {
                Mode::Change | Mode::Paired { .. } => format_nanos(value),
                Mode::Ratio { .. } => format!("{value:.3}"),
            };
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {:+.1} % ({:+.1} % … {:+.1} %) | {} |",
                comparison.id,
                comparison.baseline.map_or_else(|| "—".to_owned(), value),
                value(comparison.new),
                comparison.change.point * 100.0,
                comparison.change.lower * 100.0,
                comparison.change.upper * 100.0,
                comparison.verdict.label(),
            );
        }
        if !self.not_compared.is_empty() {
            out.push_str("\nNot compared (they do not decide the verdict):\n\n");
            for not_compared in &self.not_compared {
                let _ = writeln!(out, "- `{}` — {}", not_compared.id, not_compared.reason);
            }
        }
        out
    }
}

/// Compares what the latest `cargo bench -- --baseline <baseline>` left in
/// `criterion_dir`; what earlier runs left is listed in [`Outcome::not_compared`].
pub fn compare(
    criterion_dir: &Path,
    baseline: &str,
    mode: &Mode,
    threshold: f64,
) -> Result<Outcome, RegressError> {
    if !criterion::has_baseline(criterion_dir, baseline)? {
        return Err(RegressError::NoBaseline {
            baseline: baseline.to_owned(),
            criterion_dir: criterion_dir.display().to_string(),
        });
    }
    let criterion::Comparisons {
        compared: changes,
        not_compared,
    } = criterion::read_comparisons(criterion_dir, baseline)?;
    if changes.is_empty() {
        return Err(RegressError::NoChange {
            baseline: baseline.to_owned(),
            criterion_dir: criterion_dir.display().to_string(),
        });
    }
    let mut comparisons = match mode {
        Mode::Change => changes
            .iter()
            .map(|change| Comparison {
                id: change.benchmark.id(),
                baseline: change.baseline_median.map(|median| median.point),
                new: change.benchmark.median.point,
                change: change.median,
                verdict: classify(&change.median, threshold),
            })
            .collect(),
        Mode::Ratio { reference } => ratio_comparisons(&changes, reference, threshold)?,
        Mode::Paired { .. } => return Err(RegressError::NotCriterion),
    };
    comparisons.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.id.cmp(&b.id)));
    Ok(Outcome {
        mode: mode.clone(),
        threshold,
        comparisons,
        not_compared,
    })
}

/// The verdict on what `concbench compare` measured: every benchmark with an interval
/// is judged against `threshold`; one without (fewer than two rounds) and those only
/// one build runs are listed as not compared.
pub fn paired(run: &measure::rows::CompareRun, threshold: f64) -> Outcome {
    let mut comparisons = Vec::new();
    let mut not_compared: Vec<NotCompared> = run
        .not_compared
        .iter()
        .map(|row| NotCompared {
            id: row.id.clone(),
            reason: row.reason.clone(),
        })
        .collect();
    for row in &run.rows {
        let Some(change) = row.change else {
            not_compared.push(NotCompared {
                id: row.id.clone(),
                reason: "fewer than two rounds".into(),
            });
            continue;
        };
        let change = Estimate {
            point: change.point,
            lower: change.lower,
            upper: change.upper,
            confidence: measure::stats::CONFIDENCE,
        };
        comparisons.push(Comparison {
            id: row.id.clone(),
            baseline: Some(row.base_ns),
            new: row.head_ns,
            change,
            verdict: classify(&change, threshold),
        });
    }
    comparisons.sort_by(|a, b| a.verdict.cmp(&b.verdict).then_with(|| a.id.cmp(&b.id)));
    let widest = run
        .rows
        .iter()
        .filter_map(|row| row.change)
        .map(|change| (change.upper - change.lower) / 2.0)
        .fold(0.0, f64::max);
    let summary = format!(
        "{} rounds in {:.0} s ({}), widest interval ±{:.1} %, seed {}",
        run.rounds,
        run.elapsed_s,
        run.stop.describe(),
        widest * 100.0,
        run.seed
    );
    Outcome {
        mode: Mode::Paired { summary },
        threshold,
        comparisons,
        not_compared,
    }
}

/// The verdict for a relative change with its interval.
pub fn classify(change: &Estimate, threshold: f64) -> Verdict {
    if change.lower > threshold {
        Verdict::Regressed
    } else if change.upper < -threshold {
        Verdict::Improved
    } else {
        Verdict::Unchanged
    }
}

/// Ratio mode: each benchmark's median over its reference's, in the baseline and in the
/// new run, and how that ratio moved.
fn ratio_comparisons(
    changes: &[Change],
    reference: &str,
    threshold: f64,
) -> Result<Vec<Comparison>, RegressError> {
    let mut cohorts: BTreeMap<(String, Option<String>), Vec<&Change>> = BTreeMap::new();
    for change in changes {
        let benchmark = &change.benchmark;
        cohorts
            .entry((benchmark.group.clone(), benchmark.value.clone()))
            .or_default()
            .push(change);
    }
    let mut comparisons = Vec::new();
    let mut saw_reference = false;
    for cohort in cohorts.values() {
        let Some(reference_change) = cohort
            .iter()
            .find(|change| change.benchmark.function == reference)
        else {
            continue;
        };
        saw_reference = true;
        let reference_baseline = reference_change.baseline_median;
        for change in cohort
            .iter()
            .filter(|change| change.benchmark.function != reference)
        {
            let (Some(own_baseline), Some(reference_baseline)) =
                (change.baseline_median, reference_baseline)
            else {
                continue;
            };
            let before = divide(&own_baseline, &reference_baseline);
            let after = divide(&change.benchmark.median, &reference_change.benchmark.median);
            let moved = Estimate {
                point: after.point / before.point - 1.0,
                lower: after.lower / before.upper - 1.0,
                upper: after.upper / before.lower - 1.0,
                confidence: after.confidence,
            };
            comparisons.push(Comparison {
                id: change.benchmark.id(),
                baseline: Some(before.point),
                new: after.point,
                change: moved,
                verdict: classify(&moved, threshold),
            });
        }
    }
    if saw_reference {
        Ok(comparisons)
    } else {
        Err(RegressError::NoReference(reference.to_owned()))
    }
}

/// `a / b` with the widest interval the two intervals allow.
fn divide(a: &Estimate, b: &Estimate) -> Estimate {
    Estimate {
        point: a.point / b.point,
        lower: a.lower / b.upper,
        upper: a.upper / b.lower,
        confidence: a.confidence.min(b.confidence),
    }
}

fn format_nanos(nanos: f64) -> String {
    report::results::format_nanos(nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimate(point: f64, lower: f64, upper: f64) -> Estimate {
        Estimate {
            point,
            lower,
            upper,
            confidence: 0.95,
        }
    }

    #[test]
    fn only_a_whole_interval_beyond_the_threshold_counts() {
        assert_eq!(
            classify(&estimate(0.30, 0.25, 0.35), 0.05),
            Verdict::Regressed
        );
        assert_eq!(
            classify(&estimate(0.30, 0.04, 0.55), 0.05),
            Verdict::Unchanged
        );
        assert_eq!(
            classify(&estimate(-0.30, -0.35, -0.25), 0.05),
            Verdict::Improved
        );
        assert_eq!(
            classify(&estimate(0.01, -0.02, 0.04), 0.05),
            Verdict::Unchanged
        );
        // On the threshold is not beyond it.
        assert_eq!(
            classify(&estimate(0.06, 0.05, 0.07), 0.05),
            Verdict::Unchanged
        );
    }

    #[test]
    fn ratio_intervals_are_conservative() {
        let ratio = divide(&estimate(10.0, 9.0, 11.0), &estimate(5.0, 4.0, 6.0));
        assert_eq!((ratio.point, ratio.lower, ratio.upper), (2.0, 1.5, 2.75));
    }

    #[test]
    fn paired_rows_are_judged_and_the_rest_listed() {
        use measure::rows::{CompareRow, CompareRun, NotCompared as EngineSkip};
        use measure::stats::{Interval, StopReason, Stopping};
        let row = |id: &str, change: Option<(f64, f64, f64)>| CompareRow {
            id: id.to_owned(),
            rounds: 12,
            iterations_per_sample: 3,
            base_ns: 1e6,
            head_ns: 1.05e6,
            base_cpu_ns: 2e6,
            head_cpu_ns: 2.1e6,
            change: change.map(|(point, lower, upper)| Interval {
                point,
                lower,
                upper,
            }),
            stop: StopReason::Budget,
        };
        let run = CompareRun {
            schema_version: measure::rows::SCHEMA_VERSION,
            base: "base".into(),
            head: "head".into(),
            seed: 9,
            workers: 2,
            stopping: Stopping::default(),
            address_layout: "fixed".into(),
            rounds: 12,
            stop: StopReason::Budget,
            elapsed_s: 30.0,
            rows: vec![
                row("fib_batch/rayon/64x27", Some((0.047, 0.035, 0.060))),
                row("fib_batch/seq/64x27", Some((0.01, -0.02, 0.04))),
                row("fib_batch/pool/64x27", None),
            ],
            not_compared: vec![EngineSkip {
                id: "spawn/process/10000".into(),
                reason: "head: not attempted".into(),
            }],
        };
        let outcome = paired(&run, 0.03);
        assert!(outcome.regressed());
        let verdicts: Vec<(&str, Verdict)> = outcome
            .comparisons
            .iter()
            .map(|comparison| (comparison.id.as_str(), comparison.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("fib_batch/rayon/64x27", Verdict::Regressed),
                ("fib_batch/seq/64x27", Verdict::Unchanged)
            ]
        );
        let skipped: Vec<&str> = outcome
            .not_compared
            .iter()
            .map(|row| row.id.as_str())
            .collect();
        assert_eq!(skipped, ["spawn/process/10000", "fib_batch/pool/64x27"]);
        let table = outcome.markdown();
        assert!(
            table.contains("shuffled, alternating rounds") && table.contains("seed 9"),
            "{table}"
        );
        assert!(table.contains("+4.7 % (+3.5 % … +6.0 %)"), "{table}");
        // At 5 % the same interval does not lie wholly above the threshold.
        assert!(!paired(&run, 0.05).regressed());
    }
}
