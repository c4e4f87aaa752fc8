//! The numbers a report shows: each benchmark with its ratio to a reference.

use std::collections::BTreeMap;

use workloads::Workload;

use crate::criterion::Benchmark;

/// What a row's ratio is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatioBase {
    /// The baseline style (`seq`) at the same parameter: `baseline time / time`, so
    /// 2.0 means twice as fast as the baseline.
    Baseline,
    /// The fastest style at the same parameter: `best time / time`, at most 1.0. Used
    /// for network rows, and wherever the baseline did not run.
    Best,
}

impl RatioBase {
    /// The column heading for ratios of this base.
    pub fn label(self, baseline: &str) -> String {
        match self {
            Self::Baseline => format!("vs {baseline}"),
            Self::Best => "vs best".to_owned(),
        }
    }
}

/// One benchmark with what the report derives from it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    /// The benchmark as criterion measured it.
    pub benchmark: Benchmark,
    /// The ratio to its base (see [`RatioBase`]).
    pub ratio: f64,
    /// What the ratio is relative to.
    pub ratio_base: RatioBase,
    /// Elements per second at the median time, when the group declared elements.
    pub elements_per_second: Option<f64>,
}

/// Groups whose ratios are always to the best style: in network rows the baseline is
/// not a comparable server (it serves one connection at a time).
fn ratio_to_best(group: &str) -> bool {
    group == Workload::Throughput.name() || group == Workload::HogLatency.name()
}

/// Derives every row, grouped by (group, parameter) and ordered by group, parameter,
/// then fastest first.
pub fn result_rows(benchmarks: &[Benchmark], baseline: &str) -> Vec<ResultRow> {
    let mut cohorts: BTreeMap<(String, Option<String>), Vec<&Benchmark>> = BTreeMap::new();
    for benchmark in benchmarks {
        cohorts
            .entry((benchmark.group.clone(), benchmark.value.clone()))
            .or_default()
            .push(benchmark);
    }
    let mut rows = Vec::with_capacity(benchmarks.len());
    for ((group, _value), mut cohort) in cohorts {
        cohort.sort_by(|a, b| a.median.point.total_cmp(&b.median.point));
        let baseline_time = cohort
            .iter()
            .find(|benchmark| benchmark.function == baseline)
            .map(|benchmark| benchmark.median.point);
        let best_time = cohort
            .first()
            .map_or(f64::NAN, |benchmark| benchmark.median.point);
        let (base, ratio_base) = match baseline_time {
            Some(time) if !ratio_to_best(&group) => (time, RatioBase::Baseline),
            _ => (best_time, RatioBase::Best),
        };
        for benchmark in cohort {
            rows.push(ResultRow {
                ratio: base / benchmark.median.point,
                ratio_base,
                elements_per_second: benchmark
                    .elements
                    .map(|elements| elements as f64 / (benchmark.median.point * 1e-9)),
                benchmark: benchmark.clone(),
            });
        }
    }
    rows
}

/// A time in nanoseconds as a short human string.
pub fn format_nanos(nanos: f64) -> String {
    match nanos {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e6 => format!("{:.1} µs", n / 1e3),
        n if n < 1e9 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

/// A rate as a short human string: `12.3 k/s`.
pub fn format_rate(per_second: f64) -> String {
    match per_second {
        r if r < 1e3 => format!("{r:.0}/s"),
        r if r < 1e6 => format!("{:.1} k/s", r / 1e3),
        r => format!("{:.2} M/s", r / 1e6),
    }
}

/// A benchmark for unit tests: `median_ns` with a ±10 % interval, 100 elements.
#[cfg(test)]
pub(crate) fn test_benchmark(
    group: &str,
    function: &str,
    value: &str,
    median_ns: f64,
) -> Benchmark {
    let estimate = crate::criterion::Estimate {
        point: median_ns,
        lower: median_ns * 0.9,
        upper: median_ns * 1.1,
        confidence: 0.95,
    };
    Benchmark {
        group: group.into(),
        function: function.into(),
        value: Some(value.into()),
        elements: Some(100),
        median: estimate,
        mean: estimate,
        directory: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use test_benchmark as benchmark;

    #[test]
    fn ratios_are_to_the_baseline_at_the_same_parameter() {
        let rows = result_rows(
            &[
                benchmark("fib_batch", "seq", "a", 200.0),
                benchmark("fib_batch", "rayon", "a", 100.0),
                benchmark("fib_batch", "evloop", "a", 400.0),
                benchmark("fib_batch", "seq", "b", 10.0),
                benchmark("fib_batch", "rayon", "b", 20.0),
            ],
            "seq",
        );
        let ratio = |function: &str, value: &str| {
            rows.iter()
                .find(|row| {
                    row.benchmark.function == function
                        && row.benchmark.value.as_deref() == Some(value)
                })
                .map(|row| (row.ratio, row.ratio_base))
                .unwrap()
        };
        assert_eq!(ratio("rayon", "a"), (2.0, RatioBase::Baseline));
        assert_eq!(ratio("evloop", "a"), (0.5, RatioBase::Baseline));
        assert_eq!(ratio("seq", "a"), (1.0, RatioBase::Baseline));
        assert_eq!(ratio("rayon", "b"), (0.5, RatioBase::Baseline));
        // Fastest first within a cohort.
        assert_eq!(rows[0].benchmark.function, "rayon");
    }

    #[test]
    fn without_the_baseline_or_for_network_rows_ratios_are_to_the_best() {
        let rows = result_rows(
            &[
                benchmark("spawn", "tokio", "x", 50.0),
                benchmark("spawn", "threads", "x", 200.0),
                benchmark("throughput", "seq", "c1", 100.0),
                benchmark("throughput", "evloop", "c1", 80.0),
            ],
            "seq",
        );
        for row in &rows {
            assert_eq!(row.ratio_base, RatioBase::Best, "{row:?}");
        }
        let threads = rows
            .iter()
            .find(|row| row.benchmark.function == "threads")
            .unwrap();
        assert_eq!(threads.ratio, 0.25);
        let seq = rows
            .iter()
            .find(|row| row.benchmark.function == "seq")
            .unwrap();
        assert_eq!(seq.ratio, 0.8);
    }

    #[test]
    fn throughput_is_elements_over_the_median() {
        let rows = result_rows(&[benchmark("spawn", "tokio", "x", 1e6)], "seq");
        // 100 elements in a millisecond.
        assert_eq!(rows[0].elements_per_second, Some(100_000.0));
    }

    #[test]
    fn formats_times_and_rates() {
        assert_eq!(format_nanos(512.0), "512 ns");
        assert_eq!(format_nanos(1_500.0), "1.5 µs");
        assert_eq!(format_nanos(29_077_430.0), "29.08 ms");
        assert_eq!(format_nanos(2.5e9), "2.50 s");
        assert_eq!(format_rate(950.0), "950/s");
        assert_eq!(format_rate(160_705.0), "160.7 k/s");
        assert_eq!(format_rate(2.5e6), "2.50 M/s");
    }
}
