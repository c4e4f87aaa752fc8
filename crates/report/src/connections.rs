//! The `connections` scenario (C10K) in the summary: what a held connection costs each
//! server, and whether it still serves its active and idle connections with N open.

use std::fmt::Write as _;

use scenarios::ConnectionsRow;

use crate::summary::{CONNECTIONS_CHART, format_mib, format_micros, table_text};

/// The servers of `rows`, in the order they first appear.
pub(crate) fn servers(rows: &[ConnectionsRow]) -> Vec<&str> {
    let mut servers: Vec<&str> = Vec::new();
    for row in rows {
        if !servers.contains(&row.style.as_str()) {
            servers.push(&row.style);
        }
    }
    servers
}

/// A row that was measured and has a figure per connection.
fn bytes_of(row: &ConnectionsRow) -> Option<f64> {
    row.bytes_per_connection
        .filter(|_| row.not_attempted.is_none())
}

/// `2.0 KiB`: a size per connection in KiB (negative where the tree shrank, which
/// happens when the idle baseline held pages the kernel later reclaimed).
fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// The section "Many connections (C10K)": one table, rows grouped by server, then what a
/// connection costs each server at the largest N it reached, and which costs least.
pub(crate) fn section(out: &mut String, rows: &[ConnectionsRow], files: &[String]) {
    let mut active: Vec<usize> = rows
        .iter()
        .filter(|row| row.not_attempted.is_none())
        .map(|row| row.active)
        .collect();
    active.sort_unstable();
    active.dedup();
    let active = match active.as_slice() {
        [] => "a few".to_owned(),
        [only] => only.to_string(),
        [first, .., last] => format!("{first}–{last}"),
    };
    let _ = writeln!(
        out,
        "Each row holds N connections open to one server: {active} of them driven closed loop with \
         `fib(1)` (active req/s, active p99), the rest each sending one `fib(1)` a second (idle \
         answered / due). Idle RSS is the server's memory before any connection, RSS with N open \
         its memory at the phase's end; bytes per connection is the growth between the two divided \
         by the connections established.\n"
    );
    out.push_str(
        "| server | language | N | established | time to connect (ms) | idle RSS (MiB) | RSS with N open (MiB) | bytes per connection | server threads | active req/s | active p99 | idle answered / due |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let dash = || "—".to_owned();
    let servers = servers(rows);
    let mut troubled = Vec::new();
    for server in &servers {
        let mut server_rows: Vec<&ConnectionsRow> =
            rows.iter().filter(|row| row.style == *server).collect();
        server_rows.sort_by_key(|row| row.connections);
        for row in server_rows {
            let _ = write!(
                out,
                "| `{}` | {} | {} |",
                row.style, row.language, row.connections
            );
            if let Some(reason) = &row.not_attempted {
                let _ = writeln!(
                    out,
                    " not attempted: {} | | | | | | | | |",
                    table_text(reason)
                );
                continue;
            }
            let p99 = match row.p99_us {
                Some(p99) => format_micros(p99),
                None if row.requests == 0 => "no reply".to_owned(),
                None => dash(),
            };
            let _ = writeln!(
                out,
                " {} | {} | {} | {} | {} | {} | {:.0} | {p99} | {} / {} |",
                row.established,
                row.connect_ms.map_or_else(dash, |ms| format!("{ms:.1}")),
                row.idle_rss_bytes.map_or_else(dash, format_mib),
                row.rss_bytes.map_or_else(dash, format_mib),
                row.bytes_per_connection
                    .map_or_else(dash, |bytes| format!("{bytes:.0}")),
                row.server_threads
                    .map_or_else(dash, |threads| threads.to_string()),
                row.rps,
                row.idle_answered,
                row.idle_due,
            );
            if row.errors > 0 || row.failed > 0 || row.established < row.connections {
                troubled.push(format!(
                    "`{}` at N = {}: {} of {} established, {} error(s), {} failed",
                    row.style,
                    row.connections,
                    row.established,
                    row.connections,
                    row.errors,
                    row.failed
                ));
            }
        }
    }
    out.push('\n');
    if !troubled.is_empty() {
        let _ = writeln!(
            out,
            "Not every connection was served: {}.\n",
            troubled.join("; ")
        );
    }

    // Per server, its row at the largest N it reached with a figure per connection.
    let at_largest: Vec<&ConnectionsRow> = servers
        .iter()
        .filter_map(|server| {
            rows.iter()
                .filter(|row| row.style == *server && bytes_of(row).is_some())
                .max_by_key(|row| row.connections)
        })
        .collect();
    if let Some(largest) = at_largest.iter().map(|row| row.connections).max() {
        let each: Vec<String> = at_largest
            .iter()
            .map(|row| {
                format!(
                    "`{}` {} at N = {}",
                    row.style,
                    kib(bytes_of(row).unwrap_or_default()),
                    row.connections
                )
            })
            .collect();
        let at_top = || {
            rows.iter().filter_map(|row| {
                bytes_of(row)
                    .filter(|_| row.connections == largest)
                    .map(|bytes| (row, bytes))
            })
        };
        let least = at_top().min_by(|a, b| a.1.total_cmp(&b.1));
        let most = at_top().max_by(|a, b| a.1.total_cmp(&b.1));
        let _ = write!(
            out,
            "Bytes per connection at the largest N each server reached: {}.",
            each.join(", ")
        );
        if let (Some((least, least_bytes)), Some((most, most_bytes))) = (least, most) {
            let _ = write!(
                out,
                " At N = {largest}, `{}` holds a connection in the least memory: **{}** per connection",
                least.style,
                kib(least_bytes)
            );
            if most.style != least.style {
                let _ = write!(out, " (the most: `{}`, {})", most.style, kib(most_bytes));
            }
            out.push('.');
        }
        out.push_str(
            " Memory here is the proportional resident memory (PSS, `smaps_rollup`) of the \
             server's process tree, read from `/proc`, above the same server's idle baseline: pages \
             its processes share count once over the tree.\n\n",
        );
    }
    if files.iter().any(|file| file == CONNECTIONS_CHART) {
        let _ = writeln!(
            out,
            "![bytes per connection against connections held]({CONNECTIONS_CHART})\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(style: &str, connections: usize, bytes: Option<f64>) -> ConnectionsRow {
        ConnectionsRow {
            style: style.to_owned(),
            language: "rust".to_owned(),
            connections,
            active: 8,
            established: connections,
            connect_ms: Some(12.5),
            idle_rss_bytes: Some(4 << 20),
            rss_bytes: bytes.map(|bytes| (4 << 20) + (bytes * connections as f64) as u64),
            bytes_per_connection: bytes,
            server_threads: Some(3),
            rps: 20_000.0,
            p50_us: Some(200),
            p99_us: Some(900),
            requests: 60_000,
            errors: 0,
            failed: 0,
            idle_answered: 300,
            idle_due: 300,
            not_attempted: None,
        }
    }

    #[test]
    fn the_least_memory_is_named_at_the_largest_n() {
        let rows = [
            row("threads", 100, Some(20_480.0)),
            row("evloop", 100, Some(1_024.0)),
            row("threads", 1_000, Some(16_384.0)),
            row("evloop", 1_000, Some(2_048.0)),
            // A server that reached only the smaller N is quoted there, not ranked at the top.
            row("python-asyncio", 100, Some(512.0)),
            ConnectionsRow {
                not_attempted: Some("above 900 | threads".into()),
                ..row("python-asyncio", 1_000, None)
            },
        ];
        let mut out = String::new();
        section(&mut out, &rows, &[]);
        for expected in [
            "| `threads` | rust | 100 | 100 | 12.5 | 4.0 | 6.0 | 20480 | 3 | 20000 | 900.0 µs | 300 / 300 |\n\
             | `threads` | rust | 1000 | 1000 |",
            "| `python-asyncio` | rust | 1000 | not attempted: above 900 \\| threads | | | | | | | | |",
            "`threads` 16.0 KiB at N = 1000, `evloop` 2.0 KiB at N = 1000, `python-asyncio` 0.5 KiB at N = 100.",
            "At N = 1000, `evloop` holds a connection in the least memory: **2.0 KiB** per connection (the most: `threads`, 16.0 KiB).",
            "8 of them driven closed loop",
        ] {
            assert!(out.contains(expected), "{expected} missing:\n{out}");
        }
        assert!(!out.contains("Not every connection"), "{out}");
    }
}
