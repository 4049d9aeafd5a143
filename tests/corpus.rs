//! Rules for the scenario corpus itself: it is large enough, every file says what it shows,
//! and names follow the rule they exercise.

use riscv_harness::runner;
use std::path::PathBuf;

fn corpus() -> Vec<riscv_harness::scenario::Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    runner::load(&[dir]).expect("the corpus parses")
}

#[test]
fn the_corpus_has_at_least_80_scenarios() {
    let n = corpus().len();
    assert!(n >= 80, "only {n} scenarios");
}

#[test]
fn every_scenario_starts_with_a_comment_saying_what_it_shows() {
    for s in corpus() {
        assert!(
            !s.description().is_empty(),
            "{} has no leading comment",
            s.path.display()
        );
        assert!(s.stmts().count() > 0, "{} makes no call", s.path.display());
    }
}

#[test]
fn every_scenario_is_short() {
    for s in corpus() {
        let n = s.stmts().count();
        assert!(
            n <= 40,
            "{} has {n} calls; one idea per file",
            s.path.display()
        );
    }
}
