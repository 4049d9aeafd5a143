//! `bpfmodel`: run scenarios on the model, the host kernel, or both.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use riscv_harness::runner::{self, Summary};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bpfmodel",
    version,
    about = "A model of the Linux bpf(2) map syscalls, and a harness that compares it with real kernels"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run scenario files (or every .bpfs under a folder) and print transcripts or divergences.
    Run {
        /// Where the calls go: the model, the host kernel, or both (and compare).
        #[arg(long, value_enum, default_value_t = BackendArg::Model)]
        backend: BackendArg,
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Model,
    Kernel,
    Both,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bpfmodel: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { backend, paths } => run(backend, &paths),
    }
}

fn run(backend: BackendArg, paths: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let scenarios = runner::load(paths)?;
    let (profile, warning) = runner::host_profile()?;
    if let Some(w) = warning {
        eprintln!("bpfmodel: warning: {w}");
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut sum = Summary::default();
    match backend {
        BackendArg::Both => {
            sum = runner::run_both(&scenarios, &profile, &mut out)?;
            writeln!(out, "{}", sum.line())?;
        }
        BackendArg::Model | BackendArg::Kernel => {
            for s in &scenarios {
                let t = if backend == BackendArg::Model {
                    runner::run_model(s, &profile)
                } else {
                    runner::run_kernel(s)
                        .with_context(|| format!("running {}", s.path.display()))?
                };
                writeln!(out, "== {} ({}) ==", s.path.display(), t.backend)?;
                write!(out, "{}", t.render())?;
                sum.scenarios += 1;
                sum.calls += t.calls();
                for (line, p) in t.problems() {
                    sum.problems += 1;
                    eprintln!("{}:{line}: {p}", s.path.display());
                }
            }
            writeln!(out, "{} scenarios, {} calls", sum.scenarios, sum.calls)?;
        }
    }
    let failed = sum.divergences > 0 || sum.problems > 0;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
