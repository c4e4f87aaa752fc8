//! The `rate-sweep` scenario in the summary and its chart: each server's latency
//! against the load offered to it, open loop at fractions of its own closed-loop
//! maximum, and its knee.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use scenarios::RateRow;
use scenarios::rate_sweep::{KNEE_P99_US, knee, percent, servers};

use crate::ReportError;
use crate::summary::format_micros;

/// The p99's and the p50's colours: the first two of `charts.rs`'s palette.
const COLOURS: [RGBColor; 2] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14)];

/// The chart's file name: a panel per server.
pub(crate) const RATE_SWEEP_CHART: &str = "rate_sweep.svg";

/// Panels per row of the chart.
const COLUMNS: usize = 4;
/// One panel's size, pixels.
const PANEL: (u32, u32) = (300, 230);

/// A latency cell: `≥` where some latencies behind the row are lower bounds.
fn latency(value: Option<u64>, row: &RateRow) -> String {
    match value {
        None => "—".to_owned(),
        Some(micros) if row.latency_lower_bounds > 0 => format!("≥ {}", format_micros(micros)),
        Some(micros) => format_micros(micros),
    }
}

/// `80 % of max, 41234 req/s (p99 612.00 µs)`, or `none`, with the lowest rate's p99.
fn knee_text(rows: &[&RateRow]) -> String {
    match knee(rows.iter().copied()) {
        Some(row) => format!(
            "{} % of max, {:.0} req/s offered (p99 {})",
            percent(row.fraction),
            row.offered_rps,
            latency(row.p99_us, row)
        ),
        None => match rows
            .iter()
            .min_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps))
        {
            Some(lowest) => format!(
                "none (p99 {} already at {} % of max)",
                latency(lowest.p99_us, lowest),
                percent(lowest.fraction)
            ),
            None => "none".to_owned(),
        },
    }
}

/// The section "Latency against offered load": the knees, then a small table per
/// server.
pub(crate) fn section(out: &mut String, rows: &[RateRow], files: &[String]) {
    let _ = writeln!(
        out,
        "Open loop: `fib(1)` requests scheduled at a fixed rate over the same connections as each \
         server's closed-loop maximum (measured first, in the same server process), at fractions of that \
         maximum, each server's fractions in a shuffled order. Latency counts from each request's due \
         time, so a server that falls behind is charged for the queue it builds; a latency marked `≥` \
         is a lower bound (some requests were never sent or answered and count with the time they had \
         waited). The **knee** is the highest offered rate up to which the p99 stays under {} with \
         every request answered right.\n",
        format_micros(KNEE_P99_US)
    );
    // The client's own lateness is inside every latency: say how large it was, so a
    // reader can tell a server's microseconds from the client's.
    match rows.iter().filter_map(|row| row.send_lateness_p99_us).max() {
        Some(worst) => {
            let _ = writeln!(
                out,
                "The client paces each connection with a timerfd of its own and records how late it \
                 sent each request (**send lateness**, the client's share of every latency): at most \
                 {} at p99 in any phase below (column *client late p99*).\n",
                format_micros(worst)
            );
        }
        None => out.push_str(
            "These rows do not record the client's send lateness: they were measured before the \
             client paced with a timerfd, when it waited on tokio's 1 ms timer and every latency \
             could carry up to 1 ms of the client's own lateness.\n\n",
        ),
    }
    out.push_str(
        "| server | language | connections | closed-loop max req/s | knee |\n|---|---|---:|---:|---|\n",
    );
    let servers = servers(rows);
    let of = |server: &str| -> Vec<&RateRow> {
        let mut mine: Vec<&RateRow> = rows.iter().filter(|row| row.style == server).collect();
        mine.sort_by(|a, b| a.fraction.total_cmp(&b.fraction));
        mine
    };
    for server in &servers {
        let mine = of(server);
        let first = mine[0];
        let _ = writeln!(
            out,
            "| `{server}` | {} | {} | {:.0} | {} |",
            first.language,
            first.connections,
            first.max_rps,
            knee_text(&mine)
        );
    }
    out.push('\n');
    if files.iter().any(|file| file == RATE_SWEEP_CHART) {
        let _ = writeln!(
            out,
            "![p50 and p99 against the offered rate, per server]({RATE_SWEEP_CHART})\n"
        );
    }
    for server in &servers {
        let mine = of(server);
        let _ = writeln!(
            out,
            "### `{server}`\n\nClosed-loop maximum {:.0} req/s over {} connections; knee: {}.\n",
            mine[0].max_rps,
            mine[0].connections,
            knee_text(&mine)
        );
        out.push_str(
            "| of max | offered req/s | achieved req/s | p50 | p99 | p99.9 | client late p99 | answered/due |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for row in mine {
            let _ = writeln!(
                out,
                "| {} % | {:.0} | {:.0} | {} | {} | {} | {} | {}/{} |",
                percent(row.fraction),
                row.offered_rps,
                row.achieved_rps,
                latency(row.p50_us, row),
                latency(row.p99_us, row),
                latency(row.p999_us, row),
                row.send_lateness_p99_us
                    .map_or_else(|| "—".to_owned(), format_micros),
                row.answered,
                row.due
            );
        }
        out.push('\n');
    }
}

/// A panel per server: its p99 and p50 (ms, log scale, the same range in every panel)
/// against the offered rate, with the knee's 1 ms dashed; hollow points are lower
/// bounds.
pub(crate) fn chart(path: &Path, rows: &[RateRow]) -> Result<(), ReportError> {
    let servers = servers(rows);
    let panel_rows = servers.len().div_ceil(COLUMNS).max(1);
    let columns = servers.len().clamp(1, COLUMNS);
    let caption = 40;
    let size = (
        PANEL.0 * columns as u32,
        caption + PANEL.1 * panel_rows as u32,
    );
    let millis = |micros: u64| (micros as f64 / 1e3).max(1e-3);
    let latencies = || {
        rows.iter()
            .flat_map(|row| [row.p50_us, row.p99_us])
            .flatten()
            .map(millis)
    };
    let knee_ms = KNEE_P99_US as f64 / 1e3;
    let y_max = latencies().fold(knee_ms, f64::max) * 2.0;
    let y_min = latencies().fold(knee_ms, f64::min) / 2.0;
    let root = SVGBackend::new(path, size).into_drawing_area();
    draw(path, || {
        root.fill(&WHITE)?;
        let (title, body) = root.split_vertically(caption);
        title.titled(
            "latency against offered load: p99 (solid) and p50 (thin), hollow = lower bound, dashed = 1 ms",
            ("sans-serif", 18),
        )?;
        let panels = body.split_evenly((panel_rows, columns));
        for (server, panel) in servers.iter().zip(panels.iter()) {
            let mut mine: Vec<&RateRow> = rows.iter().filter(|row| row.style == *server).collect();
            mine.sort_by(|a, b| a.offered_rps.total_cmp(&b.offered_rps));
            let x_max = mine
                .iter()
                .map(|row| row.offered_rps)
                .fold(1.0_f64, f64::max)
                * 1.08;
            let mut chart = ChartBuilder::on(panel)
                .caption(*server, ("sans-serif", 15))
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(45)
                .build_cartesian_2d(0.0..x_max, (y_min..y_max).log_scale())?;
            chart
                .configure_mesh()
                .x_labels(4)
                .y_labels(5)
                .x_desc("offered req/s")
                .y_desc("ms")
                .x_label_formatter(&|rate| format_count(*rate))
                .y_label_formatter(&|ms| format_count(*ms))
                .label_style(("sans-serif", 11))
                .draw()?;
            chart.draw_series(DashedLineSeries::new(
                [(0.0, knee_ms), (x_max, knee_ms)],
                6,
                4,
                BLACK.mix(0.6).stroke_width(1),
            ))?;
            for (series, (pick, width)) in [
                (
                    (|row: &RateRow| row.p99_us) as fn(&RateRow) -> Option<u64>,
                    2,
                ),
                (|row: &RateRow| row.p50_us, 1),
            ]
            .into_iter()
            .enumerate()
            {
                let color = COLOURS[series % COLOURS.len()];
                let points: Vec<(f64, f64, bool)> = mine
                    .iter()
                    .filter_map(|row| {
                        pick(row).map(|micros| {
                            (
                                row.offered_rps,
                                millis(micros),
                                row.latency_lower_bounds > 0,
                            )
                        })
                    })
                    .collect();
                chart.draw_series(LineSeries::new(
                    points.iter().map(|&(x, y, _)| (x, y)),
                    color.stroke_width(width),
                ))?;
                chart.draw_series(points.iter().map(|&(x, y, bound)| {
                    let style = if bound {
                        color.stroke_width(1)
                    } else {
                        color.filled()
                    };
                    Circle::new((x, y), 3, style)
                }))?;
            }
        }
        root.present()?;
        Ok(())
    })
}

/// Runs a drawing closure, turning plotters' errors into a [`ReportError`] naming the
/// chart (as `charts.rs` does).
fn draw(
    path: &Path,
    body: impl FnOnce() -> Result<(), DrawingAreaErrorKind<std::io::Error>>,
) -> Result<(), ReportError> {
    body().map_err(|error| ReportError::Chart {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

/// `100`, `10k`, `0.1`: axis labels for rates and milliseconds.
fn format_count(value: f64) -> String {
    match value {
        v if v >= 1e6 => format!("{}M", (v / 1e5).round() / 10.0),
        v if v >= 1e3 => format!("{}k", (v / 1e2).round() / 10.0),
        v if v >= 1.0 => format!("{v:.0}"),
        v => format!("{}", (v * 1e3).round() / 1e3),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(style: &str, fraction: f64, p99_us: u64, lower_bounds: u64) -> RateRow {
        RateRow {
            style: style.to_owned(),
            language: "rust".to_owned(),
            connections: 32,
            max_rps: 40_000.0,
            fraction,
            offered_rps: fraction * 40_000.0,
            achieved_rps: fraction * 40_000.0,
            p50_us: Some(p99_us / 3),
            p90_us: Some(p99_us / 2),
            p99_us: Some(p99_us),
            p999_us: Some(p99_us * 2),
            max_us: Some(p99_us * 3),
            due: 1_000,
            answered: 1_000 - lower_bounds,
            errors: 0,
            failed: lower_bounds,
            latency_lower_bounds: lower_bounds,
            send_lateness_p99_us: Some(40),
            send_lateness_max_us: Some(200),
        }
    }

    fn rows() -> Vec<RateRow> {
        vec![
            row("tokio", 1.1, 90_000, 12),
            row("tokio", 0.1, 300, 0),
            row("tokio", 0.8, 700, 0),
            row("threads", 0.1, 2_400, 0),
            row("threads", 0.8, 9_000, 0),
        ]
    }

    #[test]
    fn the_section_has_each_servers_table_and_knee() {
        let mut out = String::new();
        section(&mut out, &rows(), &[RATE_SWEEP_CHART.to_owned()]);
        for expected in [
            "| `tokio` | rust | 32 | 40000 | 80 % of max, 32000 req/s offered (p99 700.0 µs) |",
            "| `threads` | rust | 32 | 40000 | none (p99 2.40 ms already at 10 % of max) |",
            "![p50 and p99 against the offered rate, per server](rate_sweep.svg)",
            "### `tokio`\n\nClosed-loop maximum 40000 req/s over 32 connections; knee: 80 % of max",
            // In fraction order, whatever the rows' order; lower bounds marked.
            "| 10 % | 4000 | 4000 | 100.0 µs | 300.0 µs | 600.0 µs | 40.0 µs | 1000/1000 |\n| 80 % |",
            "| 110 % | 44000 | 44000 | ≥ 30.00 ms | ≥ 90.00 ms | ≥ 180.00 ms | 40.0 µs | 988/1000 |",
            "at most 40.0 µs at p99 in any phase below",
        ] {
            assert!(out.contains(expected), "{expected} missing:\n{out}");
        }
        assert!(out.find("### `tokio`") < out.find("### `threads`"), "{out}");

        // Rows from before the client recorded its lateness say so instead.
        let mut old = rows();
        for row in &mut old {
            row.send_lateness_p99_us = None;
        }
        let mut out = String::new();
        section(&mut out, &old, &[]);
        assert!(
            out.contains("do not record the client's send lateness"),
            "{out}"
        );
        assert!(
            out.contains("| 300.0 µs | 600.0 µs | — | 1000/1000 |"),
            "{out}"
        );
    }

    #[test]
    fn the_chart_has_a_panel_per_server() {
        let dir = std::env::temp_dir().join(format!("concbench-rate-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("folder");
        let path = dir.join(RATE_SWEEP_CHART);
        let drawn = chart(&path, &rows());
        let svg = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        drawn.expect("drawn");
        // A panel title per server (plotters writes a text element's content on a
        // line of its own).
        let titles = |name: &str| svg.matches(&format!("\n{name}\n")).count();
        assert!(titles("tokio") >= 1 && titles("threads") >= 1, "{svg}");
    }
}
