//! Every scenario on the model and on the host kernel: the transcripts must be identical.
//!
//! Needs root and a kernel with bpf(2). Without them the test prints a SKIP line, except
//! under CI=true, where a missing bpf() is a failure: CI must really compare.

use riscv_harness::backend::kernel;
use riscv_harness::runner;
use std::path::PathBuf;

#[test]
fn model_and_host_kernel_agree_on_every_scenario() {
    if let Err(why) = kernel::bpf_available() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the host kernel cannot be compared: {why}");
        }
        eprintln!("SKIP model_and_host_kernel_agree_on_every_scenario: {why}");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    let scenarios = runner::load(&[dir]).expect("the corpus parses");
    let (profile, warning) = runner::host_profile().expect("host profile");
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let mut out = Vec::new();
    let sum = runner::run_both(&scenarios, &profile, &mut out).expect("runs");
    let report = String::from_utf8_lossy(&out);
    eprintln!("{report}{}", sum.line());
    assert_eq!(sum.divergences, 0, "divergences:\n{report}");
    assert_eq!(sum.problems, 0, "problems:\n{report}");
}
