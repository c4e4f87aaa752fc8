//! The cost model: naive recursive Fibonacci, and the reference it is checked against.

/// The largest `n` whose Fibonacci number fits in a `u64`.
pub const MAX_REFERENCE_N: u32 = 93;

/// Naive doubly recursive Fibonacci: `fib(0) = 0`, `fib(1) = 1`.
///
/// This is the unit of CPU work in every workload. Its cost grows by the golden ratio
/// with each step of `n` (about 2.5 ms for `fib(30)` on a current x86 core), and it
/// neither allocates nor touches shared memory, so a style's result measures how it
/// schedules work, not how it contends for memory.
///
/// Callers that time it should pass `n` through [`std::hint::black_box`] so that the
/// compiler cannot fold a constant call.
pub fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

/// The Fibonacci number of `n`, computed iteratively in `O(n)`.
///
/// This is the reference every style's answer is compared with. Returns `None` when
/// `n` exceeds [`MAX_REFERENCE_N`], whose answer does not fit in a `u64`.
pub fn fib_reference(n: u32) -> Option<u64> {
    if n > MAX_REFERENCE_N {
        return None;
    }
    let (mut current, mut next) = (0u64, 1u64);
    for _ in 0..n {
        // `next` runs one step ahead and overflows on the last step for n = 93; only
        // `current` is returned, and it never does.
        (current, next) = (next, current.wrapping_add(next));
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_matches_known_values() {
        // OEIS A000045.
        let known = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144];
        for (n, expected) in known.into_iter().enumerate() {
            assert_eq!(fib_reference(n as u32), Some(expected), "fib({n})");
        }
        assert_eq!(fib_reference(40), Some(102_334_155));
        assert_eq!(fib_reference(93), Some(12_200_160_415_121_876_738));
        assert_eq!(fib_reference(94), None);
    }

    #[test]
    fn naive_fib_matches_reference() {
        for n in 0..=30 {
            assert_eq!(Some(fib(n)), fib_reference(n), "fib({n})");
        }
    }
}
