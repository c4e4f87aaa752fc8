//! The throughput bench beside the Beazley scenario's throughput phase: the same
//! quantity (the rate a server sustains for `fib(1)`, closed loop, at the same
//! connection counts) measured by two clients, so a reader sees whether they rank the
//! servers alike, how evenly each server serves its connections, and whether the client
//! was what limited the rate.

use std::fmt::Write as _;

use scenarios::{BeazleyRow, Phase, ThroughputBenchRow};

use crate::results::ResultRow;

/// The share of its threads' time above which the bench's client, not the server, may
/// be what sets the rate.
const CLIENT_BUSY_LIMIT: f64 = 0.9;

/// One server at one connection count, as both clients measured it.
#[derive(Debug, Clone, PartialEq)]
pub struct Agreement {
    /// The server's style.
    pub style: String,
    /// Connections.
    pub connections: usize,
    /// The bench's rate (criterion's median window), requests per second.
    pub bench_rps: f64,
    /// The scenario's rate, requests per second.
    pub scenario_rps: f64,
    /// The share of the scenario client's threads' time it used, when recorded.
    pub scenario_client_busy: Option<f64>,
    /// The slowest and fastest of the scenario's interleaved rounds, when it recorded
    /// them: how far the host moved this server's rate during the scenario.
    pub scenario_rounds: Option<(f64, f64)>,
    /// The scenario's rate in each of its rounds, in round order (the same rounds for
    /// every server): what tells two servers apart, round by round.
    pub scenario_round_rps: Vec<f64>,
}

impl Agreement {
    /// Whether the bench's rate lies within the range of the scenario's rounds (`None`
    /// when the scenario recorded no rounds).
    pub fn bench_within_rounds(&self) -> Option<bool> {
        self.scenario_rounds
            .map(|(low, high)| (low..=high).contains(&self.bench_rps))
    }
}

/// Every server both measured at `connections`, fastest by the bench first; the
/// scenario's row is the main one at the bench's worker count, in the isolated
/// arrangement when `isolated` (the bench pinned client and server apart) and the
/// shared one otherwise.
pub fn agreements(
    criterion_rows: &[&ResultRow],
    scenario_rows: &[BeazleyRow],
    connections: usize,
    isolated: bool,
) -> Vec<Agreement> {
    let parameter = format!("c{connections}");
    let mut rows: Vec<Agreement> = criterion_rows
        .iter()
        .filter(|row| row.benchmark.value.as_deref() == Some(parameter.as_str()))
        .filter_map(|row| {
            let bench_rps = row.elements_per_second?;
            let scenario = scenario_rows.iter().find(|scenario| {
                scenario.phase == Phase::Throughput
                    && scenario.connections == connections
                    && scenario.style == row.benchmark.function
                    && !scenario.sweep_point
                    && scenario.is_isolated() == isolated
            })?;
            Some(Agreement {
                style: row.benchmark.function.clone(),
                connections,
                bench_rps,
                scenario_rps: scenario.rps,
                scenario_client_busy: scenario
                    .client_cpu_us
                    .zip(scenario.client_threads)
                    .map(|(micros, threads)| micros * scenario.rps / 1e6 / threads.max(1) as f64),
                scenario_rounds: round_range(&scenario.round_rps),
                scenario_round_rps: scenario.round_rps.clone(),
            })
        })
        .collect();
    rows.sort_by(|a, b| b.bench_rps.total_cmp(&a.bench_rps));
    rows
}

/// The smallest and largest of `rates`; `None` when there are none.
fn round_range(rates: &[f64]) -> Option<(f64, f64)> {
    let first = *rates.first()?;
    Some(rates.iter().fold((first, first), |(low, high), &rate| {
        (low.min(rate), high.max(rate))
    }))
}

/// How far the bench agrees with the scenario on the pairs of servers the scenario
/// itself tells apart: a pair is told apart when one server was faster than the other
/// in every one of the scenario's rounds (at least three, the same rounds for both), so
/// the host's drift, which moves both alike within a round, did not decide it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeparatedPairs {
    /// Pairs the scenario told apart.
    pub separated: usize,
    /// Of those, the pairs the bench orders the same way.
    pub bench_agrees: usize,
    /// Pairs measured in the same rounds at all.
    pub pairs: usize,
}

/// The pairs of `agreed` that the scenario's rounds separate, and how many of them the
/// bench orders alike.
pub fn separated_pairs(agreed: &[Agreement]) -> SeparatedPairs {
    let mut counts = SeparatedPairs {
        separated: 0,
        bench_agrees: 0,
        pairs: 0,
    };
    for (index, a) in agreed.iter().enumerate() {
        for b in &agreed[index + 1..] {
            let rounds = a.scenario_round_rps.len();
            if rounds < 3 || b.scenario_round_rps.len() != rounds {
                continue;
            }
            counts.pairs += 1;
            let faster = a
                .scenario_round_rps
                .iter()
                .zip(&b.scenario_round_rps)
                .filter(|(x, y)| x > y)
                .count();
            let a_faster = match faster {
                0 => false,
                all if all == rounds => true,
                _ => continue,
            };
            counts.separated += 1;
            if (a.bench_rps > b.bench_rps) == a_faster {
                counts.bench_agrees += 1;
            }
        }
    }
    counts
}

/// Ranks of `values`, 1 for the largest; tied values share the mean of their ranks.
pub fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) share the mean of ranks start+1..=end.
        let shared = (start + 1 + end) as f64 / 2.0;
        for &index in &order[start..end] {
            ranks[index] = shared;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation of two equally long lists: 1 when they order the items
/// alike, −1 when reversed; `None` with fewer than three items or no spread in a list.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 3 {
        return None;
    }
    let (rank_a, rank_b) = (ranks(a), ranks(b));
    let mean = (a.len() + 1) as f64 / 2.0;
    let (mut covariance, mut spread_a, mut spread_b) = (0.0, 0.0, 0.0);
    for (x, y) in rank_a.iter().zip(&rank_b) {
        covariance += (x - mean) * (y - mean);
        spread_a += (x - mean).powi(2);
        spread_b += (y - mean).powi(2);
    }
    (spread_a > 0.0 && spread_b > 0.0).then(|| covariance / (spread_a * spread_b).sqrt())
}

/// The section: per connection count, the two rates and ranks side by side with the
/// bench's fairness and CPU figures, then how far the two agree.
pub(crate) fn section(
    out: &mut String,
    criterion_rows: &[&ResultRow],
    bench_rows: &[ThroughputBenchRow],
    scenario_rows: &[BeazleyRow],
) {
    let mut counts: Vec<usize> = bench_rows.iter().map(|row| row.connections).collect();
    counts.sort_unstable();
    counts.dedup();
    if counts.is_empty() {
        return;
    }
    out.push_str(
        "#### The bench beside the scenario\n\n\
         The same rate measured twice: by criterion's `throughput` bench (steady-state windows of \
         requests claimed from a shared count) and by the Beazley scenario's throughput phase (a \
         fixed time). Criterion measures each server in a block of its own, one after another; the \
         scenario interleaves them, a slice of each server per round in shuffled order, so its \
         ranking is the one to quote, and \"scenario rounds\" shows how far the host moved each \
         server's rate while it ran. A bench rate outside that range was taken by criterion at a \
         moment the host was slower or faster than during the scenario. Over one connection \
         the rate is one round trip at a time, whose cost on a virtual machine depends mostly \
         on whether client and server share a CPU, so the bench pins them apart at c=1 and is \
         set beside the scenario's isolated rows there (`benches/server.rs` says why). The \
         pairs \"told apart\" are those where one server beat the other in every round of the \
         scenario: a ranking among servers the scenario cannot separate is the host's noise. \
         Beside them, from the bench: the fewest and most replies one connection got \
         in a window (a server that starves some connections is worse, whatever its total), and \
         the CPU per request of the client and of the server. Both clients use the same threads \
         (`loadgen::THROUGHPUT_CLIENT_THREADS`); \"client busy\" is the share of the client \
         threads' time the client used at that rate, in the bench and in the scenario, where \
         100 % would mean the client, not the server, set it.\n\n",
    );
    for connections in counts {
        let isolated = bench_rows
            .iter()
            .any(|row| row.connections == connections && row.is_isolated());
        let placement = bench_rows
            .iter()
            .find(|row| row.connections == connections && row.is_isolated())
            .map(|row| {
                format!(
                    "client and server pinned apart (server on CPUs {}, client on {}), beside the \
                     scenario's isolated arrangement",
                    row.server_cpus.as_deref().unwrap_or("?"),
                    row.client_cpus.as_deref().unwrap_or("?")
                )
            })
            .unwrap_or_else(|| {
                "client and server unpinned, beside the scenario's shared arrangement".to_owned()
            });
        let _ = writeln!(out, "c={connections}: {placement}.\n");
        let agreed = agreements(criterion_rows, scenario_rows, connections, isolated);
        let bench_rates: Vec<f64> = agreed.iter().map(|row| row.bench_rps).collect();
        let scenario_rates: Vec<f64> = agreed.iter().map(|row| row.scenario_rps).collect();
        let (bench_ranks, scenario_ranks) = (ranks(&bench_rates), ranks(&scenario_rates));
        let _ = writeln!(
            out,
            "| c={connections} server | bench req/s | scenario req/s | scenario rounds | bench ÷ scenario | rank: bench | rank: scenario | replies per connection per window | client CPU per request | client busy: bench / scenario | server CPU per request |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let mut client_bound = Vec::new();
        for row in bench_rows
            .iter()
            .filter(|row| row.connections == connections)
        {
            let agreement = agreed.iter().position(|agreed| agreed.style == row.style);
            let bench_rps = criterion_rows
                .iter()
                .find(|result| {
                    result.benchmark.function == row.style
                        && result.benchmark.value.as_deref()
                            == Some(format!("c{connections}").as_str())
                })
                .and_then(|result| result.elements_per_second);
            let client_busy = bench_rps
                .map(|rate| row.client_cpu_us * rate / 1e6 / row.client_threads.max(1) as f64);
            let scenario_busy = agreement.and_then(|index| agreed[index].scenario_client_busy);
            if client_busy
                .into_iter()
                .chain(scenario_busy)
                .any(|busy| busy > CLIENT_BUSY_LIMIT)
            {
                client_bound.push(format!("`{}`", row.style));
            }
            let percent = |busy: Option<f64>| {
                busy.map_or_else(|| "—".to_owned(), |busy| format!("{:.0} %", busy * 100.0))
            };
            let cell = |value: Option<String>| value.unwrap_or_else(|| "—".to_owned());
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | {} | {} | {}–{} (even {}) | {:.1} µs on {} thread(s) | {} / {} | {} |",
                row.style,
                cell(bench_rps.map(|rate| format!("{rate:.0}"))),
                cell(agreement.map(|index| format!("{:.0}", agreed[index].scenario_rps))),
                cell(
                    agreement
                        .and_then(|index| agreed[index].scenario_rounds)
                        .map(|(low, high)| format!("{low:.0}–{high:.0}"))
                ),
                cell(agreement.map(|index| format!(
                    "{:.2}",
                    agreed[index].bench_rps / agreed[index].scenario_rps
                ))),
                cell(agreement.map(|index| format_rank(bench_ranks[index]))),
                cell(agreement.map(|index| format_rank(scenario_ranks[index]))),
                row.fewest_per_connection,
                row.most_per_connection,
                row.even_share(),
                row.client_cpu_us,
                row.client_threads,
                percent(client_busy),
                percent(scenario_busy),
                cell(row.server_cpu_us.map(|micros| format!("{micros:.1} µs"))),
            );
        }
        out.push('\n');
        let ratios: Vec<f64> = agreed
            .iter()
            .map(|row| row.bench_rps / row.scenario_rps)
            .collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), ratio| {
                (low.min(*ratio), high.max(*ratio))
            });
        let same_order = bench_ranks
            .iter()
            .zip(&scenario_ranks)
            .filter(|(a, b)| a == b)
            .count();
        let with_rounds: Vec<bool> = agreed
            .iter()
            .filter_map(Agreement::bench_within_rounds)
            .collect();
        let within = if with_rounds.is_empty() {
            String::new()
        } else {
            format!(
                "; {} of {} bench rates lie within the range of the scenario's rounds",
                with_rounds.iter().filter(|within| **within).count(),
                with_rounds.len()
            )
        };
        let pairs = separated_pairs(&agreed);
        let separated = if pairs.separated == 0 {
            String::new()
        } else {
            format!(
                "; of the {} pairs of servers the scenario tells apart (one faster in every \
                 round; {} pairs in all), the bench orders **{}** the same way",
                pairs.separated, pairs.pairs, pairs.bench_agrees
            )
        };
        match spearman(&bench_rates, &scenario_rates) {
            Some(rho) => {
                let _ = writeln!(
                    out,
                    "> c={connections}: {} servers measured by both; Spearman's rank correlation of the two \
                     rates **{rho:.2}** (1.00: the same order); {same_order} of {} hold the same rank; the \
                     bench's rate is {low:.2}–{high:.2}× the scenario's{within}{separated}.\n",
                    agreed.len(),
                    agreed.len()
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "> c={connections}: too few servers measured by both to compare rankings.\n"
                );
            }
        }
        if !client_bound.is_empty() {
            let _ = writeln!(
                out,
                "> **Client-bound at c={connections}:** the client used more than {:.0} % of its threads' \
                 time against {}: those rates are at least partly the client's.\n",
                CLIENT_BUSY_LIMIT * 100.0,
                client_bound.join(", ")
            );
        }
    }
}

fn format_rank(rank: f64) -> String {
    if rank.fract() == 0.0 {
        format!("{rank:.0}")
    } else {
        format!("{rank:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_put_the_largest_first_and_share_ties() {
        assert_eq!(ranks(&[10.0, 30.0, 20.0]), [3.0, 1.0, 2.0]);
        assert_eq!(ranks(&[5.0, 5.0, 1.0]), [1.5, 1.5, 3.0]);
        assert!(ranks(&[]).is_empty());
    }

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_reversed() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let close = |value: Option<f64>, expected: f64| {
            value.is_some_and(|value| (value - expected).abs() < 1e-12)
        };
        assert!(close(spearman(&a, &[10.0, 20.0, 30.0, 40.0]), 1.0));
        assert!(close(spearman(&a, &[4.0, 3.0, 2.0, 1.0]), -1.0));
        // One swap of neighbours among four: 1 − 6·2 / (4·15) = 0.8.
        assert!(close(spearman(&a, &[2.0, 1.0, 3.0, 4.0]), 0.8));
        assert_eq!(spearman(&a[..2], &a[..2]), None);
        assert_eq!(spearman(&a, &[1.0; 4]), None);
    }

    #[test]
    fn a_bench_rate_is_placed_against_the_scenario_rounds() {
        let agreement = |bench_rps, rounds: &[f64]| Agreement {
            style: "tokio".into(),
            connections: 32,
            bench_rps,
            scenario_rps: 100.0,
            scenario_client_busy: None,
            scenario_rounds: round_range(rounds),
            scenario_round_rps: rounds.to_vec(),
        };
        assert_eq!(
            agreement(95.0, &[90.0, 110.0, 100.0]).bench_within_rounds(),
            Some(true)
        );
        assert_eq!(
            agreement(60.0, &[90.0, 110.0, 100.0]).bench_within_rounds(),
            Some(false)
        );
        assert_eq!(agreement(60.0, &[]).bench_within_rounds(), None);
        assert_eq!(round_range(&[3.0, 1.0, 2.0]), Some((1.0, 3.0)));
    }

    #[test]
    fn only_pairs_separated_in_every_round_are_scored() {
        let agreement = |style: &str, bench_rps, rounds: &[f64]| Agreement {
            style: style.into(),
            connections: 1,
            bench_rps,
            scenario_rps: rounds.iter().sum::<f64>() / rounds.len() as f64,
            scenario_client_busy: None,
            scenario_rounds: round_range(rounds),
            scenario_round_rps: rounds.to_vec(),
        };
        let agreed = [
            // a beats c in every round; b crosses both.
            agreement("a", 100.0, &[30.0, 31.0, 32.0]),
            agreement("b", 90.0, &[35.0, 5.0, 20.0]),
            agreement("c", 120.0, &[10.0, 11.0, 12.0]),
        ];
        // One pair (a, c) is separated, and the bench orders it the other way.
        assert_eq!(
            separated_pairs(&agreed),
            SeparatedPairs {
                separated: 1,
                bench_agrees: 0,
                pairs: 3
            }
        );
        let agreed = [agreed[0].clone(), agreement("c", 50.0, &[10.0, 11.0, 12.0])];
        assert_eq!(separated_pairs(&agreed).bench_agrees, 1);
        // Too few rounds to tell anything apart.
        let short = [
            agreement("a", 1.0, &[3.0, 3.0]),
            agreement("b", 2.0, &[1.0, 1.0]),
        ];
        assert_eq!(separated_pairs(&short).pairs, 0);
    }
}
