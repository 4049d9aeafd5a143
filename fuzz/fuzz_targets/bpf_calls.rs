//! Arbitrary bpf(2) call sequences (cmd, attr bytes, size, user memory) on a fresh model:
//! no input may make it panic, hang or allocate without bound. The format is
//! riscv_harness::fuzz_input's; seeds come from the scenario corpus (`bpfmodel fuzz-seeds`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    riscv_harness::fuzz_input::run(data);
});
