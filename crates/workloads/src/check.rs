//! The one check that every style's answer goes through.

use crate::fib::fib_reference;

/// Why a style's answer was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WrongAnswer {
    /// The style returned a different number of answers than it was given inputs.
    #[error("expected {expected} answers, got {got}")]
    Count {
        /// Number of inputs.
        expected: usize,
        /// Number of answers returned.
        got: usize,
    },
    /// One answer differs from the reference.
    #[error("answer #{index}: fib({n}) should be {expected}, got {got}")]
    Value {
        /// Position of the wrong answer.
        index: usize,
        /// The input at that position.
        n: u32,
        /// The reference answer.
        expected: u64,
        /// The style's answer.
        got: u64,
    },
    /// A spawned unit returned something other than its own index.
    #[error("unit #{index} returned {got}, expected {expected}")]
    Unit {
        /// The unit's index.
        index: usize,
        /// What it should have returned.
        expected: u64,
        /// What it returned.
        got: u64,
    },
    /// A ping-pong run lost, duplicated or reordered messages.
    #[error(
        "{expected} round trips expected: {pings} pings and {pongs} pongs arrived, {out_of_order} out of order"
    )]
    Messages {
        /// Round trips asked for.
        expected: u64,
        /// Pings received.
        pings: u64,
        /// Pongs received.
        pongs: u64,
        /// Messages with an unexpected value.
        out_of_order: u64,
    },
    /// A sleepers run lost units or woke some early.
    #[error("{expected} sleepers expected: {woke} woke, {early} of them early")]
    Sleepers {
        /// Units asked for.
        expected: usize,
        /// Units that woke.
        woke: usize,
        /// Units that woke before their timer ran out.
        early: usize,
    },
    /// An input has no reference answer (its Fibonacci number overflows `u64`).
    #[error("input #{index}: fib({n}) has no u64 reference answer")]
    NoReference {
        /// Position of the input.
        index: usize,
        /// The input.
        n: u32,
    },
}

/// Checks `answers[i] == fib(inputs[i])` for every `i`, against [`fib_reference`].
///
/// Every CPU workload's result is validated through this function: in the tests, and
/// in the benchmarks before timing starts. The first discrepancy is returned, naming
/// its position, input, expected and actual value.
pub fn check_fib_answers(inputs: &[u32], answers: &[u64]) -> Result<(), WrongAnswer> {
    if inputs.len() != answers.len() {
        return Err(WrongAnswer::Count {
            expected: inputs.len(),
            got: answers.len(),
        });
    }
    for (index, (&n, &got)) in inputs.iter().zip(answers).enumerate() {
        let expected = fib_reference(n).ok_or(WrongAnswer::NoReference { index, n })?;
        if got != expected {
            return Err(WrongAnswer::Value {
                index,
                n,
                expected,
                got,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_right_answers() {
        assert_eq!(
            check_fib_answers(&[0, 1, 10, 20], &[0, 1, 55, 6765]),
            Ok(())
        );
        assert_eq!(check_fib_answers(&[], &[]), Ok(()));
    }

    #[test]
    fn names_the_first_wrong_answer() {
        let error = check_fib_answers(&[5, 6, 7], &[5, 9, 0]).unwrap_err();
        assert_eq!(
            error,
            WrongAnswer::Value {
                index: 1,
                n: 6,
                expected: 8,
                got: 9
            }
        );
        assert_eq!(error.to_string(), "answer #1: fib(6) should be 8, got 9");
    }

    #[test]
    fn rejects_missing_or_extra_answers() {
        assert_eq!(
            check_fib_answers(&[1, 2], &[1]),
            Err(WrongAnswer::Count {
                expected: 2,
                got: 1
            })
        );
        assert!(check_fib_answers(&[1], &[1, 1]).is_err());
    }

    #[test]
    fn rejects_inputs_without_reference() {
        assert_eq!(
            check_fib_answers(&[94], &[0]),
            Err(WrongAnswer::NoReference { index: 0, n: 94 })
        );
    }
}
