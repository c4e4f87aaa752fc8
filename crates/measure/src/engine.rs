//! Rounds: every contender sampled once per round, in a freshly shuffled order, and each
//! pair's ratio taken within the round.
//!
//! Two designs share the scheduler:
//!
//! - [`Design::Cohort`] — the styles of one workload and size against a reference style.
//!   Each round visits every contender once, in shuffled order; each style's ratio to the
//!   reference is taken in that round. The run ends when every ratio's interval reaches
//!   the target (or the budget ends).
//! - [`Design::AbPairs`] — base and head builds of the same benchmarks. Each round
//!   visits the pairs still open in shuffled order, and samples each pair's two sides
//!   back to back, base first in one round of that pair and head first in its next
//!   (ABBA across rounds, so neither side always goes first). A pair whose interval
//!   reaches the target stops being sampled; the rest go on.
//!
//! Only one contender runs at a time. Each sample is `k` iterations, `k` calibrated once
//! per contender (see [`calibrate`]) so that a sample lasts about [`SAMPLE_TARGET`].

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::MeasureError;
use crate::stats::{self, Interval, StopReason, Stopping};

/// How long one sample should last: long enough that timer and scheduling jitter are
/// small beside it, short enough that the machine's speed barely drifts within a round.
/// On the 2-core shared host this was tuned on, adjacent samples of the same code
/// disagreed by 7–12 % at 20–45 ms and by about 3.5 % at 90–190 ms; 90 ms gave the
/// most precision per second of measuring (see ARCHITECTURE.md).
pub const SAMPLE_TARGET: Duration = Duration::from_millis(90);

/// The most iterations one sample may ask for.
pub const MAX_ITERATIONS: u64 = 10_000_000;

/// What one sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Wall-clock time of the whole sample.
    pub wall: Duration,
    /// CPU time (user + system) of the contender's processes during it.
    pub cpu: Duration,
}

/// Something that can be sampled: a worker process, or a synthetic one in tests.
pub trait Contender {
    /// Who it is, for messages.
    fn label(&self) -> String;
    /// Runs `iterations` iterations as one sample, answers checked.
    fn sample(&mut self, iterations: u64) -> Result<Sample, MeasureError>;
}

/// A sample's per-iteration times, nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PerIteration {
    /// Wall time per iteration.
    pub wall_ns: f64,
    /// CPU time per iteration.
    pub cpu_ns: f64,
}

/// Two contenders whose ratio is estimated: `time(numerator) / time(denominator)` in
/// each round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Index of the contender on top.
    pub numerator: usize,
    /// Index of the contender below.
    pub denominator: usize,
}

/// How rounds are laid out (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Design {
    /// Every contender once a round, in shuffled order; the run ends when all pairs
    /// reach the target.
    Cohort,
    /// Each open pair's two sides back to back, pairs in shuffled order, sides in
    /// alternating order; a pair that reaches the target closes.
    AbPairs,
}

/// What the scheduler is asked to do.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The layout of the rounds.
    pub design: Design,
    /// The ratios to estimate.
    pub pairs: Vec<Pair>,
    /// Iterations per sample, one per contender.
    pub iterations: Vec<u64>,
    /// When to stop.
    pub stopping: Stopping,
    /// The seed of every shuffle and every bootstrap of the run.
    pub seed: u64,
}

/// Where a run stands, for progress lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Rounds finished.
    pub rounds: usize,
    /// Time in rounds so far.
    pub elapsed: Duration,
    /// Pairs still being sampled.
    pub open_pairs: usize,
    /// The widest interval's half-width among the open pairs, when computable.
    pub widest: Option<f64>,
}

/// One pair's result.
#[derive(Debug, Clone, PartialEq)]
pub struct PairOutcome {
    /// `ln(numerator / denominator)` per round, per iteration.
    pub log_ratios: Vec<f64>,
    /// The ratio with its interval; `None` with fewer than two rounds.
    pub interval: Option<Interval>,
    /// Why this pair stopped being sampled.
    pub stop: StopReason,
}

/// A run's result.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// Rounds run.
    pub rounds: usize,
    /// Time spent in rounds.
    pub elapsed: Duration,
    /// Why the run stopped.
    pub stop: StopReason,
    /// Per contender, its samples in the order taken.
    pub samples: Vec<Vec<PerIteration>>,
    /// Per pair, in the schedule's order.
    pub pairs: Vec<PairOutcome>,
}

/// Finds `k`, the iterations per sample that make one sample last about `target`: one
/// iteration timed for a first guess, then three samples of that guess, whose median
/// refines it (one sample alone would fix `k` for the whole run on whatever the host
/// did in that one moment). All four samples also warm the contender up; none is kept.
pub fn calibrate(contender: &mut dyn Contender, target: Duration) -> Result<u64, MeasureError> {
    let iterations_for = |wall: Duration, iterations: u64| {
        let per_iteration = wall.as_secs_f64() / iterations as f64;
        if per_iteration <= 0.0 {
            return MAX_ITERATIONS;
        }
        ((target.as_secs_f64() / per_iteration).round() as u64).clamp(1, MAX_ITERATIONS)
    };
    let first = iterations_for(contender.sample(1)?.wall, 1);
    if first == 1 {
        return Ok(1);
    }
    let mut refines = [Duration::ZERO; 3];
    for refine in &mut refines {
        *refine = contender.sample(first)?.wall;
    }
    refines.sort_unstable();
    Ok(iterations_for(refines[1], first))
}

/// Runs rounds over `contenders` as `schedule` says, calling `progress` after each
/// round. A failing sample ends the run with its error.
pub fn run(
    contenders: &mut [&mut dyn Contender],
    schedule: &Schedule,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RunOutcome, MeasureError> {
    if schedule.iterations.len() != contenders.len() {
        return Err(MeasureError::Unusable(format!(
            "{} iteration counts for {} contenders",
            schedule.iterations.len(),
            contenders.len()
        )));
    }
    let mut rng = stats::run_rng(schedule.seed);
    let mut samples: Vec<Vec<PerIteration>> = vec![Vec::new(); contenders.len()];
    let mut log_ratios: Vec<Vec<f64>> = vec![Vec::new(); schedule.pairs.len()];
    let mut intervals: Vec<Option<Interval>> = vec![None; schedule.pairs.len()];
    let mut closed: Vec<Option<StopReason>> = vec![None; schedule.pairs.len()];
    let sample_of = |contenders: &mut [&mut dyn Contender], index: usize| {
        let iterations = schedule.iterations[index];
        let sample = contenders[index].sample(iterations)?;
        Ok::<_, MeasureError>(PerIteration {
            wall_ns: sample.wall.as_nanos() as f64 / iterations as f64,
            cpu_ns: sample.cpu.as_nanos() as f64 / iterations as f64,
        })
    };

    let start = Instant::now();
    let mut rounds = 0;
    let stop = loop {
        let open: Vec<usize> = (0..schedule.pairs.len())
            .filter(|&pair| closed[pair].is_none())
            .collect();
        let mut this_round: Vec<Option<PerIteration>> = vec![None; contenders.len()];
        match schedule.design {
            Design::Cohort => {
                for index in stats::round_order(&mut rng, contenders.len()) {
                    this_round[index] = Some(sample_of(contenders, index)?);
                }
            }
            Design::AbPairs => {
                for slot in stats::round_order(&mut rng, open.len()) {
                    let pair_index = open[slot];
                    let pair = schedule.pairs[pair_index];
                    // The pair's own round count decides who goes first, so each pair
                    // alternates whatever the others do.
                    let sides = if log_ratios[pair_index].len().is_multiple_of(2) {
                        [pair.denominator, pair.numerator]
                    } else {
                        [pair.numerator, pair.denominator]
                    };
                    for index in sides {
                        this_round[index] = Some(sample_of(contenders, index)?);
                    }
                }
            }
        }
        for (index, measured) in this_round.iter().enumerate() {
            if let Some(measured) = measured {
                samples[index].push(*measured);
            }
        }
        for &pair_index in &open {
            let pair = schedule.pairs[pair_index];
            if let (Some(top), Some(bottom)) =
                (this_round[pair.numerator], this_round[pair.denominator])
            {
                log_ratios[pair_index].push((top.wall_ns / bottom.wall_ns).ln());
            }
        }
        rounds += 1;
        let elapsed = start.elapsed();
        for &pair_index in &open {
            intervals[pair_index] =
                stats::ratio_interval(&log_ratios[pair_index], schedule.seed ^ pair_index as u64);
        }
        let widths: Vec<Option<f64>> = open
            .iter()
            .map(|&pair| intervals[pair].map(|interval| interval.relative_half_width()))
            .collect();
        if schedule.design == Design::AbPairs {
            for &pair_index in &open {
                closed[pair_index] = schedule
                    .stopping
                    .pair_closes(log_ratios[pair_index].len(), intervals[pair_index]);
            }
        }
        let still_open = closed.iter().filter(|reason| reason.is_none()).count();
        progress(&Progress {
            rounds,
            elapsed,
            open_pairs: still_open,
            widest: widths.iter().flatten().copied().reduce(f64::max),
        });
        let verdict = if still_open == 0 {
            // Every pair closed: the run is as decided as its least decided pair.
            Some(if closed.contains(&Some(StopReason::Settled)) {
                StopReason::Settled
            } else {
                StopReason::Converged
            })
        } else if schedule.design == Design::AbPairs {
            // A pair still open is undecided (`pair_closes` said so, even if its interval
            // is narrow): only the run's limits end it now.
            schedule.stopping.limit_reached(rounds, elapsed)
        } else {
            let open_widths: Vec<Option<f64>> = (0..schedule.pairs.len())
                .filter(|&pair| closed[pair].is_none())
                .map(|pair| intervals[pair].map(|interval| interval.relative_half_width()))
                .collect();
            schedule.stopping.verdict(rounds, elapsed, &open_widths)
        };
        if let Some(reason) = verdict {
            break reason;
        }
    };
    let pairs = log_ratios
        .into_iter()
        .zip(intervals)
        .zip(closed)
        .map(|((log_ratios, interval), closed)| PairOutcome {
            log_ratios,
            interval,
            stop: closed.unwrap_or(stop),
        })
        .collect();
    Ok(RunOutcome {
        rounds,
        elapsed: start.elapsed(),
        stop,
        samples,
        pairs,
    })
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use super::*;

    /// A machine whose speed drifts slowly: the time of one unit of work at virtual
    /// time `t` (seconds) is `1 + 0.5·sin(2πt / period)`; sampling advances the clock.
    struct DriftingMachine {
        clock: Rc<Cell<f64>>,
        period: f64,
    }

    impl DriftingMachine {
        fn run(&self, work_seconds: f64) -> Duration {
            let now = self.clock.get();
            let speed = 1.0 + 0.5 * (2.0 * std::f64::consts::PI * now / self.period).sin();
            let took = work_seconds * speed;
            self.clock.set(now + took);
            Duration::from_secs_f64(took)
        }
    }

    struct Synthetic {
        name: &'static str,
        machine: Rc<DriftingMachine>,
        seconds_per_iteration: f64,
        samples_taken: usize,
        fail_at: Option<usize>,
    }

    impl Contender for Synthetic {
        fn label(&self) -> String {
            self.name.to_owned()
        }

        fn sample(&mut self, iterations: u64) -> Result<Sample, MeasureError> {
            self.samples_taken += 1;
            if self.fail_at == Some(self.samples_taken) {
                return Err(MeasureError::Worker(format!(
                    "{} gave a wrong answer",
                    self.name
                )));
            }
            let wall = self
                .machine
                .run(self.seconds_per_iteration * iterations as f64);
            Ok(Sample { wall, cpu: wall })
        }
    }

    fn machine(period: f64) -> Rc<DriftingMachine> {
        Rc::new(DriftingMachine {
            clock: Rc::new(Cell::new(0.0)),
            period,
        })
    }

    fn synthetic(name: &'static str, machine: &Rc<DriftingMachine>, seconds: f64) -> Synthetic {
        Synthetic {
            name,
            machine: Rc::clone(machine),
            seconds_per_iteration: seconds,
            samples_taken: 0,
            fail_at: None,
        }
    }

    fn stopping(max_rounds: usize) -> Stopping {
        Stopping {
            target: 0.01,
            min_rounds: 10,
            max_rounds,
            budget: Duration::from_secs(3600),
            settle: None,
        }
    }

    #[test]
    fn calibration_aims_at_the_sample_target() {
        let machine = machine(1e12);
        let mut fast = synthetic("fast", &machine, 0.000_5);
        assert_eq!(
            calibrate(&mut fast, SAMPLE_TARGET).expect("calibrates"),
            180
        );
        let mut slow = synthetic("slow", &machine, 0.2);
        assert_eq!(calibrate(&mut slow, SAMPLE_TARGET).expect("calibrates"), 1);
    }

    #[test]
    fn one_slow_refine_sample_does_not_fix_k_for_the_run() {
        let ms = Duration::from_millis;
        // First guess from 1 ms per iteration: 90 iterations. Of the three refines, one
        // ran while the host stalled (3 ms per iteration); the median is the typical 1 ms.
        let mut spiked = Cycling {
            per_iteration: vec![ms(1), ms(1), ms(3), ms(1)],
            taken: 0,
        };
        assert_eq!(
            calibrate(&mut spiked, SAMPLE_TARGET).expect("calibrates"),
            90
        );
        assert_eq!(spiked.taken, 4, "one guess and three refines");
        // A machine that really is slower after the first sample gets a smaller k.
        let mut slower = Cycling {
            per_iteration: vec![ms(1), ms(2), ms(2), ms(2)],
            taken: 0,
        };
        assert_eq!(
            calibrate(&mut slower, SAMPLE_TARGET).expect("calibrates"),
            45
        );
    }

    /// The machine's speed swings by ±50 % over 20 virtual seconds; a round of the three
    /// contenders takes about 0.2 s, the whole run tens of seconds. Measured one after
    /// another (as criterion does), each contender sees a different part of the swing;
    /// paired within rounds, the swing cancels.
    #[test]
    fn paired_rounds_stay_right_on_a_drifting_machine_where_unpaired_ones_do_not() {
        let truth = [1.0, 0.5, 0.8]; // seq, a parallel style, another.
        let drifting = machine(20.0);
        let mut seq = synthetic("seq", &drifting, 0.075 * truth[0]);
        let mut parallel = synthetic("parallel", &drifting, 0.075 * truth[1]);
        let mut other = synthetic("other", &drifting, 0.075 * truth[2]);
        let schedule = Schedule {
            design: Design::Cohort,
            pairs: vec![
                Pair {
                    numerator: 1,
                    denominator: 0,
                },
                Pair {
                    numerator: 2,
                    denominator: 0,
                },
            ],
            iterations: vec![1, 1, 1],
            stopping: stopping(60),
            seed: 3,
        };
        let mut contenders: [&mut dyn Contender; 3] = [&mut seq, &mut parallel, &mut other];
        let outcome = run(&mut contenders, &schedule, &mut |_| {}).expect("runs");
        for (pair, expected) in outcome.pairs.iter().zip([truth[1], truth[2]]) {
            let interval = pair.interval.expect("an interval");
            assert!(
                (interval.point / expected - 1.0).abs() < 0.02,
                "paired estimate {interval:?}, truth {expected}"
            );
            assert!(
                interval.lower <= expected * 1.01 && interval.upper >= expected * 0.99,
                "{interval:?}"
            );
        }

        // The same machine, the same contenders, measured criterion's way: all of one
        // contender's samples, then all of the next's.
        let drifting = machine(20.0);
        let contiguous = |seconds: f64| {
            let contender = synthetic("x", &drifting, seconds);
            let times: Vec<f64> = (0..40)
                .map(|_| contender.machine.run(seconds).as_secs_f64())
                .collect();
            stats::median(&times).expect("times")
        };
        let seq_time = contiguous(0.075 * truth[0]);
        let parallel_time = contiguous(0.075 * truth[1]);
        let unpaired = parallel_time / seq_time;
        assert!(
            (unpaired / truth[1] - 1.0).abs() > 0.1,
            "the unpaired ratio {unpaired} should be visibly off the truth {}",
            truth[1]
        );
    }

    #[test]
    fn ab_pairs_alternate_sides_and_close_when_converged() {
        let steady = machine(1e12);
        let mut base_a = synthetic("a (base)", &steady, 0.01);
        let mut head_a = synthetic("a (head)", &steady, 0.0105);
        let mut base_b = synthetic("b (base)", &steady, 0.02);
        let mut head_b = synthetic("b (head)", &steady, 0.02);
        let schedule = Schedule {
            design: Design::AbPairs,
            pairs: vec![
                Pair {
                    numerator: 1,
                    denominator: 0,
                },
                Pair {
                    numerator: 3,
                    denominator: 2,
                },
            ],
            iterations: vec![5, 5, 3, 3],
            stopping: stopping(100),
            seed: 11,
        };
        let mut rounds_seen = Vec::new();
        let mut contenders: [&mut dyn Contender; 4] =
            [&mut base_a, &mut head_a, &mut base_b, &mut head_b];
        let outcome = run(&mut contenders, &schedule, &mut |progress| {
            rounds_seen.push(progress.rounds)
        })
        .expect("runs");
        // A steady machine: every interval is exact, so both pairs close at the minimum.
        assert_eq!(outcome.rounds, 10);
        assert_eq!(outcome.stop, StopReason::Converged);
        assert_eq!(rounds_seen, (1..=10).collect::<Vec<_>>());
        let change = outcome.pairs[0].interval.expect("interval").as_change();
        assert!((change.point - 0.05).abs() < 1e-9, "{change:?}");
        assert!(outcome.pairs[1].interval.expect("interval").point - 1.0 < 1e-9);
        assert!(outcome.samples.iter().all(|samples| samples.len() == 10));
    }

    /// Plays back per-iteration wall times, one per sample, from the start again when
    /// they run out: a test puts a spike or an alternation exactly where it wants.
    struct Cycling {
        per_iteration: Vec<Duration>,
        taken: usize,
    }

    impl Contender for Cycling {
        fn label(&self) -> String {
            "cycling".into()
        }
        fn sample(&mut self, iterations: u64) -> Result<Sample, MeasureError> {
            let per_iteration = self.per_iteration[self.taken % self.per_iteration.len()];
            self.taken += 1;
            let wall = per_iteration * iterations as u32;
            Ok(Sample { wall, cpu: wall })
        }
    }

    #[test]
    fn a_gate_keeps_sampling_a_narrow_interval_that_straddles_the_threshold() {
        let us = Duration::from_micros;
        // Head is 2 % or 4 % slower than base, sample by sample: the estimate sits at
        // the 3 % threshold with an interval far narrower than the ±1 % target, yet
        // neither "regressed" nor "unchanged" — it must not close as converged.
        let mut base = Cycling {
            per_iteration: vec![us(1000)],
            taken: 0,
        };
        let mut head = Cycling {
            per_iteration: vec![us(1020), us(1040)],
            taken: 0,
        };
        // And a pair that is plainly unchanged, which settles.
        let mut other_base = Cycling {
            per_iteration: vec![us(500)],
            taken: 0,
        };
        let mut other_head = Cycling {
            per_iteration: vec![us(500), us(501)],
            taken: 0,
        };
        let schedule = Schedule {
            design: Design::AbPairs,
            pairs: vec![
                Pair {
                    numerator: 1,
                    denominator: 0,
                },
                Pair {
                    numerator: 3,
                    denominator: 2,
                },
            ],
            iterations: vec![1, 1, 1, 1],
            stopping: Stopping {
                settle: Some(0.03),
                ..stopping(40)
            },
            seed: 5,
        };
        let mut contenders: [&mut dyn Contender; 4] =
            [&mut base, &mut head, &mut other_base, &mut other_head];
        let outcome = run(&mut contenders, &schedule, &mut |_| {}).expect("runs");
        let straddling = outcome.pairs[0].interval.expect("interval");
        assert!(
            straddling.relative_half_width() < 0.01,
            "narrower than the target: {straddling:?}"
        );
        assert!(
            straddling.lower <= 1.03 && straddling.upper >= 1.03,
            "{straddling:?}"
        );
        assert_eq!(outcome.pairs[0].stop, StopReason::MaxRounds);
        assert_eq!(outcome.stop, StopReason::MaxRounds);
        assert_eq!(outcome.rounds, 40);
        assert_eq!(outcome.pairs[1].stop, StopReason::Settled);
    }

    #[test]
    fn the_first_failure_ends_the_run() {
        let steady = machine(1e12);
        let mut good = synthetic("good", &steady, 0.01);
        let mut bad = synthetic("bad", &steady, 0.01);
        bad.fail_at = Some(4);
        let schedule = Schedule {
            design: Design::Cohort,
            pairs: vec![Pair {
                numerator: 1,
                denominator: 0,
            }],
            iterations: vec![1, 1],
            stopping: stopping(100),
            seed: 1,
        };
        let mut contenders: [&mut dyn Contender; 2] = [&mut good, &mut bad];
        let error = run(&mut contenders, &schedule, &mut |_| {}).expect_err("fails");
        assert!(
            error.to_string().contains("bad gave a wrong answer"),
            "{error}"
        );
    }

    #[test]
    fn the_budget_and_the_round_limit_stop_a_noisy_run() {
        let swinging = machine(0.05); // swings within a sample: never converges to ±1 %.
        let mut a = synthetic("a", &swinging, 0.0071);
        let mut b = synthetic("b", &swinging, 0.0133);
        let schedule = Schedule {
            design: Design::Cohort,
            pairs: vec![Pair {
                numerator: 1,
                denominator: 0,
            }],
            iterations: vec![1, 1],
            stopping: Stopping {
                target: 0.000_001,
                ..stopping(25)
            },
            seed: 5,
        };
        let mut contenders: [&mut dyn Contender; 2] = [&mut a, &mut b];
        let outcome = run(&mut contenders, &schedule, &mut |_| {}).expect("runs");
        assert_eq!((outcome.rounds, outcome.stop), (25, StopReason::MaxRounds));
        assert_eq!(outcome.pairs[0].stop, StopReason::MaxRounds);
    }
}
