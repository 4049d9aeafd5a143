//! `make qemu-test`: real kernels (riscv64, and x86_64 under KVM) booted in QEMU run the corpus
//! next to the model.
//!
//! - [`images`]: the pinned kernel packages, fetched, verified and unpacked into a cache;
//! - [`initramfs`]: the newc archive with the guest runner as /init and the corpus;
//! - [`guest`]: what that /init does inside the machine;
//! - [`frame`]: how its results cross the serial console;
//! - [`boot`]: starting QEMU under a timeout and reading the results back.

pub mod boot;
pub mod frame;
pub mod guest;
pub mod images;
pub mod initramfs;

use crate::runner;
use crate::transcript::{compare, render_divergence, Transcript};
use anyhow::Context;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use syscall_model::{Arch, KernelProfile};

/// What booting a guest of one architecture takes: the QEMU binary and the static guest
/// runner built for it.
#[derive(Clone, Debug)]
pub struct ArchTools {
    pub qemu: String,
    pub guest: PathBuf,
}

/// Where things are.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub manifest: PathBuf,
    pub cache: PathBuf,
    /// For riscv64 guests.
    pub riscv64: ArchTools,
    /// For x86_64 guests.
    pub x86_64: ArchTools,
    pub scenarios: PathBuf,
    pub timeout: Duration,
    /// Only these kernels (by manifest name); all if empty.
    pub only: Vec<String>,
    /// Also run the corpus on the host kernel.
    pub host: bool,
    /// A Debian archive to fetch from instead of the one in the apt configuration.
    pub archive: Option<String>,
}

impl QemuConfig {
    /// The defaults, relative to the workspace root `root`.
    pub fn in_workspace(root: &Path) -> QemuConfig {
        QemuConfig {
            manifest: root.join("images/kernels.manifest"),
            cache: root.join("images/cache"),
            riscv64: ArchTools {
                qemu: "qemu-system-riscv64".into(),
                guest: root.join("target/riscv64gc-unknown-linux-gnu/release/guest-init"),
            },
            x86_64: ArchTools {
                qemu: "qemu-system-x86_64".into(),
                guest: root.join("target/x86_64-unknown-linux-gnu/release/guest-init"),
            },
            scenarios: root.join("tests/scenarios"),
            timeout: Duration::from_secs(600),
            only: Vec::new(),
            host: true,
            archive: None,
        }
    }
}

impl QemuConfig {
    /// The tools for guests of `arch`.
    pub fn tools(&self, arch: &str) -> anyhow::Result<&ArchTools> {
        match arch {
            "riscv64" => Ok(&self.riscv64),
            "x86_64" => Ok(&self.x86_64),
            a => anyhow::bail!("no guest runner for the architecture {a:?} (riscv64, x86_64)"),
        }
    }
}

/// One kernel's outcome: every scenario's pair of transcripts.
#[derive(Debug)]
pub struct KernelReport {
    /// `riscv64 Linux 6.12.107` or `x86_64 Linux 6.18.44 (host)`.
    pub label: String,
    /// The manifest name (`riscv64-6.12`) or `host`.
    pub name: String,
    pub profile: String,
    /// The model's profile for this kernel, as the host rebuilds it from the release and CPU
    /// count the guest reported (sysctls at the profile's defaults): to rerun a scenario on
    /// the model here, watched, as the fuzz tally does.
    pub model: KernelProfile,
    pub note: String,
    pub results: Vec<(String, Transcript, Transcript)>,
    pub wall: Duration,
}

impl KernelReport {
    pub fn calls(&self) -> usize {
        self.results.iter().map(|(_, _, k)| k.calls()).sum()
    }

    /// Divergences and problems, rendered as `bpfmodel run --backend both` prints them.
    pub fn findings(&self, corpus: &str) -> (usize, String) {
        let mut n = 0;
        let mut out = String::new();
        for (path, model, kernel) in &self.results {
            let p = format!("{corpus}/{path} [{}]", self.name);
            for d in compare(model, kernel) {
                n += 1;
                out.push_str(&render_divergence(&p, &d, "model", "kernel"));
            }
            for (t, who) in [(model, "model"), (kernel, "kernel")] {
                for (line, msg) in t.problems() {
                    n += 1;
                    out.push_str(&format!("{p}:{line}: {who}: {msg}\n"));
                }
            }
        }
        (n, out)
    }

    /// `riscv64 Linux 6.12.107: 80 scenarios, 640 calls, 0 divergences, 4.1 s`
    pub fn summary(&self, divergences: usize) -> String {
        format!(
            "{}: {} scenarios, {} calls, {} divergences, {:.1} s",
            self.label,
            self.results.len(),
            self.calls(),
            divergences,
            self.wall.as_secs_f64()
        )
    }
}

/// Fetches every kernel of the manifest (or the chosen ones).
pub fn fetch_all(
    cfg: &QemuConfig,
    log: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<images::KernelFiles>> {
    let specs = images::load_manifest(&cfg.manifest)?;
    // An optional kernel runs only when named.
    let chosen: Vec<_> = specs
        .into_iter()
        .filter(|s| {
            if cfg.only.is_empty() {
                if let Some(why) = &s.optional {
                    log(&format!(
                        "{}: optional ({why}); run it with --kernel {}",
                        s.name, s.name
                    ));
                }
                s.optional.is_none()
            } else {
                cfg.only.contains(&s.name)
            }
        })
        .collect();
    if chosen.is_empty() {
        anyhow::bail!(
            "no kernel of {} is named {:?}",
            cfg.manifest.display(),
            cfg.only
        );
    }
    chosen
        .iter()
        .map(|s| {
            images::fetch(s, &cfg.cache, cfg.archive.as_deref(), &mut |m| {
                log(&format!("{}: {m}", s.name))
            })
        })
        .collect()
}

/// Runs the corpus in every guest (in parallel) and on the host kernel.
pub fn run(cfg: &QemuConfig, log: &(dyn Fn(&str) + Sync)) -> anyhow::Result<Vec<KernelReport>> {
    let kernels = fetch_all(cfg, log)?;
    let paths = runner::collect_scenarios(std::slice::from_ref(&cfg.scenarios))?;
    // Parse locally first: a broken scenario is reported here, with its line, not in a guest.
    runner::load(std::slice::from_ref(&cfg.scenarios))?;
    // One initramfs per guest architecture: the same corpus, that architecture's runner.
    std::fs::create_dir_all(&cfg.cache)?;
    let mut initrds = std::collections::BTreeMap::new();
    for k in &kernels {
        let arch = k.spec.arch.as_str();
        if initrds.contains_key(arch) {
            continue;
        }
        let tools = cfg.tools(arch)?;
        if !tools.guest.is_file() {
            anyhow::bail!(
                "the {arch} guest runner {} is missing: build it with `make guest`",
                tools.guest.display()
            );
        }
        warn_if_stale(&tools.guest, log);
        let cpio = boot::build_initramfs(&tools.guest, &paths, &cfg.scenarios)?;
        let initrd = cfg.cache.join(format!("initramfs-{arch}.cpio"));
        std::fs::write(&initrd, cpio).with_context(|| format!("writing {}", initrd.display()))?;
        initrds.insert(arch.to_string(), initrd);
    }

    // Guests at once: MTTCG gives each vCPU a host thread, and a guest whose vCPUs wait for a
    // descheduled sibling (a lock holder, an RCU grace period) crawls. Two 2-vCPU guests on 2
    // cores took 47 s together against 12 s each alone, so guests only share the machine when
    // every vCPU can have a core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let at_once = (cores / boot::GUEST_SMP as usize).max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(at_once)
        .build()
        .context("building the guest thread pool")?;
    let guests = || -> Vec<anyhow::Result<KernelReport>> {
        pool.install(|| {
            kernels
                .par_iter()
                .map(|k| {
                    log(&format!(
                        "{}: booting Linux {} in QEMU",
                        k.spec.name, k.version
                    ));
                    let arch = k.spec.arch.as_str();
                    let g = boot::boot(
                        &cfg.tools(arch)?.qemu,
                        arch,
                        &k.image,
                        &initrds[arch],
                        cfg.timeout,
                    )
                    .with_context(|| format!("{} (Linux {})", k.spec.name, k.version))?;
                    let guest_arch = Arch::from_name(arch)
                        .with_context(|| format!("{}: unknown architecture {arch}", k.spec.name))?;
                    Ok(KernelReport {
                        // The version from the kernel's config header (6.1.176), which
                        // Debian's release string (6.1.0-50-amd64) does not always carry.
                        label: format!("{} Linux {}", k.spec.arch, k.version),
                        name: k.spec.name.clone(),
                        profile: g.profile,
                        model: runner::profile_for(&g.release, guest_arch, g.ncpus).0,
                        note: g.note,
                        results: g.results,
                        wall: g.wall,
                    })
                })
                .collect()
        })
    };
    let host =
        || -> Option<anyhow::Result<KernelReport>> { cfg.host.then(|| run_host(&cfg.scenarios)) };
    let (guest_reports, host_report) = rayon::join(guests, host);
    let mut out = Vec::new();
    for r in guest_reports.into_iter().chain(host_report) {
        out.push(r?);
    }
    Ok(out)
}

/// The corpus on the host kernel, as one more report.
pub fn run_host(dir: &Path) -> anyhow::Result<KernelReport> {
    let start = Instant::now();
    let scenarios = runner::load(&[dir.to_path_buf()])?;
    let (profile, note) = runner::host_profile()?;
    let mut results = Vec::new();
    for s in &scenarios {
        let model = runner::run_model(s, &profile);
        let kernel = runner::run_kernel(s)
            .with_context(|| format!("running {} on the host kernel", s.path.display()))?;
        let rel = s
            .path
            .strip_prefix(dir)
            .unwrap_or(&s.path)
            .display()
            .to_string();
        results.push((rel, model, kernel));
    }
    let release = crate::backend::kernel::kernel_release();
    Ok(KernelReport {
        label: format!(
            "{} Linux {} (host)",
            profile.arch.name(),
            release.split('-').next().unwrap_or(&release)
        ),
        name: "host".into(),
        profile: profile.label(),
        model: profile,
        note: note.unwrap_or_default(),
        results,
        wall: start.elapsed(),
    })
}

/// The guest runner carries its own copy of the model: if a source file is newer than the
/// binary, the guest would test yesterday's model. Say so (`make qemu-test` rebuilds it).
fn warn_if_stale(guest: &Path, log: &(dyn Fn(&str) + Sync)) {
    let Ok(built) = std::fs::metadata(guest).and_then(|m| m.modified()) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![
        root.join("syscall-model/src"),
        root.join("riscv-harness/src"),
    ];
    while let Some(d) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                log(&format!(
                    "WARNING: {} is older than {}: the guest runs an old model. Rebuild it with `make guest`.",
                    guest.display(),
                    p.display()
                ));
                return;
            }
        }
    }
}
