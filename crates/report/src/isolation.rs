//! Client and server apart: the Beazley scenario's throughput phase with client and
//! servers sharing every CPU, beside the same phase with each pinned to CPUs of its own
//! ("what sharing costs"), and, when it ran, the scenario with the servers in a network
//! namespace of their own (`beazley-netns.json`).

use std::fmt::Write as _;
use std::path::Path;

use scenarios::{BeazleyRow, Phase};

/// The file, in the scenarios directory, of the run with the servers in a network
/// namespace (`reports/produce.sh`'s "two hosts" run).
pub(crate) const NETNS_ROWS: &str = "beazley-netns.json";

/// The rows of the main tables: client and server sharing the machine, at the default
/// worker count ([`BeazleyRow::is_main`]; rows written before the arrangements and the
/// sweep are all main).
pub(crate) fn main_rows(rows: &[BeazleyRow]) -> Vec<BeazleyRow> {
    rows.iter().filter(|row| row.is_main()).cloned().collect()
}

/// The share of its threads' time the client used in a throughput row.
fn client_busy(row: &BeazleyRow) -> Option<f64> {
    let (micros, threads) = row.client_cpu_us.zip(row.client_threads)?;
    Some(micros * row.rps / 1e6 / threads.max(1) as f64)
}

/// The section: nothing when the rows hold no isolated arrangement and no namespace run
/// was saved.
pub(crate) fn section(out: &mut String, rows: &[BeazleyRow], scenarios_dir: &Path) {
    arrangements_table(out, rows);
    netns_table(out, &scenarios_dir.join(NETNS_ROWS));
}

fn arrangements_table(out: &mut String, rows: &[BeazleyRow]) {
    let throughput: Vec<&BeazleyRow> = rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput && !row.sweep_point)
        .collect();
    let Some(isolated) = throughput.iter().find(|row| row.is_isolated()) else {
        return;
    };
    let mut counts: Vec<usize> = throughput
        .iter()
        .filter(|row| row.is_isolated())
        .map(|row| row.connections)
        .collect();
    counts.sort_unstable();
    counts.dedup();
    let cpus = |cpus: &Option<String>| cpus.as_deref().unwrap_or("any").to_owned();
    let _ = writeln!(
        out,
        "### What sharing costs: client and server on CPUs of their own\n\n\
         The throughput phase in two arrangements, each with servers of its own, every (server, \
         arrangement) interleaved in the same shuffled rounds: **shared**, client and server \
         unpinned and competing for every CPU (the table above), and **isolated**, every server pinned to \
         CPUs {} and the load generator to CPUs {} (same worker counts). isolated ÷ shared above 1: sharing \
         the CPUs with the client cost the server that much; \"client busy\" is the share of its threads' \
         time the client used (near 100 %, the row measures the client).\n",
        cpus(&isolated.server_cpus),
        cpus(&isolated.client_cpus)
    );
    let mut header = String::from("| server |");
    let mut rule = String::from("|---|");
    for connections in &counts {
        let _ = write!(
            header,
            " c={connections} shared | c={connections} isolated | isolated ÷ shared | client busy: shared / isolated |"
        );
        rule.push_str("---:|---:|---:|---:|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let mut styles: Vec<&str> = Vec::new();
    for row in &throughput {
        if !styles.contains(&row.style.as_str()) {
            styles.push(&row.style);
        }
    }
    let percent = |busy: Option<f64>| {
        busy.map_or_else(|| "—".to_owned(), |busy| format!("{:.0} %", busy * 100.0))
    };
    let mut client_bound = Vec::new();
    for style in styles {
        let _ = write!(out, "| `{style}` |");
        for &connections in &counts {
            let find = |isolated: bool| {
                throughput.iter().copied().find(|row| {
                    row.style == style
                        && row.connections == connections
                        && row.is_isolated() == isolated
                })
            };
            let (shared, isolated) = (find(false), find(true));
            let rate = |row: Option<&BeazleyRow>| {
                row.map_or_else(|| "—".to_owned(), |row| format!("{:.0}", row.rps))
            };
            let ratio = match (shared, isolated) {
                (Some(shared), Some(isolated)) if shared.rps > 0.0 => {
                    format!("{:.2}×", isolated.rps / shared.rps)
                }
                _ => "—".to_owned(),
            };
            let (shared_busy, isolated_busy) =
                (shared.and_then(client_busy), isolated.and_then(client_busy));
            if shared_busy
                .into_iter()
                .chain(isolated_busy)
                .any(|busy| busy > 0.9)
            {
                client_bound.push(format!("`{style}` at c={connections}"));
            }
            let _ = write!(
                out,
                " {} | {} | {ratio} | {} / {} |",
                rate(shared),
                rate(isolated),
                percent(shared_busy),
                percent(isolated_busy)
            );
        }
        out.push('\n');
    }
    out.push('\n');
    if !client_bound.is_empty() {
        let _ = writeln!(
            out,
            "> **Client-bound:** the client used more than 90 % of its threads' time for {}: those rates are \
             at least partly the client's.\n",
            client_bound.join(", ")
        );
    }
}

fn netns_table(out: &mut String, path: &Path) {
    if !path.exists() {
        return;
    }
    let rows: Vec<BeazleyRow> = match scenarios::read_rows_file(path) {
        Ok(rows) => rows,
        Err(error) => {
            let _ = writeln!(out, "_Cannot read {}: {error}._\n", path.display());
            return;
        }
    };
    let throughput: Vec<&BeazleyRow> = rows
        .iter()
        .filter(|row| row.phase == Phase::Throughput)
        .collect();
    if throughput.is_empty() {
        return;
    }
    let launcher = rows
        .iter()
        .find_map(|row| row.server_launcher.as_deref())
        .unwrap_or("—");
    let _ = writeln!(
        out,
        "### Two hosts on one machine\n\n\
         Server in a network namespace, client in another, over a veth pair (servers started under \
         `{launcher}`): every request crosses a link between two network stacks instead of loopback \
         within one.\n\n\
         | server | connections | req/s | p50 | p99 | errors | failed |\n|---|---:|---:|---:|---:|---:|---:|"
    );
    for row in throughput {
        let micros = |value: Option<u64>| {
            value.map_or_else(|| "—".to_owned(), crate::summary::format_micros)
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {:.0} | {} | {} | {} | {} |",
            row.style,
            row.connections,
            row.rps,
            micros(row.p50_us),
            micros(row.p99_us),
            row.errors,
            row.failed
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(style: &str, connections: usize, rps: f64, arrangement: &str) -> BeazleyRow {
        let mut row: BeazleyRow = serde_json::from_value(serde_json::json!({
            "style": style, "language": "rust", "phase": "throughput",
            "connections": connections, "rps": rps, "p50_us": 100, "p99_us": 200,
            "max_us": 300, "requests": 1000, "errors": 0, "failed": 0,
            "client_threads": 1, "client_cpu_us": 5.0, "arrangement": arrangement,
        }))
        .expect("a row");
        if arrangement == "isolated" {
            row.server_cpus = Some("0".into());
            row.client_cpus = Some("1".into());
        }
        row
    }

    #[test]
    fn shared_and_isolated_side_by_side() {
        let rows = [
            row("tokio", 1, 10_000.0, "shared"),
            row("tokio", 1, 15_000.0, "isolated"),
            row("tokio", 32, 190_000.0, "shared"),
            row("tokio", 32, 200_000.0, "isolated"),
        ];
        let mut out = String::new();
        arrangements_table(&mut out, &rows);
        assert!(
            out.contains("CPUs 0 and the load generator to CPUs 1"),
            "{out}"
        );
        // 5 µs × 10 000/s = 5 % of one thread; 5 µs × 190 000/s = 95 %.
        assert!(
            out.contains("| `tokio` | 10000 | 15000 | 1.50× | 5 % / 8 % |"),
            "{out}"
        );
        assert!(
            out.contains("**Client-bound:**") && out.contains("`tokio` at c=32"),
            "{out}"
        );
        assert_eq!(main_rows(&rows).len(), 2);
        let mut none = String::new();
        arrangements_table(&mut none, &main_rows(&rows));
        assert!(none.is_empty(), "{none}");
    }
}
