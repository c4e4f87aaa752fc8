//! The `io` scenario in the summary: requests a server answers by waiting on a slow
//! backend, against the Little's-law ideal C / delay.

use std::fmt::Write as _;

use scenarios::IoRow;

use crate::results::format_nanos;
use crate::summary::{IO_CHART, format_mib, format_micros, table_text};

/// The style of the rows that drive the backend directly, without a server.
pub(crate) const BACKEND: &str = "backend";

/// A server at or above this share of the ideal keeps (nearly) every request in flight.
const NEAR_IDEAL: f64 = 0.9;

/// How many of the servers below [`NEAR_IDEAL`] the paragraph names.
const LOWEST_NAMED: usize = 3;

/// Achieved ÷ ideal, from the two rates the table shows (the row's own `efficiency`
/// where it has no ideal).
pub(crate) fn efficiency(row: &IoRow) -> f64 {
    if row.ideal_rps > 0.0 {
        row.rps / row.ideal_rps
    } else {
        row.efficiency
    }
}

/// `90 %`: a share as the table prints it.
fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// Whether `share` prints as at least [`NEAR_IDEAL`], so the paragraph and the table
/// agree on the rounding.
fn near_ideal(share: f64) -> bool {
    (share * 100.0).round() >= (NEAR_IDEAL * 100.0).round()
}

/// The styles of `rows`, in the order they first appear, the backend first.
pub(crate) fn styles(rows: &[IoRow]) -> Vec<&str> {
    let mut styles: Vec<&str> = Vec::new();
    if rows.iter().any(|row| row.style == BACKEND) {
        styles.push(BACKEND);
    }
    for row in rows {
        if !styles.contains(&row.style.as_str()) {
            styles.push(&row.style);
        }
    }
    styles
}

/// A latency cell: `≥` where some latencies behind it are lower bounds (requests given up
/// on, counted until the phase ended), so the true value is at least the one shown.
fn latency(value: Option<u64>, row: &IoRow) -> String {
    match value {
        None if row.requests == 0 && row.latency_lower_bounds == 0 => "no reply".to_owned(),
        None => "—".to_owned(),
        Some(micros) if row.latency_lower_bounds > 0 => format!("≥ {}", format_micros(micros)),
        Some(micros) => format_micros(micros),
    }
}

/// The section "Waiting on a backend (io_wait)": a table per concurrency, the backend
/// driven directly first, then which servers come near the ideal at the largest C.
pub(crate) fn section(out: &mut String, rows: &[IoRow], files: &[String]) {
    out.push_str(
        "Closed-loop clients: C connections, each with one request outstanding; every request \
         (`wait 1`) the server answers by asking a backend that replies after a fixed delay, so the \
         server spends almost no CPU on it and how many requests it keeps in flight is set by its \
         concurrency model alone. Little's law gives the ideal rate, C / delay: a server that keeps \
         every request in flight reaches it. The `backend` row of each table is the backend driven \
         directly, without a server: the check that it is not the bottleneck. A latency marked `≥` \
         is a lower bound (some requests were given up on and count with the time they had waited). \
         Server threads and RSS (the PSS of the server's process tree, from `/proc`) are read while \
         the phase runs; CPU per reply is over the whole phase.\n\n",
    );
    let styles = styles(rows);
    let mut concurrencies: Vec<usize> = rows.iter().map(|row| row.concurrency).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let dash = || "—".to_owned();
    for &concurrency in &concurrencies {
        let at: Vec<&IoRow> = rows
            .iter()
            .filter(|row| row.concurrency == concurrency)
            .collect();
        let _ = writeln!(out, "### C = {concurrency}\n");
        let mut delays: Vec<f64> = at
            .iter()
            .filter(|row| row.not_attempted.is_none())
            .map(|row| row.delay_ms)
            .collect();
        delays.sort_by(f64::total_cmp);
        delays.dedup();
        let delays: Vec<String> = delays
            .iter()
            .map(|delay| format_nanos(delay * 1e6))
            .collect();
        let alone = at.iter().all(|row| row.style == BACKEND);
        if alone {
            let _ = writeln!(
                out,
                "The backend's own check: {concurrency} requests in flight, delay {}, no server in between.\n",
                delays.join(", ")
            );
        } else if !delays.is_empty() {
            let _ = writeln!(out, "Backend delay {}.\n", delays.join(", "));
        }
        out.push_str(
            "| server | language | ideal req/s (C / delay) | achieved req/s | achieved ÷ ideal | p50 | p99 | errors | failed | server threads | RSS (MiB) | server CPU per reply |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for style in &styles {
            for row in at.iter().filter(|row| row.style == *style) {
                let label = if row.style == BACKEND {
                    format!("`{BACKEND}` (driven directly, no server)")
                } else {
                    format!("`{}`", row.style)
                };
                let _ = write!(out, "| {label} | {} |", row.language);
                if let Some(reason) = &row.not_attempted {
                    let _ = writeln!(
                        out,
                        " not attempted: {} | | | | | | | | | |",
                        table_text(reason)
                    );
                    continue;
                }
                let _ = writeln!(
                    out,
                    " {:.0} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    row.ideal_rps,
                    row.rps,
                    percent(efficiency(row)),
                    latency(row.p50_us, row),
                    latency(row.p99_us, row),
                    row.errors,
                    row.failed,
                    row.server_threads
                        .map_or_else(dash, |threads| threads.to_string()),
                    row.rss_bytes.map_or_else(dash, format_mib),
                    row.server_cpu_us
                        .map_or_else(dash, |micros| format!("{micros:.1} µs")),
                );
            }
        }
        out.push('\n');
    }
    largest_concurrency(out, rows);
    if files.iter().any(|file| file == IO_CHART) {
        let _ = writeln!(
            out,
            "![achieved ÷ ideal rate against concurrency]({IO_CHART})\n"
        );
    }
}

/// At the largest concurrency any server was measured at: which servers reach
/// [`NEAR_IDEAL`] of the ideal, the lowest of the rest, and whether the backend alone
/// kept up everywhere.
fn largest_concurrency(out: &mut String, rows: &[IoRow]) {
    let measured = || rows.iter().filter(|row| row.not_attempted.is_none());
    let servers = || measured().filter(|row| row.style != BACKEND);
    if let Some(largest) = servers().map(|row| row.concurrency).max() {
        let at: Vec<&IoRow> = servers().filter(|row| row.concurrency == largest).collect();
        let ideal = at.iter().map(|row| row.ideal_rps).fold(0.0_f64, f64::max);
        let near: Vec<String> = at
            .iter()
            .filter(|row| near_ideal(efficiency(row)))
            .map(|row| format!("`{}`", row.style))
            .collect();
        let mut below: Vec<&&IoRow> = at
            .iter()
            .filter(|row| !near_ideal(efficiency(row)))
            .collect();
        below.sort_by(|a, b| efficiency(a).total_cmp(&efficiency(b)));
        let lowest: Vec<String> = below
            .iter()
            .take(LOWEST_NAMED)
            .map(|row| format!("`{}` {}", row.style, percent(efficiency(row))))
            .collect();
        let reached = match (near.len(), below.len()) {
            (_, 0) => format!(
                "every server measured ({}) reaches ≥ {} of the ideal",
                near.join(", "),
                percent(NEAR_IDEAL)
            ),
            (0, _) => format!("no server reaches {} of the ideal", percent(NEAR_IDEAL)),
            (1, _) => format!("{} reaches ≥ {} of the ideal", near[0], percent(NEAR_IDEAL)),
            _ => format!(
                "{} reach ≥ {} of the ideal",
                near.join(", "),
                percent(NEAR_IDEAL)
            ),
        };
        let _ = write!(
            out,
            "At the largest concurrency, C = {largest} (ideal {ideal:.0} req/s), {reached}"
        );
        if lowest.is_empty() {
            out.push_str(".\n\n");
        } else {
            let _ = writeln!(out, "; the lowest: {}.\n", lowest.join(", "));
        }
    }
    let backend_rows: Vec<&IoRow> = measured().filter(|row| row.style == BACKEND).collect();
    if let Some(worst) = backend_rows
        .iter()
        .min_by(|a, b| efficiency(a).total_cmp(&efficiency(b)))
    {
        let most = backend_rows
            .iter()
            .map(|row| row.concurrency)
            .max()
            .unwrap_or_default();
        if near_ideal(efficiency(worst)) {
            let _ = writeln!(
                out,
                "The backend driven directly reached at least {} of its ideal at every C measured (up to \
                 {most} requests in flight): it is not what limits the servers.\n",
                percent(efficiency(worst))
            );
        } else {
            let _ = writeln!(
                out,
                "> **The backend driven directly reached only {} of its ideal at C = {}:** at that \
                 concurrency it, not the server, may be what limits the rate; read the servers' rows \
                 there against the backend's, not against the ideal.\n",
                percent(efficiency(worst)),
                worst.concurrency
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(style: &str, concurrency: usize, rps: f64) -> IoRow {
        let ideal_rps = concurrency as f64 / 0.01;
        IoRow {
            style: style.to_owned(),
            language: "rust".to_owned(),
            concurrency,
            delay_ms: 10.0,
            ideal_rps,
            rps,
            efficiency: rps / ideal_rps,
            p50_us: Some(10_100),
            p99_us: Some(12_000),
            max_us: Some(15_000),
            requests: 1_000,
            errors: 0,
            failed: 0,
            latency_lower_bounds: 0,
            server_threads: Some(4),
            rss_bytes: Some(6 << 20),
            server_cpu_us: Some(8.0),
            not_attempted: None,
        }
    }

    #[test]
    fn the_largest_c_names_who_reaches_the_ideal_and_the_lowest() {
        let rows = [
            row("backend", 2, 200.0),
            row("tokio", 2, 198.0),
            row("pool", 2, 180.0),
            row("seq", 2, 100.0),
            IoRow {
                latency_lower_bounds: 3,
                ..row("seq", 4, 100.0)
            },
            row("tokio", 4, 396.0),
            row("pool", 4, 200.0),
            row("backend", 4, 400.0),
            // The backend's own check: more in flight, the delay scaled to the same rate.
            IoRow {
                delay_ms: 250.0,
                ideal_rps: 400.0,
                ..row("backend", 100, 380.0)
            },
        ];
        let mut out = String::new();
        section(&mut out, &rows, &[]);
        for expected in [
            "### C = 2\n\nBackend delay 10.00 ms.\n",
            // The backend first, whatever the rows' order.
            "|---:|\n| `backend` (driven directly, no server) | rust | 200 | 200 | 100 % |",
            "| `pool` | rust | 200 | 180 | 90 % | 10.10 ms | 12.00 ms | 0 | 0 | 4 | 6.0 | 8.0 µs |",
            "| `seq` | rust | 400 | 100 | 25 % | ≥ 10.10 ms | ≥ 12.00 ms |",
            "The backend's own check: 100 requests in flight, delay 250.00 ms, no server in between.",
            "At the largest concurrency, C = 4 (ideal 400 req/s), `tokio` reaches ≥ 90 % of the ideal; \
             the lowest: `seq` 25 %, `pool` 50 %.",
            "reached at least 95 % of its ideal at every C measured (up to 100 requests in flight)",
        ] {
            assert!(out.contains(expected), "{expected} missing:\n{out}");
        }
    }

    #[test]
    fn a_slow_backend_is_flagged() {
        let rows = [row("backend", 8, 400.0), row("tokio", 8, 390.0)];
        let mut out = String::new();
        section(&mut out, &rows, &[]);
        assert!(
            out.contains(
                "**The backend driven directly reached only 50 % of its ideal at C = 8:**"
            ),
            "{out}"
        );
        assert!(out.contains("the lowest: `tokio` 49 %."), "{out}");
    }
}
