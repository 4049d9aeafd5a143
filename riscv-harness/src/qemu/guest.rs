//! The guest side of `make qemu-test`: what PID 1 does inside the QEMU machine.

use crate::backend::kernel;
use crate::runner;
use crate::transcript::Transcript;
use anyhow::{bail, Context};
use std::ffi::CString;
use std::path::PathBuf;
use syscall_model::Arch;

/// Where the initramfs puts the scenario corpus.
pub const SCENARIO_DIR: &str = "/scenarios";

fn mount(source: &str, target: &str, fstype: &str) -> anyhow::Result<()> {
    let _ = std::fs::create_dir_all(target);
    let (s, t, f) = (
        CString::new(source)?,
        CString::new(target)?,
        CString::new(fstype)?,
    );
    // SAFETY: plain C strings that outlive the call.
    let r = unsafe { libc::mount(s.as_ptr(), t.as_ptr(), f.as_ptr(), 0, std::ptr::null()) };
    if r != 0 {
        bail!(
            "mount {fstype} on {target}: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// `bpfmodel.smp=N` from the kernel command line: the CPU count the host booted the guest
/// with, which the model's profile must use.
fn cmdline_smp() -> Option<u32> {
    let c = std::fs::read_to_string("/proc/cmdline").ok()?;
    c.split_whitespace()
        .find_map(|w| w.strip_prefix("bpfmodel.smp=")?.parse().ok())
}

/// Runs the corpus on the guest's kernel and the model; `emit` writes each record.
pub fn run(emit: &mut dyn FnMut(&str, &[u8])) -> anyhow::Result<()> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("bpf", "/sys/fs/bpf", "bpf")?;
    let release = kernel::kernel_release();
    let ncpus = kernel::possible_cpus()?;
    if let Some(smp) = cmdline_smp() {
        if smp != ncpus {
            bail!("booted with -smp {smp} but the kernel reports {ncpus} possible CPUs");
        }
    }
    let arch = Arch::native().context("unknown guest architecture")?;
    let (profile, note) = runner::profile_for(&release, arch, ncpus);
    let profile = runner::with_live_sysctls(profile);
    let hello = format!(
        "{release}\t{ncpus}\t{}\t{}",
        profile.label(),
        note.unwrap_or_default()
    );
    emit("HELLO", hello.as_bytes());
    kernel::bpf_available().map_err(|e| anyhow::anyhow!(e))?;
    let scenarios = runner::load(&[PathBuf::from(SCENARIO_DIR)])?;
    let rel = |s: &crate::scenario::Scenario| {
        s.path
            .strip_prefix(SCENARIO_DIR)
            .unwrap_or(&s.path)
            .display()
            .to_string()
            .trim_start_matches('/')
            .to_string()
    };
    // The plan first, then each scenario's start and each kernel call's line: if the kernel
    // hangs or panics, the host can tell where, and which scenarios never ran.
    let plan: Vec<String> = scenarios.iter().map(rel).collect();
    emit(
        "PLAN",
        &miniz_oxide::deflate::compress_to_vec(plan.join("\n").as_bytes(), 6),
    );
    for s in &scenarios {
        emit("START", rel(s).as_bytes());
        let model = runner::run_model(s, &profile);
        // Giving up root is for good, so such a scenario gets a process of its own.
        let kernel = if crate::exec::drops_privileges(s) {
            runner::run_kernel(s)?
        } else {
            runner::run_kernel_in_process(s)?
        };
        emit("RESULT", &encode_result(&rel(s), &model, &kernel));
    }
    emit("DONE", scenarios.len().to_string().as_bytes());
    Ok(())
}

/// One scenario's outcome as a record payload: [`result_payload`], deflated. Every byte the
/// guest prints is an emulated UART write, and transcripts are repetitive text: deflate
/// shrinks them several times over, and the console time with them.
pub fn encode_result(path: &str, model: &Transcript, kernel: &Transcript) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec(&result_payload(path, model, kernel), 6)
}

/// The path, then the model's transcript, then the kernel's. When the two agree (nearly
/// always) the model's is sent as the single byte [`SAME_AS_KERNEL`]: the serial console is
/// the slowest part of the trip, and this halves what crosses it.
pub fn result_payload(path: &str, model: &Transcript, kernel: &Transcript) -> Vec<u8> {
    let mut out = path.as_bytes().to_vec();
    out.push(0x1c);
    if model.entries == kernel.entries {
        out.push(SAME_AS_KERNEL);
    } else {
        out.extend(model.encode());
    }
    out.push(0x1c);
    out.extend(kernel.encode());
    out
}

/// Stands for a model transcript whose entries are the kernel's.
const SAME_AS_KERNEL: u8 = 0x1a;

/// The most a RESULT record may inflate to (a transcript is a few kilobytes).
const MAX_RESULT: usize = 64 << 20;

/// Inflates and parses a RESULT record; `None` if it is not one.
pub fn decode_result(b: &[u8]) -> Option<(String, Transcript, Transcript)> {
    let raw = miniz_oxide::inflate::decompress_to_vec_with_limit(b, MAX_RESULT).ok()?;
    parse_result_payload(&raw)
}

fn parse_result_payload(b: &[u8]) -> Option<(String, Transcript, Transcript)> {
    let mut parts = b.split(|c| *c == 0x1c);
    let path = String::from_utf8(parts.next()?.to_vec()).ok()?;
    let model = parts.next()?;
    let kernel = Transcript::decode(parts.next()?)?;
    let model = if model == [SAME_AS_KERNEL] {
        Transcript {
            backend: "model".to_string(),
            ..kernel.clone()
        }
    } else {
        Transcript::decode(model)?
    };
    Some((path, model, kernel))
}

/// Flushes and powers the machine off (QEMU exits). Never returns.
pub fn power_off() -> ! {
    // SAFETY: sync and reboot take no pointers; as PID 1 we may power off.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transcript::Entry;

    fn transcript(backend: &str, text: &str) -> Transcript {
        Transcript {
            scenario: "s".into(),
            backend: backend.into(),
            entries: vec![Entry {
                line: 3,
                text: text.into(),
                calls: 1,
            }],
        }
    }

    #[test]
    fn a_model_transcript_equal_to_the_kernels_crosses_as_one_byte_and_comes_back() {
        let (m, k) = (transcript("model", "x = 0"), transcript("kernel", "x = 0"));
        let raw = result_payload("a/b.bpfs", &m, &k);
        assert_eq!(raw.iter().filter(|b| **b == SAME_AS_KERNEL).count(), 1);
        let enc = encode_result("a/b.bpfs", &m, &k);
        assert_eq!(decode_result(&enc), Some(("a/b.bpfs".to_string(), m, k)));
    }

    #[test]
    fn a_model_transcript_that_differs_crosses_whole() {
        let (m, k) = (
            transcript("model", "x = 0"),
            transcript("kernel", "x = -1 EPERM"),
        );
        let enc = encode_result("a.bpfs", &m, &k);
        assert_eq!(decode_result(&enc), Some(("a.bpfs".to_string(), m, k)));
    }

    #[test]
    fn a_result_record_that_does_not_inflate_is_refused() {
        assert_eq!(decode_result(b"not deflate data"), None);
    }
}
