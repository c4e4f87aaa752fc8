//! End to end, A/A: a tiny benchmark measured by criterion twice with nothing changed
//! in between — once saving a baseline, once comparing with it — is not flagged.
//!
//! This is the gate's false-positive check, not a performance test: the threshold is
//! wide (50 %), because a shared machine may slow one of the two runs; what must hold
//! is that criterion's output, read by the gate, yields no regression when the code
//! did not change. `ci/README.md` gives the thresholds to use on real suites.

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;

fn tiny_benchmark(criterion: &mut Criterion) {
    criterion.bench_function("sum", |bencher| {
        bencher.iter(|| {
            (0..black_box(1_000u64)).fold(0u64, |sum, value| sum.wrapping_add(value * value))
        });
    });
}

fn run(directory: &std::path::Path, configure: impl FnOnce(Criterion) -> Criterion) {
    let criterion = Criterion::default()
        .output_directory(directory)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .sample_size(20)
        .nresamples(2_000)
        .without_plots();
    let mut criterion = configure(criterion);
    tiny_benchmark(&mut criterion);
}

#[test]
fn an_a_a_comparison_is_not_flagged() {
    let directory = std::env::temp_dir().join(format!("concbench-a-a-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    run(&directory, |criterion| criterion.save_baseline("a".into()));
    run(&directory, |criterion| {
        criterion.retain_baseline("a".into(), true)
    });
    let outcome = regress::compare(&directory, "a", &regress::Mode::Change, 0.50).expect("compare");
    let _ = std::fs::remove_dir_all(&directory);
    assert_eq!(outcome.comparisons.len(), 1, "{outcome:#?}");
    assert!(!outcome.regressed(), "{}", outcome.markdown());
}
