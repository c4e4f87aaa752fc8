//! `concbench load`: drive any server of the protocol (or any one-line request/response
//! server) and report its rate and latency.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use loadgen::{LoadConfig, LoadReport, RequestSpec, StopAfter};

use super::progress::LoadProgress;

/// Options of `concbench load`.
#[derive(Debug, clap::Args)]
pub(crate) struct LoadArgs {
    /// The server's address.
    #[arg(long)]
    addr: SocketAddr,
    /// Concurrent connections, each with one request outstanding at a time.
    #[arg(long, short = 'c', default_value_t = 1)]
    connections: usize,
    /// How long to send, e.g. `10s`, `500ms` or `2.5` (seconds) [default: 10s unless --requests].
    #[arg(long, short = 'd', value_parser = parse_duration)]
    duration: Option<Duration>,
    /// How many requests to send; with --duration too, whichever ends first.
    #[arg(long, short = 'r')]
    requests: Option<u64>,
    /// The n of each `fib(n)` request.
    #[arg(long, default_value_t = 1, conflicts_with = "request")]
    n: u32,
    /// Send `wait N` instead of `N`: each request is answered by the server asking its
    /// backend (`serve --backend`), the `io_wait` workload.
    #[arg(long, conflicts_with = "request")]
    wait: bool,
    /// Open loop: requests per second over all connections, latency measured from each
    /// request's due time. Without it, closed loop: as fast as the server answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Raw mode: send this line (CRLF-terminated) instead of a fib request…
    #[arg(long, requires = "expect")]
    request: Option<String>,
    /// …and count a reply right when it starts with this (e.g. `+PONG` for redis `PING`).
    #[arg(long, requires = "request")]
    expect: Option<String>,
    /// Client threads, each running its share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// A request unanswered this long counts as timed out.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// The hard limit on the whole run, whatever else is set.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    max_duration: Duration,
    /// Closed loop: spread the connections' first requests over this long (about one
    /// round trip of a slow server), so they do not run in step [default: all at once].
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    ramp: Duration,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: &LoadArgs) -> anyhow::Result<()> {
    let request = match (&args.request, &args.expect) {
        (Some(line), Some(expect_prefix)) => RequestSpec::Raw {
            line: line.clone(),
            expect_prefix: expect_prefix.clone(),
        },
        _ if args.wait => RequestSpec::Wait { n: args.n },
        _ => RequestSpec::Fib { n: args.n },
    };
    super::raise_open_files_limit();
    let duration = match (args.duration, args.requests) {
        (None, None) => Some(Duration::from_secs(10)),
        (duration, _) => duration,
    };
    let config = LoadConfig {
        ramp: args.ramp,
        addr: args.addr,
        connections: args.connections,
        threads: args.threads,
        stop: StopAfter {
            duration,
            requests: args.requests,
            max_duration: args.max_duration,
            settle: Duration::ZERO,
        },
        rate: args.rate,
        request,
        request_timeout: args.timeout,
    };
    let progress = LoadProgress::new(&config.stop, &format!("load {}", args.addr));
    let report = loadgen::run(&config, |sample| progress.update(sample)).context("load failed")?;
    progress.finish();

    let mut stdout = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
    } else {
        write_table(&mut stdout, &report)?;
    }
    stdout.flush()?;
    if report.wrong > 0 {
        bail!("{} wrong answers: the server is broken", report.wrong);
    }
    Ok(())
}

fn write_table(out: &mut impl Write, report: &LoadReport) -> io::Result<()> {
    let mode = match report.target_rate {
        Some(rate) => format!("open loop at {rate} req/s"),
        None => "closed loop".to_owned(),
    };
    writeln!(
        out,
        "{} — {} connections, {mode}, {:.1} s",
        report.addr, report.connections, report.elapsed_s
    )?;
    writeln!(
        out,
        "{:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "due", "answered", "req/s", "errors", "failed", "p50", "p99", "p99.9", "max"
    )?;
    let latency = &report.latency;
    // Latencies of requests given up on are lower bounds: so are the percentiles.
    let bound = if report.latency_lower_bounds > 0 {
        "≥"
    } else {
        ""
    };
    let micros = |us: Option<u64>| {
        us.map_or_else(
            || "—".to_owned(),
            |us| format!("{bound}{}", super::format_micros(us)),
        )
    };
    writeln!(
        out,
        "{:>10} {:>10} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        report.due,
        report.requests,
        report.rps,
        report.errors + report.wrong,
        report.failed + report.timed_out + report.unanswered + report.unsent,
        micros(latency.p50_us),
        micros(latency.p99_us),
        micros(latency.p999_us),
        micros(latency.max_us),
    )?;
    if report.unasked + report.overlong > 0 {
        writeln!(
            out,
            "of the errors: {} replies not asked for, {} reply lines over the bound",
            report.unasked, report.overlong
        )?;
    }
    if let Some(lateness) = report.send_lateness {
        writeln!(
            out,
            "the client sent {} late at p50, {} at p99, {} at most (inside every latency above)",
            super::format_micros(lateness.p50_us),
            super::format_micros(lateness.p99_us),
            super::format_micros(lateness.max_us),
        )?;
    }
    if report.latency_lower_bounds > 0 {
        writeln!(
            out,
            "≥: {} of the latencies are requests given up on (timed out, unanswered, unsent), counted until the client gave up",
            report.latency_lower_bounds
        )?;
    }
    Ok(())
}

/// Parses `10`, `2.5` (seconds), `10s`, `500ms`, `2m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit_seconds) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1e-3)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1.0)
    } else if let Some(number) = text.strip_suffix('m') {
        (number, 60.0)
    } else {
        (text, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite() && *value >= 0.0)
        .and_then(|value| Duration::try_from_secs_f64(value * unit_seconds).ok())
        .ok_or_else(|| format!("{text:?} is not a duration (try 10s, 500ms or 2.5)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2.5s"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
