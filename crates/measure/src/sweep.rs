//! The core-count sweep of `concbench measure`: which worker counts a run measures.
//!
//! Without `--workers`, the sweep is 1, 2, … up to the cores (`CONCBENCH_WORKERS` when
//! set, else the available parallelism), plus one **oversubscribed** point at twice the
//! cores: on a 2-core machine, 1, 2 and 4. The default worker count (the cores) keeps
//! the full per-cohort budget; every other point runs with the smaller sweep budget.

use std::time::Duration;

/// One worker count of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPoint {
    /// Workers per style.
    pub workers: usize,
    /// More workers than cores.
    pub oversubscribed: bool,
    /// The run at the default worker count: the report's per-group tables use it, and
    /// it keeps the full budget.
    pub primary: bool,
}

impl SweepPoint {
    /// The per-cohort budget of this point: `budget` for the primary run, `sweep_budget`
    /// for the others.
    pub fn budget(&self, budget: Duration, sweep_budget: Duration) -> Duration {
        if self.primary { budget } else { sweep_budget }
    }

    /// `4 workers (oversubscribed: 2 per core)`, `2 workers`.
    pub fn label(&self, cores: usize) -> String {
        if self.oversubscribed {
            format!(
                "{} workers (oversubscribed: {:.0} per core of {cores})",
                self.workers,
                self.workers as f64 / cores.max(1) as f64
            )
        } else {
            format!("{} workers", self.workers)
        }
    }
}

/// Parses `--workers`: one count, or a comma-separated list (`1,2,4`); every count
/// positive, none twice.
pub fn parse_workers(text: &str) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let count: usize = part
            .parse()
            .ok()
            .filter(|count| *count > 0)
            .ok_or_else(|| format!("--workers {text:?}: {part:?} is not a positive integer"))?;
        if counts.contains(&count) {
            return Err(format!("--workers {text:?}: {count} is listed twice"));
        }
        counts.push(count);
    }
    Ok(counts)
}

/// The default sweep's worker counts: `1..=cores`, then `2 × cores`.
pub fn default_counts(cores: usize) -> Vec<usize> {
    let cores = cores.max(1);
    (1..=cores).chain([2 * cores]).collect()
}

/// The sweep of `counts` on `cores` cores. The primary point is the one at `cores` (the
/// default worker count); a list without it has as primary its largest count within the
/// cores, else its first. A single count is its own primary.
pub fn plan(counts: &[usize], cores: usize) -> Vec<SweepPoint> {
    let primary = counts
        .iter()
        .position(|&count| count == cores)
        .or_else(|| {
            counts
                .iter()
                .enumerate()
                .filter(|(_, count)| **count <= cores)
                .max_by_key(|(_, count)| **count)
                .map(|(index, _)| index)
        })
        .unwrap_or(0);
    counts
        .iter()
        .enumerate()
        .map(|(index, &workers)| SweepPoint {
            workers,
            oversubscribed: workers > cores,
            primary: index == primary,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_count_or_a_list() {
        assert_eq!(parse_workers("2"), Ok(vec![2]));
        assert_eq!(parse_workers("1,2,4"), Ok(vec![1, 2, 4]));
        assert_eq!(parse_workers(" 1, 3 "), Ok(vec![1, 3]));
        for bad in ["", "0", "1,,2", "two", "1,-2", "2,2"] {
            assert!(parse_workers(bad).is_err(), "{bad:?}");
        }
        assert!(parse_workers("2,2").unwrap_err().contains("twice"));
    }

    #[test]
    fn the_default_sweep_counts_to_the_cores_then_oversubscribes() {
        assert_eq!(default_counts(2), [1, 2, 4]);
        assert_eq!(default_counts(4), [1, 2, 3, 4, 8]);
        assert_eq!(default_counts(1), [1, 2]);
        let points = plan(&default_counts(2), 2);
        let flags: Vec<(usize, bool, bool)> = points
            .iter()
            .map(|point| (point.workers, point.oversubscribed, point.primary))
            .collect();
        assert_eq!(
            flags,
            [(1, false, false), (2, false, true), (4, true, false)]
        );
        assert_eq!(
            points[2].label(2),
            "4 workers (oversubscribed: 2 per core of 2)"
        );
        assert_eq!(points[0].label(2), "1 workers");
        let (budget, sweep) = (Duration::from_secs(90), Duration::from_secs(20));
        assert_eq!(points[1].budget(budget, sweep), budget);
        assert_eq!(points[0].budget(budget, sweep), sweep);
        assert_eq!(points[2].budget(budget, sweep), sweep);
    }

    #[test]
    fn a_single_count_keeps_the_full_budget_and_lists_pick_a_primary() {
        let [single] = plan(&[3], 2)[..] else {
            panic!("one point");
        };
        assert!(single.primary && single.oversubscribed);
        // Without the cores in the list: the largest count within them.
        let points = plan(&[4, 1], 2);
        assert!(points[1].primary && !points[0].primary, "{points:?}");
    }
}
