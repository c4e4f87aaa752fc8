//! The worker process's side of the engine: one benchmark, one style, built once.
//!
//! `concbench measure-worker --benchmark ID` calls [`serve`]. The style lives in this
//! process alone, so no other style's runtime, threads or global executor runs beside
//! it. Each sample runs its iterations back to back and keeps their answers; the clock
//! and the CPU counters stop before the answers are checked, so the check is never
//! timed, yet a wrong answer fails the sample.

use std::io::{BufRead, Read, Write};
use std::time::Instant;

use workloads::{StyleConfig, StyleError};

use crate::MeasureError;
use crate::cpu;
use crate::protocol::{MAX_LINE_BYTES, PROTOCOL_VERSION, Reply, Request};
use crate::suite::{self, Answer, BenchmarkId};

/// Serves the benchmark `id` on `input` and `output` until `input` ends.
///
/// Replies [`Reply::Unknown`] and returns `Ok` when this build has no such benchmark or
/// does not run it here; replies [`Reply::Failed`] and returns the error when the style
/// cannot be built, fails, or answers wrongly.
pub fn serve(
    id: &BenchmarkId,
    config: &StyleConfig,
    mut input: impl BufRead,
    mut output: impl Write,
) -> Result<(), MeasureError> {
    let Some((entry, case)) = suite::find(id) else {
        let message = format!("this build has no benchmark `{id}`");
        return send(&mut output, &Reply::Unknown { message });
    };
    if let Err(reason) = case.applies_to(entry) {
        let message = format!("`{id}` does not run here: {reason}");
        return send(&mut output, &Reply::Unknown { message });
    }
    let fail = |output: &mut dyn Write, message: String| {
        let _ = send(
            output,
            &Reply::Failed {
                message: message.clone(),
            },
        );
        Err(MeasureError::Worker(message))
    };
    let style = match (entry.build)(config) {
        Ok(style) => style,
        Err(error) => {
            return fail(
                &mut output,
                format!("{id}: cannot build the style: {error}"),
            );
        }
    };
    // The first answer is checked before anything is timed (and warms the style up).
    // A style that refuses this configuration (the pool's `ping_pong` on one worker)
    // does not run here, like a workload it does not do: the engine leaves it out of
    // the cohort with the reason, instead of failing the run.
    let first = match case.run(&*style) {
        Err(StyleError::Config(reason)) => {
            let message = format!(
                "`{id}` does not run here: not attempted at {} workers: {reason}",
                config.workers
            );
            return send(&mut output, &Reply::Unknown { message });
        }
        first => first.map_err(|error| error.to_string()),
    };
    if let Err(message) = first.and_then(|answer| case.check(&answer)) {
        return fail(&mut output, format!("{id}: {message}"));
    }
    send(
        &mut output,
        &Reply::Ready {
            protocol: PROTOCOL_VERSION,
            id: id.to_string(),
            pid: std::process::id(),
        },
    )?;

    let mut line = String::new();
    loop {
        line.clear();
        let read = Read::take(input.by_ref(), MAX_LINE_BYTES as u64)
            .read_line(&mut line)
            .map_err(MeasureError::io("cannot read the engine's request"))?;
        if read == 0 {
            return Ok(());
        }
        let request: Request = match serde_json::from_str(line.trim_end()) {
            Ok(request) => request,
            Err(error) => {
                return fail(&mut output, format!("unreadable request {line:?}: {error}"));
            }
        };
        let Request::Sample { iterations } = request;
        let mut answers: Vec<Answer> = Vec::with_capacity(iterations.min(1 << 16) as usize);
        let cpu_before = cpu::process_tree_cpu();
        let start = Instant::now();
        let mut failure = None;
        for _ in 0..iterations {
            match case.run(&*style) {
                Ok(answer) => answers.push(answer),
                Err(error) => {
                    failure = Some(error.to_string());
                    break;
                }
            }
        }
        let wall = start.elapsed();
        let cpu_used = cpu::process_tree_cpu().saturating_sub(cpu_before);
        if let Some(message) = failure {
            return fail(&mut output, format!("{id}: {message}"));
        }
        for answer in &answers {
            if let Err(message) = case.check(answer) {
                return fail(&mut output, format!("{id} gave a wrong answer: {message}"));
            }
        }
        let checked = answers.len() as u64;
        drop(answers);
        send(
            &mut output,
            &Reply::Sample {
                iterations: checked,
                wall_ns: wall.as_nanos() as u64,
                cpu_ns: cpu_used.as_nanos() as u64,
            },
        )?;
    }
}

fn send(output: &mut dyn Write, reply: &Reply) -> Result<(), MeasureError> {
    let mut line =
        serde_json::to_string(reply).map_err(|error| MeasureError::Worker(error.to_string()))?;
    line.push('\n');
    output
        .write_all(line.as_bytes())
        .and_then(|()| output.flush())
        .map_err(MeasureError::io("cannot write to the engine"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(output: &[u8]) -> Vec<Reply> {
        String::from_utf8_lossy(output)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a reply"))
            .collect()
    }

    fn config() -> StyleConfig {
        StyleConfig::new(std::num::NonZeroUsize::MIN)
    }

    #[test]
    fn serves_samples_until_its_input_ends() {
        let id = BenchmarkId::parse("fib_forkjoin/seq/34-cutoff20").expect("id");
        let input = b"{\"sample\":{\"iterations\":1}}\n{\"sample\":{\"iterations\":2}}\n";
        let mut output = Vec::new();
        serve(&id, &config(), &input[..], &mut output).expect("serves");
        let replies = replies(&output);
        assert_eq!(replies.len(), 3, "{replies:?}");
        assert!(matches!(
            replies[0],
            Reply::Ready {
                protocol: PROTOCOL_VERSION,
                ..
            }
        ));
        // Each sample says how many iterations it ran and checked; no timing is
        // compared here (a loaded host can slow either one).
        for (reply, asked) in replies[1..].iter().zip([1, 2]) {
            let Reply::Sample {
                iterations,
                wall_ns,
                cpu_ns,
            } = *reply
            else {
                panic!("a sample: {replies:?}");
            };
            assert_eq!(iterations, asked, "{replies:?}");
            assert!(wall_ns > 0 && cpu_ns > 0, "{replies:?}");
        }
    }

    #[test]
    fn unknown_benchmarks_and_garbage_requests_are_answered() {
        let id = BenchmarkId::parse("fib_batch/seq/65x27").expect("id");
        let mut output = Vec::new();
        serve(&id, &config(), &b""[..], &mut output).expect("says unknown");
        assert!(matches!(replies(&output)[..], [Reply::Unknown { .. }]));

        let id = BenchmarkId::parse("ping_pong/seq/10000").expect("id");
        let mut output = Vec::new();
        serve(&id, &config(), &b""[..], &mut output).expect("says unknown");
        let [Reply::Unknown { message }] = &replies(&output)[..] else {
            panic!("unknown");
        };
        assert!(message.contains("n/a"), "{message}");

        // The pool's ping_pong needs two workers: at one it is left out with the reason,
        // not a failure that would end the whole run.
        let id = BenchmarkId::parse("ping_pong/pool/10000").expect("id");
        let mut output = Vec::new();
        serve(&id, &config(), &b""[..], &mut output).expect("says not attempted");
        let [Reply::Unknown { message }] = &replies(&output)[..] else {
            panic!("not attempted: {:?}", replies(&output));
        };
        assert!(
            message.contains("not attempted at 1 workers") && message.contains("2 workers"),
            "{message}"
        );

        let id = BenchmarkId::parse("fib_batch/seq/64x27").expect("id");
        let mut output = Vec::new();
        assert!(serve(&id, &config(), &b"sample please\n"[..], &mut output).is_err());
        assert!(matches!(
            replies(&output)[..],
            [Reply::Ready { .. }, Reply::Failed { .. }]
        ));
    }
}
