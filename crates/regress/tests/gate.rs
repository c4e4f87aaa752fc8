//! The gate on fixture directories whose verdicts are known, and its errors.

use std::path::{Path, PathBuf};

use regress::{Mode, RegressError, Verdict};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn verdict_of(outcome: &regress::Outcome, id: &str) -> Verdict {
    outcome
        .comparisons
        .iter()
        .find(|comparison| comparison.id == id)
        .unwrap_or_else(|| panic!("{id} not compared: {outcome:#?}"))
        .verdict
}

#[test]
fn a_confirmed_regression_is_flagged_and_named() {
    let outcome =
        regress::compare(&fixture("mixed"), "base", &Mode::Change, 0.05).expect("compare");
    assert!(outcome.regressed());
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/threads/64x27"),
        Verdict::Improved
    );
    // Within the threshold, and beyond it but not confirmed by the interval.
    assert_eq!(
        verdict_of(&outcome, "fib_batch/seq/64x27"),
        Verdict::Unchanged
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/evloop/64x27"),
        Verdict::Unchanged
    );
    // Regressions come first, and the table names them.
    assert_eq!(outcome.comparisons[0].id, "fib_batch/rayon/64x27");
    let table = outcome.markdown();
    assert!(
        table.contains("**Regression** — 1 regressed, 1 improved, 2 unchanged"),
        "{table}"
    );
    assert!(table.contains("| `fib_batch/rayon/64x27` | 15.00 ms | 19.50 ms | +30.0 % (+25.0 % … +35.0 %) | **regressed** |"), "{table}");
    // The threshold that would have stayed quiet: just the regression's lower bound.
    assert!(
        table.contains("Most confirmed slowdown: `fib_batch/rayon/64x27`, at least +25.0 %"),
        "{table}"
    );
}

#[test]
fn a_higher_threshold_lets_the_same_change_pass() {
    let outcome =
        regress::compare(&fixture("mixed"), "base", &Mode::Change, 0.40).expect("compare");
    assert!(!outcome.regressed(), "{outcome:#?}");
    // Any threshold at or above the most confirmed slowdown passes; just below fails.
    let lower = outcome
        .most_confirmed_slowdown()
        .expect("rayon's slowdown")
        .change
        .lower;
    for (threshold, regressed) in [(lower, false), (lower - 0.001, true)] {
        let outcome =
            regress::compare(&fixture("mixed"), "base", &Mode::Change, threshold).expect("compare");
        assert_eq!(outcome.regressed(), regressed, "threshold {threshold}");
    }
}

#[test]
fn ratio_mode_ignores_a_uniformly_slower_machine_but_not_a_slower_style() {
    let change = regress::compare(&fixture("drift"), "base", &Mode::Change, 0.05).expect("compare");
    assert_eq!(
        verdict_of(&change, "fib_batch/rayon/64x27"),
        Verdict::Regressed
    );
    let ratio = Mode::Ratio {
        reference: "seq".into(),
    };
    let outcome = regress::compare(&fixture("drift"), "base", &ratio, 0.05).expect("compare");
    assert_eq!(
        verdict_of(&outcome, "fib_batch/rayon/64x27"),
        Verdict::Unchanged
    );
    assert_eq!(
        verdict_of(&outcome, "fib_batch/tokio/64x27"),
        Verdict::Regressed
    );
    // The reference itself is not compared with itself.
    assert!(
        outcome
            .comparisons
            .iter()
            .all(|comparison| !comparison.id.contains("/seq/"))
    );
    assert!(
        outcome
            .markdown()
            .contains("ratios to `seq` within each run")
    );
}

#[test]
fn unusable_input_is_an_error_that_says_what_to_run() {
    match regress::compare(&fixture("missing-baseline"), "base", &Mode::Change, 0.05) {
        Err(error @ RegressError::NoBaseline { .. }) => {
            assert!(
                error.to_string().contains("--save-baseline base"),
                "{error}"
            );
        }
        other => panic!("expected NoBaseline, got {other:?}"),
    }
    match regress::compare(&fixture("no-change"), "base", &Mode::Change, 0.05) {
        Err(error @ RegressError::NoChange { .. }) => {
            assert!(error.to_string().contains("--baseline base"), "{error}");
        }
        other => panic!("expected NoChange, got {other:?}"),
    }
    assert!(matches!(
        regress::compare(&fixture("does-not-exist"), "base", &Mode::Change, 0.05),
        Err(RegressError::NoBaseline { .. })
    ));
    let ratio = Mode::Ratio {
        reference: "no-such-style".into(),
    };
    assert!(matches!(
        regress::compare(&fixture("mixed"), "base", &ratio, 0.05),
        Err(RegressError::NoReference(_))
    ));
}
