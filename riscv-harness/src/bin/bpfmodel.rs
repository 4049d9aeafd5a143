//! `bpfmodel`: run scenarios on the model, the host kernel, or both.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use riscv_harness::qemu::{self, QemuConfig};
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
        /// Model this kernel version (6.12, 6.18, 7.2) instead of the one the running kernel's
        /// release picks (its own, or the nearest lower profile).
        #[arg(long, value_name = "VERSION")]
        profile: Option<String>,
        /// `transcript` (the scenario with each outcome), or `strace` (every bpf(2) call the
        /// scenario makes, decoded as strace prints it).
        #[arg(long, value_enum, default_value_t = RunFormat::Transcript)]
        format: RunFormat,
    },
    /// Walk calls through the kernel as the model takes them: every check with the kernel
    /// function and file it mirrors, the values it saw and its verdict; a failure in one
    /// sentence; and how other kernel versions answer where they differ.
    Explain {
        /// A scenario file, or calls in the scenario language separated by `;`, e.g.
        /// "m = map_create(type=HASH, key_size=4, value_size=8, max_entries=4); update(m, key=u32:1, value=u64:1, flags=EXIST)"
        input: String,
        /// Model this kernel version (6.1, 6.12, 6.18, 7.2) instead of the running kernel's.
        #[arg(long, value_name = "VERSION")]
        profile: Option<String>,
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// Create the maps a BPF ELF object declares (SEC("maps") bpf_map_def entries, as
    /// samples/bpf's bpf_load.c did, and libbpf's BTF-defined SEC(".maps")) on the model, the
    /// host kernel, or both, and print what each creation returned.
    LoadMaps {
        /// The object, as `clang -g -O2 -target bpf -c` writes it.
        object: PathBuf,
        #[arg(long, value_enum, default_value_t = BackendArg::Model)]
        backend: BackendArg,
        /// Model this kernel version instead of the running kernel's.
        #[arg(long, value_name = "VERSION")]
        profile: Option<String>,
    },
    /// Regenerate docs/walkthrough from the scenarios of tests/scenarios/walkthrough (with
    /// --write), or check that the checked-in pages are current (without).
    Walkthrough {
        /// Write the pages into this folder, removing pages no scenario makes any more.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
        /// The folder checked when --write is not given.
        #[arg(long, default_value = "docs/walkthrough")]
        docs: PathBuf,
        /// The walkthrough's scenarios.
        #[arg(long, default_value = riscv_harness::explain::WALKTHROUGH_SCENARIOS)]
        scenarios: PathBuf,
    },
    /// Boot every pinned riscv64 kernel in QEMU, run the corpus on it and on the model inside
    /// the guest, run it on the host kernel too, and report each kernel's divergences.
    QemuTest {
        #[command(flatten)]
        q: QemuArgs,
        /// Skip the host kernel.
        #[arg(long)]
        no_host: bool,
        /// Also print every kernel transcript.
        #[arg(long)]
        transcripts: bool,
    },
    /// Print the coverage table (map type by command, with the checked kernel versions), or
    /// write it into README.md between its markers.
    Coverage {
        /// The scenario corpus.
        #[arg(long, default_value = "tests/scenarios")]
        scenarios: PathBuf,
        /// Replace the table in this README instead of printing it.
        #[arg(long, value_name = "README")]
        write_readme: Option<PathBuf>,
    },
    /// Benchmark the model alone: run the corpus on it `rounds` times under the host's
    /// profile and report calls per second and peak memory (`make bench`).
    BenchModel {
        /// The scenario corpus.
        #[arg(long, default_value = "tests/scenarios")]
        scenarios: PathBuf,
        /// How many times to run the whole corpus.
        #[arg(long, default_value_t = 200)]
        rounds: u32,
    },
    /// Write the seed corpus of the coverage-guided fuzz target (fuzz/, cargo-fuzz): one input
    /// per scenario, its calls and buffers in the target's format (fuzz_input.rs).
    FuzzSeeds {
        /// The scenario corpus.
        #[arg(long, default_value = "tests/scenarios")]
        scenarios: PathBuf,
        /// Where to write the inputs.
        #[arg(long, default_value = "fuzz/seeds/bpf_calls")]
        out: PathBuf,
    },
    /// Generate call sequences from a seed, run them on the model and a kernel, and compare
    /// every outcome; each divergence is shrunk (host kernel) and written as a scenario file.
    Fuzz {
        /// The seed: the same seed gives the same calls.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// How many calls in all.
        #[arg(long, default_value_t = 10_000)]
        calls: usize,
        /// Calls per generated scenario (each runs in a fresh process).
        #[arg(long, default_value_t = 40)]
        per_scenario: usize,
        /// `host`, or `qemu:NAME` for a kernel of the manifest (riscv64-6.12, x86_64-6.1...).
        #[arg(long, default_value = "host")]
        kernel: String,
        /// Where findings are written.
        #[arg(long, default_value = "fuzz-findings")]
        out: PathBuf,
        /// Print scenario N of the seed's run (as the host's CPU count shapes it) and run
        /// nothing: to read or replay one scenario of a run.
        #[arg(long, value_name = "N")]
        print_scenario: Option<u64>,
    },
    /// Fetch, verify and unpack the pinned kernels into the cache, and nothing else.
    QemuFetch {
        #[command(flatten)]
        q: QemuArgs,
    },
}

#[derive(clap::Args)]
struct QemuArgs {
    /// The kernel manifest.
    #[arg(long, default_value = "images/kernels.manifest")]
    manifest: PathBuf,
    /// Where fetched kernels are kept (git-ignored).
    #[arg(long, default_value = "images/cache")]
    cache: PathBuf,
    /// The static riscv64 guest runner (`make guest` builds it).
    #[arg(
        long,
        default_value = "target/riscv64gc-unknown-linux-gnu/release/guest-init"
    )]
    guest: PathBuf,
    /// The static x86_64 guest runner (`make guest` builds it).
    #[arg(
        long,
        default_value = "target/x86_64-unknown-linux-gnu/release/guest-init"
    )]
    guest_x86_64: PathBuf,
    /// The scenario corpus.
    #[arg(long, default_value = "tests/scenarios")]
    scenarios: PathBuf,
    /// Seconds each guest may take before it is killed.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Only this kernel (a manifest name such as riscv64-6.12); repeatable.
    #[arg(long = "kernel")]
    only: Vec<String>,
    /// Fetch from this Debian archive instead of the one in the apt configuration.
    #[arg(long)]
    archive: Option<String>,
}

impl QemuArgs {
    fn config(&self, host: bool) -> QemuConfig {
        QemuConfig {
            manifest: self.manifest.clone(),
            cache: self.cache.clone(),
            riscv64: qemu::ArchTools {
                qemu: "qemu-system-riscv64".into(),
                guest: self.guest.clone(),
            },
            x86_64: qemu::ArchTools {
                qemu: "qemu-system-x86_64".into(),
                guest: self.guest_x86_64.clone(),
            },
            scenarios: self.scenarios.clone(),
            timeout: std::time::Duration::from_secs(self.timeout),
            only: self.only.clone(),
            host,
            archive: self.archive.clone(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RunFormat {
    Transcript,
    Strace,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExplainFormat {
    Text,
    Json,
    Markdown,
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
        Cmd::LoadMaps {
            object,
            backend,
            profile,
        } => load_maps(&object, backend, profile.as_deref()),
        Cmd::Walkthrough {
            write,
            docs,
            scenarios,
        } => walkthrough(&scenarios, write.as_deref(), &docs),
        Cmd::Run {
            backend,
            paths,
            profile,
            format,
        } => run(backend, &paths, profile.as_deref(), format),
        Cmd::Explain {
            input,
            profile,
            format,
        } => explain(&input, profile.as_deref(), format),
        Cmd::QemuTest {
            q,
            no_host,
            transcripts,
        } => qemu_test(&q.config(!no_host), transcripts),
        Cmd::Coverage {
            scenarios,
            write_readme,
        } => coverage(&scenarios, write_readme.as_deref()),
        Cmd::BenchModel { scenarios, rounds } => bench_model(&scenarios, rounds),
        Cmd::FuzzSeeds { scenarios, out } => {
            let corpus = runner::load(&[scenarios])?;
            let seeds = riscv_harness::fuzz_input::seeds_from_scenarios(&corpus);
            std::fs::create_dir_all(&out).with_context(|| format!("making {}", out.display()))?;
            for (name, bytes) in &seeds {
                let path = out.join(name);
                std::fs::write(&path, bytes)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!("bpfmodel: {} seeds in {}", seeds.len(), out.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Fuzz {
            seed,
            calls,
            per_scenario,
            kernel,
            out,
            print_scenario,
        } => {
            let plan = riscv_harness::fuzz::Plan {
                seed,
                calls,
                per: per_scenario.clamp(1, 40),
            };
            match print_scenario {
                Some(n) => print_fuzz_scenario(plan, n, &kernel),
                None => fuzz(plan, &kernel, &out),
            }
        }
        Cmd::QemuFetch { q } => {
            for k in qemu::fetch_all(&q.config(false), &|m| eprintln!("{m}"))? {
                println!("{}: Linux {} {}", k.spec.name, k.version, k.image.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn coverage(
    corpus: &std::path::Path,
    readme: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    use riscv_harness::coverage::{self, Coverage};
    let scenarios = runner::load(&[corpus.to_path_buf()])?;
    let profiles = coverage::checked_profiles();
    let table = Coverage::of(&scenarios, &profiles).table(&profiles);
    match readme {
        None => print!("{table}"),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let new = coverage::splice(&text, &table).with_context(|| {
                format!(
                    "{} has no coverage markers ({} ... {})",
                    path.display(),
                    coverage::BEGIN,
                    coverage::END
                )
            })?;
            std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("bpfmodel: wrote the coverage table into {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_model(corpus: &std::path::Path, rounds: u32) -> anyhow::Result<ExitCode> {
    let scenarios = runner::load(&[corpus.to_path_buf()])?;
    let (profile, _) = runner::host_profile()?;
    let start = std::time::Instant::now();
    let mut calls = 0;
    for _ in 0..rounds.max(1) {
        for s in &scenarios {
            calls += runner::run_model(s, &profile).calls();
        }
    }
    let secs = start.elapsed().as_secs_f64();
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let max_rss_kib = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru.ru_maxrss
    };
    println!(
        "bench: model: {} scenarios x {} rounds, {calls} calls in {secs:.2} s: {:.0} calls/s, peak RSS {} MiB",
        scenarios.len(),
        rounds.max(1),
        calls as f64 / secs,
        max_rss_kib / 1024
    );
    Ok(ExitCode::SUCCESS)
}

/// Scenario `n` of the run `plan` would make on `kernel` (whose CPU count shapes per-CPU
/// values).
fn print_fuzz_scenario(
    plan: riscv_harness::fuzz::Plan,
    n: u64,
    kernel: &str,
) -> anyhow::Result<ExitCode> {
    let ncpus = if kernel == "host" {
        runner::host_profile()?.0.num_possible_cpus
    } else {
        riscv_harness::qemu::boot::GUEST_SMP
    };
    print!(
        "{}",
        riscv_harness::fuzz::generate(plan.seed, n, plan.per, ncpus)
    );
    Ok(ExitCode::SUCCESS)
}

fn fuzz(
    plan: riscv_harness::fuzz::Plan,
    kernel: &str,
    out: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    use riscv_harness::fuzz;
    let start = std::time::Instant::now();
    let progress = |o: &fuzz::Outcome| {
        eprint!(
            "\rfuzz: {} calls, {:.0} calls/s, {} divergences   ",
            o.calls,
            o.calls as f64 / start.elapsed().as_secs_f64(),
            o.findings.len()
        );
    };
    let outcome = if kernel == "host" {
        let o = fuzz::run_host(plan, out, &progress)?;
        eprintln!();
        o
    } else {
        let name = kernel
            .strip_prefix("qemu:")
            .with_context(|| format!("--kernel {kernel:?}: expected host or qemu:NAME"))?;
        let q = QemuConfig::in_workspace(std::path::Path::new("."));
        // A boot's own messages go on lines of their own, after the progress line.
        let o = fuzz::run_qemu(&q, name, plan, out, &|m| eprintln!("\n{m}"), &progress)?;
        eprintln!();
        o
    };
    if outcome.by_type.is_empty() {
        print!("{}", outcome.table());
    } else {
        print!("{}", outcome.type_table());
    }
    for f in &outcome.findings {
        println!("finding: {}", f.display());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} calls, {} divergences ({} scenarios, {:.1} s wall, {:.0} calls/s)",
        outcome.calls,
        outcome.findings.len(),
        outcome.scenarios,
        secs,
        outcome.calls as f64 / secs.max(1e-9)
    );
    Ok(if outcome.findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn qemu_test(cfg: &QemuConfig, transcripts: bool) -> anyhow::Result<ExitCode> {
    let start = std::time::Instant::now();
    let reports = qemu::run(cfg, &|m| eprintln!("{m}"))?;
    let corpus = cfg.scenarios.display().to_string();
    let mut lines = Vec::new();
    let mut total = 0;
    let mut calls = 0;
    for r in &reports {
        if transcripts {
            for (path, _, kernel) in &r.results {
                println!("== {corpus}/{path} ({}) ==", r.label);
                print!("{}", kernel.render());
            }
        }
        let (n, text) = r.findings(&corpus);
        print!("{text}");
        if !r.note.is_empty() {
            eprintln!("bpfmodel: {}: {}", r.name, r.note);
        }
        total += n;
        calls += r.calls();
        lines.push(r.summary(n));
    }
    for l in lines {
        println!("{l}");
    }
    let wall = start.elapsed().as_secs_f64();
    println!("qemu-test: {} kernels, {calls} calls, {total} divergences, {wall:.1} s wall, {:.0} calls/s", reports.len(), calls as f64 / wall);
    Ok(if total == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The profile `--profile` names, or the running kernel's (with a warning when it is the
/// nearest lower one).
fn chosen_profile(version: Option<&str>) -> anyhow::Result<syscall_model::KernelProfile> {
    let (profile, warning) = match version {
        Some(v) => (
            runner::with_live_sysctls(runner::profile_override(v)?),
            None,
        ),
        None => runner::host_profile()?,
    };
    if let Some(w) = warning {
        eprintln!("bpfmodel: warning: {w}");
    }
    Ok(profile)
}

fn load_maps(
    object: &std::path::Path,
    backend: BackendArg,
    version: Option<&str>,
) -> anyhow::Result<ExitCode> {
    use riscv_harness::load_maps;
    let data = std::fs::read(object).with_context(|| format!("reading {}", object.display()))?;
    let maps = load_maps::read_maps(&data).with_context(|| format!("{}", object.display()))?;
    if maps.is_empty() {
        anyhow::bail!(
            "{}: no maps (neither SEC(\"maps\") nor SEC(\".maps\"))",
            object.display()
        );
    }
    let text = load_maps::scenario_text(&object.display().to_string(), &maps);
    let s = riscv_harness::scenario::parse(object, &text).map_err(|e| {
        anyhow::anyhow!("{}: the maps do not make a scenario: {e}", object.display())
    })?;
    let profile = chosen_profile(version)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if backend == BackendArg::Both {
        let sum = runner::run_both(std::slice::from_ref(&s), &profile, &mut out)?;
        writeln!(
            out,
            "{}: {} maps, {} divergences",
            object.display(),
            maps.len(),
            sum.divergences
        )?;
        return Ok(if sum.divergences > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        });
    }
    let t = if backend == BackendArg::Model {
        runner::run_model(&s, &profile)
    } else {
        runner::run_kernel(&s)?
    };
    writeln!(out, "== {} ({}) ==", object.display(), t.backend)?;
    write!(out, "{}", t.render())?;
    Ok(ExitCode::SUCCESS)
}

fn walkthrough(
    scenarios: &std::path::Path,
    write: Option<&std::path::Path>,
    docs: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let pages = riscv_harness::explain::walkthrough(scenarios)?;
    match write {
        Some(dir) => {
            riscv_harness::explain::write_walkthrough(dir, &pages)?;
            eprintln!(
                "bpfmodel: wrote {} pages into {}",
                pages.len(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let stale = riscv_harness::explain::stale_pages(docs, &pages);
            if stale.is_empty() {
                println!("{}: {} pages, current", docs.display(), pages.len());
                Ok(ExitCode::SUCCESS)
            } else {
                for s in &stale {
                    println!("{}: {s}", docs.display());
                }
                println!(
                    "regenerate with: bpfmodel walkthrough --write {}",
                    docs.display()
                );
                Ok(ExitCode::from(1))
            }
        }
    }
}

fn explain(input: &str, version: Option<&str>, format: ExplainFormat) -> anyhow::Result<ExitCode> {
    use riscv_harness::explain;
    let path = std::path::Path::new(input);
    let scenario = if path.is_file() {
        runner::load(&[path.to_path_buf()])?
            .pop()
            .with_context(|| format!("{input}: no scenario"))?
    } else {
        if input.ends_with(".bpfs") {
            anyhow::bail!("{input}: no such scenario file");
        }
        let text: String = input
            .split(';')
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        riscv_harness::scenario::parse(std::path::Path::new("(command line)"), &text)
            .map_err(|e| anyhow::anyhow!("(command line): {e}"))?
    };
    riscv_harness::exec::validate(&scenario)
        .map_err(|e| anyhow::anyhow!("{}:{}:{}: {}", scenario.name, e.line, e.col, e.msg))?;
    let profile = chosen_profile(version)?;
    let e = explain::explain(&scenario, &profile);
    // A statement the runner could not make (an unknown name, a bad literal) is the input's
    // fault: say where, and explain nothing.
    if let Some(bad) = e.statements.iter().find_map(|st| {
        st.outcome
            .lines()
            .find_map(|l| l.trim().strip_prefix("!! scenario error at "))
    }) {
        anyhow::bail!("{}:{bad}", scenario.name);
    }
    match format {
        ExplainFormat::Text => print!("{}", explain::render_text(&e)),
        ExplainFormat::Markdown => print!("{}", explain::render_markdown(&e)),
        ExplainFormat::Json => println!("{}", serde_json::to_string_pretty(&e)?),
    }
    Ok(ExitCode::SUCCESS)
}

fn run(
    backend: BackendArg,
    paths: &[PathBuf],
    version: Option<&str>,
    format: RunFormat,
) -> anyhow::Result<ExitCode> {
    let scenarios = runner::load(paths)?;
    let profile = chosen_profile(version)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut sum = Summary::default();
    if format == RunFormat::Strace {
        for s in &scenarios {
            let mut runs = Vec::new();
            if backend != BackendArg::Kernel {
                runs.push(runner::run_model_recorded(s, &profile));
            }
            if backend != BackendArg::Model {
                runs.push(
                    runner::run_kernel_recorded(s)
                        .with_context(|| format!("running {}", s.path.display()))?,
                );
            }
            for (t, records) in runs {
                writeln!(out, "== {} ({}) ==", s.path.display(), t.backend)?;
                write!(out, "{records}")?;
                sum.scenarios += 1;
                sum.calls += t.calls();
            }
        }
        writeln!(out, "{} runs, {} calls", sum.scenarios, sum.calls)?;
        return Ok(ExitCode::SUCCESS);
    }
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
