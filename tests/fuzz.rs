//! A bounded `bpfmodel fuzz` in `make test`: a few fixed seeds, short, on the host kernel and
//! on a riscv64 and the x86_64 kernel in QEMU. Any divergence fails the test and leaves its
//! (on the host, shrunk) scenario under target/fuzz-findings.
//!
//! The long runs (a million calls) are `bpfmodel fuzz --calls 1000000`, not tests.

mod common;

use common::{root, skip_or_fail};
use riscv_harness::backend::kernel;
use riscv_harness::fuzz;
use riscv_harness::qemu::QemuConfig;
use std::path::PathBuf;
use std::process::Command;

fn findings() -> PathBuf {
    root().join("target/fuzz-findings")
}

/// QEMU runs take every core: the two tests take turns.
static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn fuzzing_the_host_kernel_with_fixed_seeds_finds_no_divergence() {
    if let Err(why) = kernel::bpf_available() {
        return skip_or_fail(
            "fuzzing_the_host_kernel_with_fixed_seeds_finds_no_divergence",
            why,
        );
    }
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for seed in [1, 2, 3] {
        let o = fuzz::run_host(
            fuzz::Plan {
                seed,
                calls: 3000,
                per: 40,
            },
            &findings(),
            &|_| {},
        )
        .expect("fuzz runs");
        eprintln!(
            "seed {seed}: {} calls, {} divergences",
            o.calls,
            o.findings.len()
        );
        assert!(o.calls > 2500, "seed {seed} made only {} calls", o.calls);
        assert!(o.findings.is_empty(), "seed {seed} found {:?}", o.findings);
    }
}

#[test]
fn fuzzing_qemu_kernels_with_a_fixed_seed_finds_no_divergence() {
    let cfg = QemuConfig::in_workspace(&root());
    for (name, tools) in [("riscv64-6.12", &cfg.riscv64), ("x86_64-6.1", &cfg.x86_64)] {
        let q = Command::new(&tools.qemu).arg("--version").output();
        if !q.is_ok_and(|o| o.status.success()) || !tools.guest.is_file() {
            return skip_or_fail(
                "fuzzing_qemu_kernels_with_a_fixed_seed_finds_no_divergence",
                format!(
                    "{} or {} is missing (make qemu-prep)",
                    tools.qemu,
                    tools.guest.display()
                ),
            );
        }
        let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
        let o = fuzz::run_qemu(
            &cfg,
            name,
            fuzz::Plan {
                seed: 4,
                calls: 2000,
                per: 40,
            },
            &findings(),
            &|m| eprintln!("{m}"),
            &|_| {},
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!(
            "{name}: {} calls, {} divergences",
            o.calls,
            o.findings.len()
        );
        assert!(o.calls > 1500, "{name} made only {} calls", o.calls);
        assert!(o.findings.is_empty(), "{name} found {:?}", o.findings);
    }
}
