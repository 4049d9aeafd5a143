//! The harness around the syscall model: the `.bpfs` scenario format, the backends (the
//! model and the host kernel), the executor that turns a scenario into a transcript, the
//! comparison of transcripts, and the `bpfmodel` CLI's building blocks.

pub mod backend;
pub mod coverage;
pub mod exec;
pub mod explain;
pub mod fuzz;
pub mod fuzz_input;
pub mod load_maps;
pub mod qemu;
pub mod runner;
pub mod scenario;
pub mod strace;
pub mod transcript;
