//! The paired statistics: per-round ratios, a robust centre, a bootstrap interval that
//! resamples whole rounds, and the rule that says when a run has seen enough.
//!
//! Everything works on log ratios, `ln(time / reference time)` within one round: a
//! machine that is 20 % slower for a while slows both sides of a pair alike, and the
//! logarithm makes "twice as slow" and "half as slow" symmetric. The centre is the 20 %
//! trimmed mean of the log ratios (robust to the odd disturbed round, smoother than the
//! median under the bootstrap); the estimate is its exponential.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The share of values cut from each end before averaging.
pub const TRIM: f64 = 0.2;
/// Bootstrap resamples per interval.
pub const RESAMPLES: usize = 2_000;
/// The confidence of every interval.
pub const CONFIDENCE: f64 = 0.95;

/// A ratio with its 95 % bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The estimate.
    pub point: f64,
    /// The interval's lower bound.
    pub lower: f64,
    /// The interval's upper bound.
    pub upper: f64,
}

impl Interval {
    /// How far the interval reaches from the estimate, as a fraction of it (`0.01` for
    /// ±1 %): the larger of the two sides.
    pub fn relative_half_width(&self) -> f64 {
        (self.upper / self.point - 1.0).max(1.0 - self.lower / self.point)
    }

    /// The ratio and its interval as a table shows them, with `decimals` decimals:
    /// `1.91× (1.88–1.95)`.
    pub fn format_ratio(&self, decimals: usize) -> String {
        format!(
            "{:.decimals$}× ({:.decimals$}–{:.decimals$})",
            self.point, self.lower, self.upper
        )
    }

    /// The interval as a relative change, `point − 1` and so on (`+0.05` is 5 % slower).
    pub fn as_change(&self) -> Interval {
        Interval {
            point: self.point - 1.0,
            lower: self.lower - 1.0,
            upper: self.upper - 1.0,
        }
    }
}

/// The mean of `values` after cutting [`TRIM`] of them from each end; `None` when empty.
pub fn trimmed_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let cut = (sorted.len() as f64 * TRIM).floor() as usize;
    let kept = &sorted[cut..sorted.len() - cut];
    Some(kept.iter().sum::<f64>() / kept.len() as f64)
}

/// The median of `values`; `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    })
}

/// The ratio whose per-round logarithms are `log_ratios`: `exp` of their trimmed mean,
/// with a percentile-bootstrap interval from [`RESAMPLES`] resamples of whole rounds
/// (each resample draws as many rounds as there are, with replacement). `None` with
/// fewer than two rounds. `seed` makes the interval reproducible.
pub fn ratio_interval(log_ratios: &[f64], seed: u64) -> Option<Interval> {
    if log_ratios.len() < 2 {
        return None;
    }
    let point = trimmed_mean(log_ratios)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_rounds = log_ratios.len();
    let mut resample = vec![0.0; n_rounds];
    let mut centres = Vec::with_capacity(RESAMPLES);
    for _ in 0..RESAMPLES {
        for slot in &mut resample {
            *slot = log_ratios[index_below(&mut rng, n_rounds)];
        }
        centres.push(trimmed_mean(&resample)?);
    }
    centres.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let at = |quantile: f64| {
        let index = ((centres.len() - 1) as f64 * quantile).round() as usize;
        centres[index]
    };
    Some(Interval {
        point: point.exp(),
        lower: at(tail).exp(),
        upper: at(1.0 - tail).exp(),
    })
}

/// A uniform index below `bound` (> 0), without modulo bias worth speaking of: `bound`
/// is a round count, far below 2^32.
fn index_below(rng: &mut ChaCha8Rng, bound: usize) -> usize {
    (((rng.next_u64() >> 32) * bound as u64) >> 32) as usize
}

/// The order in which one round visits `n_contenders` contenders: a fresh shuffle, drawn
/// from the run's generator (so the whole run's order follows from its seed).
pub fn round_order(rng: &mut ChaCha8Rng, n_contenders: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n_contenders).collect();
    order.shuffle(rng);
    order
}

/// The run's generator, from its recorded seed.
pub fn run_rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// When a run has seen enough.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stopping {
    /// Stop once every interval reaches at most this far from its estimate (`0.01`: ±1 %).
    pub target: f64,
    /// Never judge before this many rounds: an interval from a handful of rounds is
    /// narrower than the truth allows.
    pub min_rounds: usize,
    /// Stop after this many rounds whatever the intervals.
    pub max_rounds: usize,
    /// Stop when the measured rounds have taken this long (set-up and warm-up not
    /// counted).
    #[serde(with = "duration_secs")]
    pub budget: Duration,
    /// A/B gates only: a pair also stops once its whole interval lies within
    /// `1 ± settle` (its change cannot cross the gate's threshold any more), so the
    /// budget goes to the pairs still undecided. A pair is never stopped early on a
    /// regression: locking in a verdict at a lucky peak would inflate false alarms.
    #[serde(default)]
    pub settle: Option<f64>,
}

impl Default for Stopping {
    fn default() -> Self {
        Self {
            target: 0.01,
            min_rounds: 10,
            max_rounds: 400,
            budget: Duration::from_secs(120),
            settle: None,
        }
    }
}

/// Why a run (or one contender's part of it) stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every interval reached the target.
    Converged,
    /// The interval lies within the gate's threshold: unchanged, whatever more rounds
    /// would say.
    Settled,
    /// The time budget ended first.
    Budget,
    /// The round limit came first.
    MaxRounds,
}

impl StopReason {
    /// The reason in a few words, for tables.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Converged => "intervals within target",
            Self::Settled => "settled within the threshold",
            Self::Budget => "time budget ended",
            Self::MaxRounds => "round limit reached",
        }
    }
}

impl Stopping {
    /// Whether one A/B pair, after `rounds` of its own, stops being sampled: it settled
    /// within the threshold, or its interval reached the target. Under a gate
    /// (`settle` set) an interval that reached the target but still straddles
    /// `1 ± settle` is not decided, so the pair goes on until the verdict is clear or
    /// the run ends: a narrow interval across the threshold says neither "regressed"
    /// nor "unchanged".
    pub fn pair_closes(&self, rounds: usize, interval: Option<Interval>) -> Option<StopReason> {
        let interval = interval.filter(|_| rounds >= self.min_rounds)?;
        let converged = interval.relative_half_width() <= self.target;
        let Some(settle) = self.settle else {
            return converged.then_some(StopReason::Converged);
        };
        let straddles = |edge: f64| interval.lower <= edge && interval.upper >= edge;
        if interval.lower > 1.0 - settle && interval.upper < 1.0 + settle {
            Some(StopReason::Settled)
        } else if converged && !straddles(1.0 - settle) && !straddles(1.0 + settle) {
            Some(StopReason::Converged)
        } else {
            None
        }
    }

    /// Whether intervals with these half-widths, after `rounds` rounds and `elapsed`,
    /// end the run, and why. `half_widths` holds `None` for an interval not yet
    /// computable.
    pub fn verdict(
        &self,
        rounds: usize,
        elapsed: Duration,
        half_widths: &[Option<f64>],
    ) -> Option<StopReason> {
        if rounds >= self.min_rounds
            && half_widths
                .iter()
                .all(|width| width.is_some_and(|width| width <= self.target))
        {
            Some(StopReason::Converged)
        } else {
            self.limit_reached(rounds, elapsed)
        }
    }

    /// Whether the run's limits (rounds, then budget) end it, whatever its intervals.
    pub fn limit_reached(&self, rounds: usize, elapsed: Duration) -> Option<StopReason> {
        if rounds >= self.max_rounds {
            Some(StopReason::MaxRounds)
        } else if elapsed >= self.budget {
            Some(StopReason::Budget)
        } else {
            None
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        value: &Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_mean_and_median_of_known_lists() {
        assert_eq!(trimmed_mean(&[]), None);
        assert_eq!(trimmed_mean(&[3.0]), Some(3.0));
        // Ten values: two cut from each end, the outliers with them.
        let values = [100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -100.0];
        assert_eq!(trimmed_mean(&values), Some(4.5));
        assert_eq!(median(&values), Some(4.5));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
    }

    #[test]
    fn a_constant_ratio_has_a_point_interval() {
        let log_ratios = vec![0.5_f64.ln(); 12];
        let interval = ratio_interval(&log_ratios, 1).expect("enough rounds");
        for bound in [interval.point, interval.lower, interval.upper] {
            assert!((bound - 0.5).abs() < 1e-12, "{interval:?}");
        }
        assert!(interval.relative_half_width() < 1e-12);
        assert_eq!(ratio_interval(&[0.1], 1), None);
    }

    #[test]
    fn the_interval_covers_the_truth_about_as_often_as_it_claims() {
        // 200 experiments of 30 rounds each, log ratios around ln(1.25) with 4 % noise
        // (a sum of uniforms, roughly normal): a 95 % interval should miss the truth
        // in about 5 % of them. The percentile bootstrap is a little narrow on 30
        // rounds, so allow up to 12 %, and demand that it is not absurdly wide either.
        let truth = 1.25_f64;
        let mut noise = run_rng(7);
        let mut misses = 0;
        let mut widths = Vec::new();
        for experiment in 0..200 {
            let log_ratios: Vec<f64> = (0..30)
                .map(|_| {
                    let sum: f64 = (0..4)
                        .map(|_| (noise.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5)
                        .sum();
                    truth.ln() + 0.04 * sum
                })
                .collect();
            let interval = ratio_interval(&log_ratios, experiment).expect("enough rounds");
            if !(interval.lower..=interval.upper).contains(&truth) {
                misses += 1;
            }
            widths.push(interval.relative_half_width());
        }
        assert!(misses <= 24, "{misses} of 200 intervals missed the truth");
        let typical = median(&widths).expect("widths");
        assert!(
            (0.005..0.03).contains(&typical),
            "typical half-width {typical}"
        );
    }

    #[test]
    fn shuffles_follow_the_seed_and_visit_everyone_once() {
        let mut first = run_rng(42);
        let mut second = run_rng(42);
        let orders: Vec<Vec<usize>> = (0..20).map(|_| round_order(&mut first, 6)).collect();
        let again: Vec<Vec<usize>> = (0..20).map(|_| round_order(&mut second, 6)).collect();
        assert_eq!(orders, again);
        for order in &orders {
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..6).collect::<Vec<_>>());
        }
        // Every contender goes first sometimes: no position is built into the order.
        let mut went_first = [false; 6];
        for order in &orders {
            went_first[order[0]] = true;
        }
        assert!(
            went_first.iter().filter(|&&first| first).count() >= 4,
            "{orders:?}"
        );
    }

    #[test]
    fn stopping_needs_the_minimum_rounds_and_every_interval_narrow() {
        let stopping = Stopping {
            target: 0.01,
            min_rounds: 10,
            max_rounds: 100,
            budget: Duration::from_secs(60),
            settle: None,
        };
        let second = Duration::from_secs(1);
        let narrow = [Some(0.004), Some(0.009)];
        assert_eq!(stopping.verdict(9, second, &narrow), None);
        assert_eq!(
            stopping.verdict(10, second, &narrow),
            Some(StopReason::Converged)
        );
        let one_wide = [Some(0.004), Some(0.02)];
        assert_eq!(stopping.verdict(50, second, &one_wide), None);
        assert_eq!(
            stopping.verdict(50, Duration::from_secs(61), &one_wide),
            Some(StopReason::Budget)
        );
        assert_eq!(
            stopping.verdict(100, second, &one_wide),
            Some(StopReason::MaxRounds)
        );
        assert_eq!(stopping.verdict(50, second, &[None]), None);
    }

    #[test]
    fn a_pair_settles_only_wholly_inside_the_threshold() {
        let gate = Stopping {
            settle: Some(0.03),
            ..Stopping::default()
        };
        let interval = |lower, upper| {
            Some(Interval {
                point: (lower + upper) / 2.0,
                lower,
                upper,
            })
        };
        assert_eq!(
            gate.pair_closes(12, interval(0.98, 1.025)),
            Some(StopReason::Settled)
        );
        assert_eq!(
            gate.pair_closes(9, interval(0.98, 1.025)),
            None,
            "too few rounds"
        );
        assert_eq!(
            gate.pair_closes(12, interval(1.01, 1.04)),
            None,
            "may be a regression"
        );
        assert_eq!(
            gate.pair_closes(12, interval(1.04, 1.10)),
            None,
            "a regression is never cut short"
        );
        assert_eq!(
            gate.pair_closes(12, interval(1.045, 1.055)),
            Some(StopReason::Converged)
        );
        assert_eq!(
            gate.pair_closes(12, interval(1.025, 1.035)),
            None,
            "narrow, but across the threshold: not decided yet"
        );
        assert_eq!(
            gate.pair_closes(12, interval(0.955, 0.965)),
            Some(StopReason::Converged),
            "wholly below −threshold: improved"
        );
        assert_eq!(
            Stopping::default().pair_closes(12, interval(1.025, 1.035)),
            Some(StopReason::Converged),
            "without a gate, the target alone decides"
        );
        let no_gate = Stopping::default();
        assert_eq!(no_gate.pair_closes(12, interval(0.98, 1.025)), None);
    }
}
