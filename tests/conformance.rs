//! Every style against the reference answers: one test per (style, workload), stamped
//! out by `conformance!` so that a failure names both.
//!
//! A workload that a style's entry declares not applicable must be refused by the built
//! style with the same reason; one that it declares supported must be answered right,
//! including the edge cases (empty batches, fewer inputs than workers, inputs at or
//! below the cutoff).

mod common;

use workloads::{FibBatch, ForkJoin, Style, StyleError, Support, Workload};

/// Runs `workload` on `style` with every test input set and checks each answer.
fn check_workload(style: &str, workload: Workload) {
    let entry = catalog::find(style).unwrap_or_else(|| panic!("{style} is not in the catalog"));
    let built =
        (entry.build)(&common::style_config()).unwrap_or_else(|error| panic!("{style}: {error}"));
    match (entry.support)(workload) {
        Support::Runs => run_and_check(built.as_ref(), workload),
        Support::NotApplicable(declared) => match run_once(built.as_ref(), workload) {
            Err(StyleError::NotApplicable(refused)) => assert_eq!(refused, declared),
            other => panic!("{style} declares {workload} n/a but returned {other:?}"),
        },
    }
}

fn run_and_check(style: &dyn Style, workload: Workload) {
    match workload {
        Workload::FibBatch => {
            for batch in [
                FibBatch::equal(24, 18),
                FibBatch::equal(0, 10),
                FibBatch::equal(1, 20),
                // Fewer inputs than workers, and the two base cases.
                FibBatch::equal(2, 0),
                FibBatch::equal(2, 1),
            ] {
                let answers = style.fib_batch(batch.inputs()).expect("fib_batch");
                batch
                    .check(&answers)
                    .unwrap_or_else(|wrong| panic!("{batch:?}: {wrong}"));
            }
        }
        Workload::FibSkewed => {
            for seed in [1, 2, 3] {
                let batch = FibBatch::skewed(100, 10, 24, seed);
                let answers = style.fib_batch(batch.inputs()).expect("fib_skewed");
                batch
                    .check(&answers)
                    .unwrap_or_else(|wrong| panic!("seed {seed}: {wrong}"));
            }
        }
        Workload::FibForkJoin => {
            for job in [
                ForkJoin::new(24, 10),
                ForkJoin::new(20, 1),
                // At or below the cutoff: no split at all.
                ForkJoin::new(12, 12),
                ForkJoin::new(0, 5),
                ForkJoin::new(1, 5),
            ] {
                let answer = style.fib_forkjoin(job).expect("fib_forkjoin");
                job.check(answer)
                    .unwrap_or_else(|wrong| panic!("{job:?}: {wrong}"));
            }
        }
    }
}

/// Runs `workload` once with a small input, for styles expected to refuse it.
fn run_once(style: &dyn Style, workload: Workload) -> Result<(), StyleError> {
    match workload {
        Workload::FibBatch | Workload::FibSkewed => style.fib_batch(&[5]).map(drop),
        Workload::FibForkJoin => style.fib_forkjoin(ForkJoin::new(10, 5)).map(drop),
    }
}

macro_rules! conformance {
    ($($module:ident => $style:literal),* $(,)?) => {
        $(
            mod $module {
                use super::*;

                #[test]
                fn fib_batch() {
                    check_workload($style, Workload::FibBatch);
                }

                #[test]
                fn fib_skewed() {
                    check_workload($style, Workload::FibSkewed);
                }

                #[test]
                fn fib_forkjoin() {
                    check_workload($style, Workload::FibForkJoin);
                }
            }
        )*

        /// Every style the macro stamped tests out for, in order.
        const TESTED_STYLES: &[&str] = &[$($style),*];
    };
}

conformance! {
    seq => "seq",
    threads => "threads",
    pool => "pool",
    process => "process",
    evloop => "evloop",
    rayon => "rayon",
    crossbeam => "crossbeam",
    tokio => "tokio",
    tokio_current => "tokio-current",
    async_std => "async-std",
    smol => "smol",
}

#[test]
fn every_catalog_style_has_conformance_tests() {
    let listed: Vec<&str> = catalog::names().collect();
    assert_eq!(listed, TESTED_STYLES, "add the new style to conformance!");
}

#[test]
fn every_workload_has_a_conformance_test() {
    // A new workload must be added to the macro above and to `run_and_check`; this
    // match stops compiling until it is.
    for workload in Workload::ALL {
        match workload {
            Workload::FibBatch | Workload::FibSkewed | Workload::FibForkJoin => {}
        }
    }
}
