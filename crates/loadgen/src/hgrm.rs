//! HdrHistogram's percentile distribution as text: the `.hgrm` format that Java's
//! `AbstractHistogram.outputPercentileDistribution` writes and HdrHistogram's plotter
//! (`plotFiles.html`, `hdr-plot`) reads.
//!
//! ```text
//!        Value     Percentile TotalCount 1/(1-Percentile)
//!
//!        0.101 0.000000000000          1           1.00
//!        …
//!       20.015 1.000000000000      10000
//! #[Mean    =        0.379, StdDeviation   =        1.772]
//! #[Max     =       20.015, Total count    =        10000]
//! #[Buckets =           20, SubBuckets     =         2048]
//! ```
//!
//! Values are divided by the `value_unit_scaling` given to
//! [`write_percentile_distribution`]: the load generator records microseconds, and its
//! files are written with a scaling of 1000, so their values are **milliseconds**, the
//! unit the plotter expects by default. Percentiles are written as fractions (0.99, not
//! 99), as Java writes them.

use std::fmt;
use std::io::{self, Write};

use hdrhistogram::Counter;
use hdrhistogram::Histogram;

/// The percentile ticks per half distance to 100 % that Java's
/// `outputPercentileDistribution(out, 1000.0)` uses (and `hgrm` files usually have).
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// The scaling that turns the load generator's microseconds into the milliseconds of an
/// `.hgrm` file.
pub const MICROS_TO_MILLIS: f64 = 1000.0;

/// The header line, as Java formats it (`%12s %14s %10s %14s`).
pub const HEADER: &str = "       Value     Percentile TotalCount 1/(1-Percentile)";

/// Writes `histogram`'s percentile distribution to `writer` exactly as Java's
/// `outputPercentileDistribution(writer, 5, value_unit_scaling)` does: the header and a
/// blank line; a row per percentile tick (five per half distance to 100 %) with the value
/// (divided by `value_unit_scaling`, as many decimals as the histogram has significant
/// digits), the percentile as a fraction, the count at or below the value and
/// 1/(1 − percentile) (left out on the last row, at 100 %); then the mean, standard
/// deviation, max, total count, buckets and sub-buckets.
pub fn write_percentile_distribution<T: Counter>(
    histogram: &Histogram<T>,
    mut writer: impl Write,
    value_unit_scaling: f64,
) -> io::Result<()> {
    let digits = usize::from(histogram.sigfig());
    let scaled = |value: u64| value as f64 / value_unit_scaling;
    writeln!(writer, "{HEADER}\n")?;
    if !histogram.is_empty() {
        let mut total: u64 = 0;
        for step in histogram.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total = total.saturating_add(step.count_since_last_iteration());
            let quantile = step.quantile_iterated_to();
            let value = scaled(step.value_iterated_to());
            if quantile < 1.0 {
                writeln!(
                    writer,
                    "{value:12.digits$} {quantile:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - quantile)
                )?;
            } else {
                writeln!(writer, "{value:12.digits$} {quantile:2.12} {total:10}")?;
            }
        }
    }
    let (mean, deviation) = if histogram.is_empty() {
        (0.0, 0.0)
    } else {
        (histogram.mean(), histogram.stdev())
    };
    writeln!(
        writer,
        "#[Mean    = {:12.digits$}, StdDeviation   = {:12.digits$}]",
        mean / value_unit_scaling,
        deviation / value_unit_scaling
    )?;
    let max = if histogram.is_empty() {
        0
    } else {
        histogram.max()
    };
    writeln!(
        writer,
        "#[Max     = {:12.digits$}, Total count    = {:12}]",
        scaled(max),
        histogram.len()
    )?;
    writeln!(
        writer,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        sub_bucket_count(histogram.sigfig())
    )
}

/// The sub-buckets per bucket of a histogram with `sigfig` significant digits:
/// `2^ceil(log2(2 × 10^sigfig))`, as HdrHistogram sizes them (2048 at three digits).
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2 * 10_u64.pow(u32::from(sigfig));
    largest.next_power_of_two()
}

/// A percentile distribution read back from its text.
#[derive(Debug, Clone, PartialEq)]
pub struct PercentileDistribution {
    /// Each row: the value (in the file's unit), the percentile (a fraction) and the
    /// count at or below the value.
    pub rows: Vec<(f64, f64, u64)>,
    /// `#[Mean = …`, in the file's unit.
    pub mean: f64,
    /// `StdDeviation = …`, in the file's unit.
    pub std_deviation: f64,
    /// `#[Max = …`, in the file's unit.
    pub max: f64,
    /// `Total count = …`.
    pub total_count: u64,
    /// `#[Buckets = …`.
    pub buckets: u64,
    /// `SubBuckets = …`.
    pub sub_buckets: u64,
}

impl PercentileDistribution {
    /// The value of the first row at or beyond `quantile` (0.99 for the p99), as a reader
    /// of the file finds it; `None` when no row reaches it.
    pub fn value_at_quantile(&self, quantile: f64) -> Option<f64> {
        self.rows
            .iter()
            .find(|(_, percentile, _)| *percentile >= quantile)
            .map(|(value, _, _)| *value)
    }
}

/// Why a text is not a percentile distribution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HgrmParseError {
    /// The 1-based line where reading failed (0: the text ended early).
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

impl fmt::Display for HgrmParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for HgrmParseError {}

/// Reads what [`write_percentile_distribution`] (or Java's
/// `outputPercentileDistribution`, in its plain, non-CSV form) wrote: the header, the
/// rows, and the three footer lines.
pub fn parse_percentile_distribution(text: &str) -> Result<PercentileDistribution, HgrmParseError> {
    let error = |line: usize, message: String| HgrmParseError { line, message };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    match lines.next() {
        Some((_, line)) if line.trim() == HEADER.trim() => {}
        Some((number, line)) => return Err(error(number, format!("not the header: {line:?}"))),
        None => return Err(error(0, "empty".into())),
    }
    let mut rows = Vec::new();
    let mut footer: Vec<(usize, &str)> = Vec::new();
    for (number, line) in lines {
        if line.trim().is_empty() && footer.is_empty() {
            continue;
        }
        if line.starts_with("#[") {
            footer.push((number, line));
            continue;
        }
        if !footer.is_empty() {
            return Err(error(number, format!("a row after the footer: {line:?}")));
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !(3..=4).contains(&fields.len()) {
            return Err(error(number, format!("not a row: {line:?}")));
        }
        let number_at = |index: usize| -> Result<f64, HgrmParseError> {
            fields[index]
                .parse::<f64>()
                .map_err(|parse| error(number, format!("{:?}: {parse}", fields[index])))
        };
        let count = fields[2]
            .parse::<u64>()
            .map_err(|parse| error(number, format!("{:?}: {parse}", fields[2])))?;
        rows.push((number_at(0)?, number_at(1)?, count));
    }
    let [(mean_line, mean), (max_line, max), (buckets_line, buckets)] = footer[..] else {
        return Err(error(
            footer.first().map_or(0, |(number, _)| *number),
            format!("{} footer lines, not 3", footer.len()),
        ));
    };
    fn pair<'a>(
        number: usize,
        line: &'a str,
        first: &str,
        second: &str,
    ) -> Result<(&'a str, &'a str), HgrmParseError> {
        footer_pair(line, first, second).ok_or_else(|| HgrmParseError {
            line: number,
            message: format!("not {first}: {line:?}"),
        })
    }
    let (mean, std_deviation) = pair(mean_line, mean, "Mean", "StdDeviation")?;
    let (max, total_count) = pair(max_line, max, "Max", "Total count")?;
    let (buckets, sub_buckets) = pair(buckets_line, buckets, "Buckets", "SubBuckets")?;
    let whole = |number: usize, value: &str| {
        value
            .parse::<u64>()
            .map_err(|parse| error(number, format!("{value:?}: {parse}")))
    };
    let real = |number: usize, value: &str| {
        value
            .parse::<f64>()
            .map_err(|parse| error(number, format!("{value:?}: {parse}")))
    };
    Ok(PercentileDistribution {
        rows,
        mean: real(mean_line, mean)?,
        std_deviation: real(mean_line, std_deviation)?,
        max: real(max_line, max)?,
        total_count: whole(max_line, total_count)?,
        buckets: whole(buckets_line, buckets)?,
        sub_buckets: whole(buckets_line, sub_buckets)?,
    })
}

/// `#[First = a, Second = b]` → (`a`, `b`), trimmed.
fn footer_pair<'a>(line: &'a str, first: &str, second: &str) -> Option<(&'a str, &'a str)> {
    let inner = line.strip_prefix("#[")?.strip_suffix(']')?;
    let (left, right) = inner.split_once(',')?;
    let value = |part: &'a str, name: &str| {
        let (key, value) = part.split_once('=')?;
        (key.trim() == name).then_some(value.trim())
    };
    Some((value(left, first)?, value(right, second)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(values: &[(u64, u64)]) -> Histogram<u64> {
        let mut histogram = crate::run::new_histogram();
        for &(value, count) in values {
            histogram.record_n(value, count).expect("in range");
        }
        histogram
    }

    fn written(histogram: &Histogram<u64>) -> String {
        let mut out = Vec::new();
        write_percentile_distribution(histogram, &mut out, MICROS_TO_MILLIS).expect("write");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_known_distribution_round_trips_with_javas_layout() {
        // 9 850 fast replies, 145 slow ones, 5 stalls: every percentile checked lies
        // inside a bucket, not on a boundary, so the first row at or beyond it is exact.
        let histogram = histogram(&[(100, 9_850), (5_000, 145), (20_000, 5)]);
        let text = written(&histogram);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "       0.100 0.000000000000       9850           1.00"
        );
        // 20 000 µs is kept as its bucket's highest equivalent value, 20 015 µs.
        assert_eq!(
            lines[lines.len() - 4],
            "      20.015 1.000000000000      10000"
        );
        assert_eq!(
            lines[lines.len() - 2],
            "#[Max     =       20.015, Total count    =        10000]"
        );
        assert_eq!(
            lines[lines.len() - 1],
            "#[Buckets =           20, SubBuckets     =         2048]"
        );
        assert!(
            lines[lines.len() - 3].starts_with("#[Mean    =        0.")
                && lines[lines.len() - 3].contains(", StdDeviation   =        "),
            "{}",
            lines[lines.len() - 3]
        );

        let parsed = parse_percentile_distribution(&text).expect("parse");
        let millis = |micros: u64| micros as f64 / MICROS_TO_MILLIS;
        assert_eq!(parsed.total_count, histogram.len());
        assert_eq!(parsed.rows.last().map(|row| row.2), Some(histogram.len()));
        assert_eq!(parsed.max, millis(histogram.max()));
        for quantile in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(
                parsed.value_at_quantile(quantile),
                Some(millis(histogram.value_at_quantile(quantile))),
                "{quantile}"
            );
        }
        assert!((parsed.mean - histogram.mean() / 1e3).abs() < 1e-3);
        assert!((parsed.std_deviation - histogram.stdev() / 1e3).abs() < 1e-3);
        assert_eq!((parsed.buckets, parsed.sub_buckets), (20, 2048));
        // Percentiles rise, counts never fall, and the ticks are Java's: five per half
        // distance (0, 0.1, … 0.5, then 0.55 …).
        assert!(parsed.rows.windows(2).all(|pair| pair[0].1 <= pair[1].1));
        assert!(parsed.rows.windows(2).all(|pair| pair[0].2 <= pair[1].2));
        let ticks: Vec<f64> = parsed.rows.iter().take(7).map(|row| row.1).collect();
        assert_eq!(ticks, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.55]);
    }

    #[test]
    fn a_spread_distribution_keeps_its_percentiles() {
        let values: Vec<(u64, u64)> = (1..=50_000).map(|micros| (micros * 7, 1)).collect();
        let histogram = histogram(&values);
        let parsed = parse_percentile_distribution(&written(&histogram)).expect("parse");
        assert_eq!(parsed.total_count, 50_000);
        for quantile in [0.5, 0.99] {
            let expected = histogram.value_at_quantile(quantile) as f64 / 1e3;
            let found = parsed.value_at_quantile(quantile).expect("a row");
            // The first tick at or beyond the quantile: at most a tick's worth above.
            assert!(
                found >= expected && found <= expected * 1.01,
                "{quantile}: {found} against {expected}"
            );
        }
        assert_eq!(parsed.max, histogram.max() as f64 / 1e3);
    }

    #[test]
    fn an_empty_histogram_has_a_header_and_a_footer() {
        let text = written(&histogram(&[]));
        let parsed = parse_percentile_distribution(&text).expect("parse");
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.total_count, 0);
        assert_eq!(parsed.max, 0.0);
    }

    #[test]
    fn broken_text_is_refused_with_its_line() {
        assert!(parse_percentile_distribution("").is_err());
        assert_eq!(
            parse_percentile_distribution("Value\n").map_err(|error| error.line),
            Err(1)
        );
        let text = written(&histogram(&[(100, 3)]));
        let cut: String = text.lines().take(4).collect::<Vec<_>>().join("\n");
        assert!(parse_percentile_distribution(&cut).is_err());
        let garbled = text.replacen("0.100", "zero", 1);
        assert_eq!(
            parse_percentile_distribution(&garbled).map_err(|error| error.line),
            Err(3)
        );
    }
}
