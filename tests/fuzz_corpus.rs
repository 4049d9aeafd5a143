//! The coverage-guided fuzz target's kept inputs (fuzz/seeds, fuzz/corpus, and every crash
//! it ever found, fuzz/regressions), replayed on stable Rust in every `cargo test`: each must
//! run through the model without a panic. The target itself (cargo-fuzz, nightly) runs in
//! `make fuzz-short` and, for as long as you like, `make fuzz`.

mod common;

use common::root;

fn inputs(dir: &str) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(root().join(dir)) else {
        return Vec::new();
    };
    let mut v: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    v.sort();
    v
}

#[test]
fn every_kept_bpf_calls_input_runs_without_a_panic() {
    let mut n = 0;
    for dir in [
        "fuzz/seeds/bpf_calls",
        "fuzz/corpus/bpf_calls",
        "fuzz/regressions/bpf_calls",
    ] {
        for path in inputs(dir) {
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| riscv_harness::fuzz_input::run(&data));
            assert!(r.is_ok(), "{} panics the model", path.display());
            n += 1;
        }
    }
    assert!(
        n > 300,
        "only {n} kept inputs: the seeds are missing (bpfmodel fuzz-seeds)"
    );
}

#[test]
fn every_kept_scenario_parser_input_parses_or_errs() {
    for dir in [
        "fuzz/corpus/scenario_parser",
        "fuzz/regressions/scenario_parser",
    ] {
        for path in inputs(dir) {
            let data = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&data).into_owned();
            let r = std::panic::catch_unwind(|| {
                let _ = riscv_harness::scenario::parse(std::path::Path::new("fuzz.bpfs"), &text);
            });
            assert!(r.is_ok(), "{} panics the parser", path.display());
        }
    }
}
