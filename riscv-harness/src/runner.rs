//! Running scenario files on backends: collecting files, choosing the model's profile for
//! the host, isolating kernel runs, and summing up.

use crate::backend::kernel::{self, KernelBackend};
use crate::backend::model::ModelBackend;
use crate::exec;
use crate::scenario::{self, Scenario};
use crate::transcript::{compare, render_divergence, Transcript};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use syscall_model::profile::KernelVersion;
use syscall_model::{Arch, KernelProfile};

/// Every `.bpfs` file named, or found under a named folder, sorted.
pub fn collect_scenarios(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            walk_dir(p, &mut out).with_context(|| format!("reading {}", p.display()))?;
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{}: no such scenario file or folder", p.display());
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk_dir(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk_dir(&p, out)?;
        } else if p.extension().is_some_and(|x| x == "bpfs") {
            out.push(p);
        }
    }
    Ok(())
}

/// Parses every file; the first error stops with `file:line:col`.
pub fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Scenario>> {
    let mut out = Vec::new();
    for p in collect_scenarios(paths)? {
        let s = scenario::parse_file(&p)?;
        if let Err(e) = exec::validate(&s) {
            bail!("{}:{}:{}: {}", p.display(), e.line, e.col, e.msg);
        }
        out.push(s);
    }
    Ok(out)
}

/// The model profile for a kernel release, and a note when no profile matches exactly.
pub fn profile_for(release: &str, arch: Arch, ncpus: u32) -> (KernelProfile, Option<String>) {
    let Some(v) = KernelVersion::parse_release(release) else {
        let p = KernelProfile::linux_6_18(arch, ncpus);
        let note = format!(
            "cannot read a version in the kernel release {release:?}; using {}",
            p.label()
        );
        return (p, Some(note));
    };
    match KernelProfile::nearest(v, arch, ncpus) {
        (p, true) => (p, None),
        (p, false) => {
            let note = format!(
                "no model profile for Linux {release}; using the nearest, {}",
                p.label()
            );
            (p, Some(note))
        }
    }
}

/// `--profile VERSION`: the named profile for this machine's architecture and CPUs, in place
/// of the one its kernel version picks.
pub fn profile_override(version: &str) -> anyhow::Result<KernelProfile> {
    let v = KernelVersion::parse_release(version)
        .with_context(|| format!("--profile {version:?} is not a kernel version such as 6.12"))?;
    let ncpus = kernel::possible_cpus()?;
    let arch = Arch::native().context("the model knows x86_64 and riscv64 only")?;
    KernelProfile::for_version(v, arch, ncpus).with_context(|| {
        let known: Vec<String> = KernelProfile::all(arch, ncpus)
            .iter()
            .map(|p| p.version.to_string())
            .collect();
        format!(
            "no model profile for Linux {v} (profiles: {})",
            known.join(", ")
        )
    })
}

/// The model profile for the running kernel, and a warning when no profile matches exactly.
pub fn host_profile() -> anyhow::Result<(KernelProfile, Option<String>)> {
    let release = kernel::kernel_release();
    let ncpus = kernel::possible_cpus()?;
    let arch = Arch::native().context("the model knows x86_64 and riscv64 only")?;
    let (profile, note) = profile_for(&release, arch, ncpus);
    Ok((with_live_sysctls(profile), note))
}

/// `profile` with what the running machine sets for itself: the sysctls a profile records
/// (`kernel.unprivileged_bpf_disabled`, whose default is a build option and which root may
/// change) and its memory (MemTotal), read from /proc when it can be.
pub fn with_live_sysctls(mut profile: KernelProfile) -> KernelProfile {
    let read = |name: &str| -> Option<u32> {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let Some(v) = read("unprivileged_bpf_disabled") {
        profile.unprivileged_bpf_disabled = v;
    }
    // The machine's memory, which decides when a preallocating map is ENOMEM.
    let mem_total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        let kb = m.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok()
    });
    if let Some(kb) = mem_total {
        profile.mem_total = kb * 1024;
    }
    profile
}

/// One scenario on the model.
pub fn run_model(s: &Scenario, profile: &KernelProfile) -> Transcript {
    let mut be = ModelBackend::new(profile.clone());
    exec::run(s, &mut be)
}

/// One scenario on the host kernel, in a forked child with a fresh fd table.
pub fn run_kernel(s: &Scenario) -> anyhow::Result<Transcript> {
    let out = kernel::run_isolated(|| match KernelBackend::new() {
        Ok(mut be) => exec::run(s, &mut be).encode(),
        Err(e) => format!("\x01{e:#}").into_bytes(),
    })?;
    if let Some(msg) = out.strip_prefix(b"\x01") {
        bail!("{}", String::from_utf8_lossy(msg));
    }
    Transcript::decode(&out).context("the scenario child returned a garbled transcript")
}

/// One scenario on the model, recorded: its transcript and its bpf(2) calls decoded as strace
/// prints them.
pub fn run_model_recorded(s: &Scenario, profile: &KernelProfile) -> (Transcript, String) {
    let mut be = ModelBackend::new(profile.clone());
    let (t, records) = exec::run_recorded(s, &mut be);
    (t, crate::strace::render_run(&records))
}

/// [`run_model_recorded`] on the host kernel, in a forked child as [`run_kernel`] does.
pub fn run_kernel_recorded(s: &Scenario) -> anyhow::Result<(Transcript, String)> {
    let out = kernel::run_isolated(|| match KernelBackend::new() {
        Ok(mut be) => {
            let (t, records) = exec::run_recorded(s, &mut be);
            let t = t.encode();
            let mut out = (t.len() as u64).to_le_bytes().to_vec();
            out.extend(t);
            out.extend(crate::strace::render_run(&records).into_bytes());
            out
        }
        Err(e) => format!("\x01{e:#}").into_bytes(),
    })?;
    if let Some(msg) = out.strip_prefix(b"\x01") {
        bail!("{}", String::from_utf8_lossy(msg));
    }
    let garbled = || anyhow::anyhow!("the scenario child returned a garbled record");
    let (len, rest) = out.split_first_chunk::<8>().ok_or_else(garbled)?;
    let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| garbled())?;
    if len > rest.len() {
        return Err(garbled());
    }
    let (t, text) = rest.split_at(len);
    let t = Transcript::decode(t).ok_or_else(garbled)?;
    Ok((t, String::from_utf8_lossy(text).into_owned()))
}

/// One scenario on the running kernel in this very process, for a runner that owns its whole
/// machine: the QEMU guest's /init. A fork per scenario (as [`run_kernel`] does) costs about
/// 10 ms under TCG, a third of the guest's time, and isolates nothing a throwaway VM does not:
/// the fds past 2 are closed before and after, so a scenario's fds are numbered as in a fresh
/// process, and the backend's buffers and private bpffs go with it.
pub fn run_kernel_in_process(s: &Scenario) -> anyhow::Result<Transcript> {
    kernel::close_fds_from(3);
    let t = {
        let mut be = KernelBackend::new()?;
        exec::run(s, &mut be)
    };
    kernel::close_fds_from(3);
    Ok(t)
}

/// What `bpfmodel run --backend both` counts.
#[derive(Default, Debug)]
pub struct Summary {
    pub scenarios: usize,
    pub calls: usize,
    pub divergences: usize,
    pub problems: usize,
}

impl Summary {
    pub fn line(&self) -> String {
        format!(
            "{} scenarios, {} calls, {} divergences",
            self.scenarios, self.calls, self.divergences
        )
    }
}

/// Runs every scenario on the model and the host kernel; writes each divergence and problem
/// to `out` as it is found.
pub fn run_both(
    scenarios: &[Scenario],
    profile: &KernelProfile,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<Summary> {
    let mut sum = Summary::default();
    for s in scenarios {
        let model = run_model(s, profile);
        let kernel =
            run_kernel(s).with_context(|| format!("running {} on the kernel", s.path.display()))?;
        sum.scenarios += 1;
        sum.calls += kernel.calls();
        let path = s.path.display().to_string();
        for d in compare(&model, &kernel) {
            sum.divergences += 1;
            write!(out, "{}", render_divergence(&path, &d, "model", "kernel"))?;
        }
        for (t, who) in [(&model, "model"), (&kernel, "kernel")] {
            for (line, p) in t.problems() {
                sum.problems += 1;
                writeln!(out, "{path}:{line}: {who}: {p}")?;
            }
        }
    }
    Ok(sum)
}
