//! Deterministic input sets for the CPU workloads.

use std::collections::BinaryHeap;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use crate::check::{WrongAnswer, check_fib_answers};
use crate::fib::fib;

/// The input of `fib_batch` and `fib_skewed`: a list of `n`, each to be mapped to `fib(n)`.
///
/// Both workloads are the same parallel map; they differ only in the sizes. Equal sizes
/// ([`FibBatch::equal`]) reward any even split; heavy-tailed sizes ([`FibBatch::skewed`])
/// punish static chunking, because a few inputs carry most of the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FibBatch {
    inputs: Vec<u32>,
}

/// Tail index of the cost distribution of [`FibBatch::skewed`]: the cost of `fib(n)`
/// grows as φⁿ, and the costs follow a Pareto law with this index, so the mean is
/// dominated by rare large inputs (an index near 1 is very heavy-tailed).
const SKEW_TAIL_INDEX: f64 = 1.1;

impl FibBatch {
    /// `len` copies of the same `n`.
    pub fn equal(len: usize, n: u32) -> Self {
        Self {
            inputs: vec![n; len],
        }
    }

    /// `len` inputs in `n_min..=n_max` whose costs are heavy-tailed: most inputs are
    /// near `n_min`, a few are near `n_max`.
    ///
    /// The sizes depend only on the arguments (ChaCha8 seeded with `seed`), so every
    /// style, every run and every machine gets the same list in the same order.
    pub fn skewed(len: usize, n_min: u32, n_max: u32, seed: u64) -> Self {
        let (n_min, n_max) = (n_min.min(n_max), n_max.max(n_min));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Pareto-distributed cost c = c_min · U^(-1/α) with cost ∝ φⁿ means
        // n - n_min = ln(1/U) / (α · ln φ): an exponential tail in n.
        let golden_ratio = (1.0 + 5f64.sqrt()) / 2.0;
        let rate = SKEW_TAIL_INDEX * golden_ratio.ln();
        let inputs = (0..len)
            .map(|_| {
                // 53 random bits give a uniform in (0, 1]; the `+ 1` keeps ln finite.
                let uniform = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
                let extra = (-uniform.ln() / rate).floor();
                let span = f64::from(n_max - n_min);
                n_min + extra.min(span) as u32
            })
            .collect();
        Self { inputs }
    }

    /// The inputs, in order; answer `i` must be `fib(inputs[i])`.
    pub fn inputs(&self) -> &[u32] {
        &self.inputs
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Checks a style's answers against the reference (see [`check_fib_answers`]).
    pub fn check(&self, answers: &[u64]) -> Result<(), WrongAnswer> {
        check_fib_answers(&self.inputs, answers)
    }

    /// The work in the batch, counted as calls of the naive [`fib`]; proportional to
    /// its sequential time.
    pub fn fib_calls(&self) -> u64 {
        self.inputs.iter().map(|&n| fib_calls(n)).sum()
    }
}

/// The input of `fib_forkjoin`: one `fib(n)` computed by recursive splitting,
/// `fib(n) = fib(n-1) + fib(n-2)`, down to a sequential cutoff.
///
/// Every node above the cutoff is a task (two children); every node at or below it is
/// computed sequentially with [`fib`]. The number of tasks is [`ForkJoin::task_count`],
/// so the cutoff sets the task granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForkJoin {
    /// The Fibonacci number to compute.
    pub n: u32,
    /// Nodes with `n <= cutoff` are computed sequentially. At least 1, so that every
    /// split node has two valid children.
    pub cutoff: u32,
}

/// One node of a [`ForkJoin`] tree: either a finished leaf or a split into two children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The node is at or below the cutoff; its value was computed sequentially.
    Leaf(u64),
    /// The node is above the cutoff; its value is the sum of these two children.
    Split(u32, u32),
}

impl ForkJoin {
    /// A fork-join `fib(n)` with the given sequential cutoff (raised to 1 if 0).
    pub fn new(n: u32, cutoff: u32) -> Self {
        Self {
            n,
            cutoff: cutoff.max(1),
        }
    }

    /// What to do with node `n`: split it, or compute it sequentially.
    ///
    /// Styles build their task trees from this one function, so they all split the
    /// same tree at the same places.
    pub fn step(&self, n: u32) -> Step {
        if n <= self.cutoff {
            Step::Leaf(fib(n))
        } else {
            Step::Split(n - 1, n - 2)
        }
    }

    /// A coarser split for styles whose units are expensive (a thread or a process per
    /// unit): splits the largest node first until there are at least `min_leaves`
    /// leaves or none is above the cutoff. The leaves' Fibonacci numbers sum to
    /// `fib(self.n)`.
    pub fn leaves(&self, min_leaves: usize) -> Vec<u32> {
        let mut heap = BinaryHeap::from([self.n]);
        let mut done = Vec::new();
        while let Some(n) = heap.pop() {
            if heap.len() + done.len() + 1 >= min_leaves || n <= self.cutoff {
                done.push(n);
                continue;
            }
            heap.push(n - 1);
            heap.push(n - 2);
        }
        done.sort_unstable_by(|a, b| b.cmp(a));
        done
    }

    /// Number of split nodes (tasks) in the tree that [`ForkJoin::step`] describes.
    pub fn task_count(&self) -> u64 {
        // splits(m) = 0 for m <= cutoff, else 1 + splits(m-1) + splits(m-2):
        // computed bottom-up like the Fibonacci numbers themselves.
        let (mut below, mut at) = (0u64, 0u64); // splits(cutoff - 1), splits(cutoff)
        for _ in self.cutoff..self.n {
            (below, at) = (at, 1 + at + below);
        }
        at
    }

    /// Checks a style's answer against the reference (see [`check_fib_answers`]).
    pub fn check(&self, answer: u64) -> Result<(), WrongAnswer> {
        check_fib_answers(&[self.n], &[answer])
    }
}

/// Number of calls the naive [`fib`] makes for `n`: `2·fib(n+1) - 1`.
fn fib_calls(n: u32) -> u64 {
    let (mut current, mut next) = (0u64, 1u64);
    for _ in 0..=n {
        (current, next) = (next, current.saturating_add(next));
    }
    current.saturating_mul(2).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fib::fib_reference;

    #[test]
    fn skewed_is_deterministic_heavy_tailed_and_in_range() {
        let batch = FibBatch::skewed(4096, 16, 32, 7);
        assert_eq!(batch, FibBatch::skewed(4096, 16, 32, 7));
        assert_ne!(batch, FibBatch::skewed(4096, 16, 32, 8));
        assert!(batch.inputs().iter().all(|n| (16..=32).contains(n)));
        let small = batch.inputs().iter().filter(|&&n| n <= 18).count();
        assert!(small > batch.len() / 2, "most inputs are small: {small}");
        // Heavy tail: the largest tenth of the inputs carries most of the work.
        let mut costs: Vec<u64> = batch.inputs().iter().map(|&n| fib_calls(n)).collect();
        costs.sort_unstable_by(|a, b| b.cmp(a));
        let top_tenth: u64 = costs[..costs.len() / 10].iter().sum();
        assert!(
            top_tenth * 2 > batch.fib_calls(),
            "top tenth carries most work"
        );
    }

    #[test]
    fn fib_calls_counts_the_naive_recursion() {
        fn count(n: u32) -> u64 {
            if n < 2 {
                1
            } else {
                1 + count(n - 1) + count(n - 2)
            }
        }
        for n in 0..20 {
            assert_eq!(fib_calls(n), count(n), "n = {n}");
        }
    }

    #[test]
    fn steps_rebuild_fib() {
        fn run(job: &ForkJoin, n: u32) -> u64 {
            match job.step(n) {
                Step::Leaf(value) => value,
                Step::Split(a, b) => run(job, a) + run(job, b),
            }
        }
        for cutoff in [0, 1, 5, 12] {
            let job = ForkJoin::new(22, cutoff);
            assert_eq!(Some(run(&job, job.n)), fib_reference(22), "cutoff {cutoff}");
        }
    }

    #[test]
    fn task_count_counts_split_nodes() {
        fn count(job: &ForkJoin, n: u32) -> u64 {
            match job.step(n) {
                Step::Leaf(_) => 0,
                Step::Split(a, b) => 1 + count(job, a) + count(job, b),
            }
        }
        for (n, cutoff) in [(20, 10), (25, 3), (8, 8), (5, 9), (30, 18)] {
            let job = ForkJoin::new(n, cutoff);
            assert_eq!(job.task_count(), count(&job, n), "n {n} cutoff {cutoff}");
        }
    }

    #[test]
    fn leaves_sum_to_fib_and_reach_the_requested_count() {
        let job = ForkJoin::new(30, 10);
        for min_leaves in [1, 2, 3, 8, 64] {
            let leaves = job.leaves(min_leaves);
            assert!(leaves.len() >= min_leaves, "{min_leaves}: {leaves:?}");
            let sum: u64 = leaves.iter().map(|&n| fib_reference(n).unwrap()).sum();
            assert_eq!(Some(sum), fib_reference(30));
        }
        // Never splits below the cutoff, however many leaves are asked for.
        let small = ForkJoin::new(6, 5).leaves(100);
        assert_eq!(small, vec![5, 4]);
    }
}
