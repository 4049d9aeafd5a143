//! Booting a kernel in QEMU with the guest runner as /init, and reading its results back.

use super::frame;
use super::guest::{decode_result, SCENARIO_DIR};
use super::initramfs::Cpio;
use crate::transcript::Transcript;
use anyhow::{bail, Context};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The fixed CPU count of every guest; the model's profile uses it as num_possible_cpus.
pub const GUEST_SMP: u32 = 2;

/// Builds the initramfs: /init, the device nodes it needs, and the corpus under /scenarios.
pub fn build_initramfs(init: &Path, scenarios: &[PathBuf], root: &Path) -> anyhow::Result<Vec<u8>> {
    let bin = std::fs::read(init)
        .with_context(|| format!("reading the guest runner {}", init.display()))?;
    let mut c = Cpio::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "tmp",
        SCENARIO_DIR.trim_start_matches('/'),
    ] {
        c.dir(d);
    }
    c.chardev("dev/console", 5, 1);
    c.chardev("dev/null", 1, 3);
    c.chardev("dev/zero", 1, 5);
    c.file("init", 0o755, &bin);
    let mut dirs = std::collections::BTreeSet::new();
    for s in scenarios {
        let rel = s.strip_prefix(root).unwrap_or(s);
        let mut acc = PathBuf::from(SCENARIO_DIR.trim_start_matches('/'));
        if let Some(parent) = rel.parent() {
            for comp in parent.components() {
                acc.push(comp);
                if dirs.insert(acc.clone()) {
                    c.dir(&acc.to_string_lossy());
                }
            }
        }
        let text = std::fs::read(s).with_context(|| format!("reading {}", s.display()))?;
        let dest = PathBuf::from(SCENARIO_DIR.trim_start_matches('/')).join(rel);
        c.file(&dest.to_string_lossy(), 0o644, &text);
    }
    Ok(c.finish())
}

/// What came back from one guest.
#[derive(Debug)]
pub struct GuestRun {
    /// `uname -r` inside the guest.
    pub release: String,
    pub ncpus: u32,
    /// The model profile the guest used, and a note if it was a fallback.
    pub profile: String,
    pub note: String,
    /// (scenario path relative to the corpus, model transcript, kernel transcript)
    pub results: Vec<(String, Transcript, Transcript)>,
    pub wall: Duration,
}

/// The last lines of a console log that are not result frames: what the kernel said.
pub fn console_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(frame::MARK)).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The machine QEMU emulates for a guest architecture: riscv64's `virt` board with OpenSBI
/// as firmware; for x86_64 a q35 PC, under KVM with the host's CPU when KVM really boots a
/// kernel here, and TCG's `max` CPU otherwise.
pub fn machine_args(qemu: &str, arch: &str, image: &Path) -> &'static [&'static str] {
    const KVM: &[&str] = &["-machine", "q35", "-accel", "kvm", "-cpu", "host"];
    const TCG: &[&str] = &["-machine", "q35", "-accel", "tcg", "-cpu", "max"];
    match arch {
        "x86_64" if kvm_boots(qemu, image) => KVM,
        "x86_64" => TCG,
        _ => &["-machine", "virt", "-bios", "default"],
    }
}

/// Whether KVM boots `image` on this machine: /dev/kvm must open read-write, and a short trial
/// boot must print the kernel's banner. A nested KVM can fail either way (QEMU aborting on
/// a model-specific register, or a guest that never runs), so the answer comes from trying;
/// it is kept for the rest of the process.
pub fn kvm_boots(qemu: &str, image: &Path) -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| {
        let usable = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        usable && kvm_trial_boot(qemu, image, Duration::from_secs(10))
    })
}

fn kvm_trial_boot(qemu: &str, image: &Path, limit: Duration) -> bool {
    let Ok(mut child) = Command::new(qemu)
        .args([
            "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256",
        ])
        .arg("-kernel")
        .arg(image)
        .args(["-append", "console=ttyS0 panic=-1", "-display", "none"])
        .args(["-monitor", "none", "-serial", "stdio", "-no-reboot"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let Some(mut out) = child.stdout.take() else {
        let _ = child.kill();
        return false;
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(13).any(|w| w == b"Linux version") {
                let _ = tx.send(());
                return;
            }
        }
    });
    let booted = rx.recv_timeout(limit).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    booted
}

/// Boots `image` (a kernel for `arch`) with `initrd`, waits at most `timeout`, and decodes
/// the results.
/// Where a run that did not finish got to, from the records that arrived: the scenario and
/// the kernel call in progress, how many scenarios finished, and the ones that never ran.
/// Empty if the guest never sent its plan.
pub fn progress_report(records: &[frame::Record]) -> String {
    let Some(plan) = records.iter().find(|r| r.kind == "PLAN") else {
        return String::new();
    };
    let plan = miniz_oxide::inflate::decompress_to_vec_with_limit(&plan.data, 1 << 24)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let plan: Vec<&str> = plan.lines().filter(|l| !l.is_empty()).collect();
    let finished = records.iter().filter(|r| r.kind == "RESULT").count();
    let last_start = records.iter().rposition(|r| r.kind == "START");
    let mut out = format!("\n{finished} of {} scenarios finished.", plan.len());
    let mut not_run_from = finished;
    if let Some(i) = last_start {
        let current = String::from_utf8_lossy(&records[i].data).into_owned();
        let done_after = records[i..].iter().any(|r| r.kind == "RESULT");
        if !done_after {
            not_run_from = plan
                .iter()
                .position(|p| *p == current)
                .map_or(finished, |p| p + 1);
            let call = records[i..].iter().rev().find(|r| r.kind == "CALL");
            match call {
                Some(c) => {
                    let c = String::from_utf8_lossy(&c.data);
                    let (line, stmt) = c.split_once('\t').unwrap_or((&c, ""));
                    out.push_str(&format!(
                        "\nThe kernel was running {current}, line {line}: {stmt}"
                    ));
                }
                None => out.push_str(&format!(
                    "\nThe guest was in {current}, before its first kernel call."
                )),
            }
        }
    }
    let not_run = plan.get(not_run_from..).unwrap_or_default();
    if !not_run.is_empty() {
        let shown: Vec<&str> = not_run.iter().take(20).copied().collect();
        out.push_str(&format!(
            "\nNot run ({}): {}{}",
            not_run.len(),
            shown.join(", "),
            if not_run.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        ));
    }
    out
}

pub fn boot(
    qemu: &str,
    arch: &str,
    image: &Path,
    initrd: &Path,
    timeout: Duration,
) -> anyhow::Result<GuestRun> {
    let start = Instant::now();
    let mut child = Command::new(qemu)
        .args(machine_args(qemu, arch, image))
        .args(["-m", "1024"])
        .args(["-smp", &GUEST_SMP.to_string()])
        .arg("-kernel")
        .arg(image)
        .arg("-initrd")
        .arg(initrd)
        .args([
            "-append",
            &format!("console=ttyS0 panic=-1 quiet loglevel=1 bpfmodel.smp={GUEST_SMP}"),
        ])
        .args([
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            "stdio",
            "-no-reboot",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {qemu} (apt-get install qemu-system-misc opensbi)"))?;
    let mut stdout = child.stdout.take().context("qemu stdout")?;
    let mut stderr = child.stderr.take().context("qemu stderr")?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let wall = start.elapsed();
    let tail = || {
        let mut t = console_tail(&log, 25);
        if !err.trim().is_empty() {
            t.push_str("\n[qemu stderr]\n");
            t.push_str(err.trim());
        }
        t
    };
    let decoded = frame::decode(&log);
    if timed_out {
        bail!(
            "QEMU did not finish within {} s; killed it.{}\nLast console lines:\n{}",
            timeout.as_secs(),
            progress_report(&decoded.records),
            tail()
        );
    }
    if let Some(e) = decoded.records.iter().find(|r| r.kind == "ERROR") {
        bail!(
            "the guest runner failed: {}\nLast console lines:\n{}",
            String::from_utf8_lossy(&e.data),
            tail()
        );
    }
    let Some(hello) = decoded.records.iter().find(|r| r.kind == "HELLO") else {
        bail!(
            "the guest never reported in (the kernel did not boot, or /init did not start; QEMU {}). \
             Last console lines:\n{}",
            status,
            tail()
        );
    };
    let Some(done) = decoded.records.iter().find(|r| r.kind == "DONE") else {
        bail!(
            "the guest runner stopped before the end (a kernel panic or a crash of /init; QEMU {}).{}\n\
             Last console lines:\n{}",
            status,
            progress_report(&decoded.records),
            tail()
        );
    };
    if !decoded.missing.is_empty() {
        bail!(
            "{} console lines of the results were garbled or lost (sequence numbers {:?})",
            decoded.missing.len(),
            decoded.missing
        );
    }
    let hello = String::from_utf8_lossy(&hello.data).into_owned();
    let mut f = hello.split('\t');
    let release = f.next().unwrap_or("").to_string();
    let ncpus = f.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let profile = f.next().unwrap_or("").to_string();
    let note = f.next().unwrap_or("").to_string();
    let mut results = Vec::new();
    for r in decoded.records.iter().filter(|r| r.kind == "RESULT") {
        results.push(decode_result(&r.data).context("a RESULT record does not decode")?);
    }
    let expected: usize = String::from_utf8_lossy(&done.data)
        .parse()
        .unwrap_or(usize::MAX);
    if expected != results.len() {
        bail!(
            "the guest reported {expected} scenarios but {} results arrived",
            results.len()
        );
    }
    Ok(GuestRun {
        release,
        ncpus,
        profile,
        note,
        results,
        wall,
    })
}
