//! The kernel backend: bpf(2) on the kernel this process runs on (the host, or a riscv64
//! kernel when the harness runs as the init of a QEMU guest), through `libc::syscall`, with
//! buffers in real memory.
//!
//! This is the harness's only `unsafe` code. Each buffer is its own mapping that ends at a
//! page boundary, followed by a `PROT_NONE` guard page, so an access past the end faults in
//! the kernel exactly as it does in the model's simulated memory.
//!
//! [`run_isolated`] runs a scenario in a forked child whose fd table holds only 0, 1 and 2,
//! so fd numbers are the same as in the model (lowest free fd, starting at 3) and nothing the
//! scenario does leaks into the caller.

use super::Backend;
use anyhow::{bail, Context};
use std::ffi::CString;
use syscall_model::profile::KernelVersion;
use syscall_model::Errno;

const PAGE: usize = 4096;

pub struct KernelBackend {
    maps: Vec<(*mut libc::c_void, usize)>,
    unmapped: u64,
    ncpus: u32,
    /// A private bpffs mount and an ordinary directory, for pins (`@bpffs`, `@tmp`), made
    /// the first time a scenario names a path.
    dirs: std::cell::OnceCell<(String, String)>,
}

fn errno() -> Errno {
    Errno(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

impl KernelBackend {
    pub fn new() -> anyhow::Result<KernelBackend> {
        let ncpus = possible_cpus()?;
        // The model creates files and directories with the umask 022.
        // SAFETY: umask takes a number and cannot fail.
        unsafe { libc::umask(0o022) };
        // SAFETY: an anonymous PROT_NONE mapping; only its address is used, as a pointer that
        // faults.
        let guard = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if guard == libc::MAP_FAILED {
            bail!(
                "mmap of a guard page failed: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(KernelBackend {
            maps: vec![(guard, PAGE)],
            unmapped: guard as u64,
            ncpus,
            dirs: std::cell::OnceCell::new(),
        })
    }
}

/// The directory a scenario process `pid` keeps its bpffs mount point and its plain
/// directory in.
fn scratch_dir(pid: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("bpfmodel-{pid}"))
}

/// A bpffs of our own: in a private mount namespace (so nothing leaks to the host's mounts),
/// mounted on a fresh directory, plus a plain directory beside it.
fn private_bpffs() -> anyhow::Result<(String, String)> {
    // SAFETY: unshare and mount take plain values and C strings that outlive the calls.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            bail!("unshare(CLONE_NEWNS): {}", std::io::Error::last_os_error());
        }
        let root = CString::new("/")?;
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
    }
    let base = scratch_dir(std::process::id());
    let (bpffs, tmp) = (base.join("bpffs"), base.join("tmp"));
    std::fs::create_dir_all(&bpffs).with_context(|| format!("creating {}", bpffs.display()))?;
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    // The model's /tmp is 01777 like any /tmp: so is this stand-in for it.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
        .with_context(|| format!("chmod 1777 {}", tmp.display()))?;
    let src = CString::new("bpf")?;
    let dst = CString::new(bpffs.to_string_lossy().as_bytes())?;
    // SAFETY: as above.
    if unsafe {
        libc::mount(
            src.as_ptr(),
            dst.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        )
    } != 0
    {
        bail!(
            "mounting a bpffs on {}: {}",
            bpffs.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok((
        bpffs.to_string_lossy().into_owned(),
        tmp.to_string_lossy().into_owned(),
    ))
}

impl Drop for KernelBackend {
    fn drop(&mut self) {
        if let Some((bpffs, tmp)) = self.dirs.get() {
            if let Ok(p) = CString::new(bpffs.as_bytes()) {
                // SAFETY: unmounting our own mount.
                unsafe { libc::umount2(p.as_ptr(), libc::MNT_DETACH) };
            }
            if let Some(base) = std::path::Path::new(tmp).parent() {
                let _ = std::fs::remove_dir_all(base);
            }
        }
        for (p, len) in self.maps.drain(..) {
            // SAFETY: each (p, len) is a mapping this backend made and nothing refers to it.
            unsafe {
                libc::munmap(p, len);
            }
        }
    }
}

impl Backend for KernelBackend {
    fn name(&self) -> &'static str {
        "kernel"
    }

    fn btf_vmlinux_id(&self, name: &str) -> Option<u32> {
        let btf = std::fs::read("/sys/kernel/btf/vmlinux").ok()?;
        btf_struct_id(&btf, name)
    }

    fn num_possible_cpus(&self) -> u32 {
        self.ncpus
    }

    fn kernel_version(&self) -> KernelVersion {
        KernelVersion::parse_release(&kernel_release())
            .unwrap_or(KernelVersion { major: 0, minor: 0 })
    }

    fn buffer(&mut self, bytes: &[u8], writable: bool) -> u64 {
        let pages = bytes.len().div_ceil(PAGE).max(1);
        let len = (pages + 1) * PAGE;
        // SAFETY: a fresh anonymous mapping; the kernel picks the address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert!(p != libc::MAP_FAILED, "mmap of a scenario buffer failed");
        self.maps.push((p, len));
        let base = p as usize;
        let addr = base + pages * PAGE - bytes.len();
        // SAFETY: [addr, addr + len) lies inside the mapping just made, which is writable.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len());
            libc::mprotect(
                (base + pages * PAGE) as *mut libc::c_void,
                PAGE,
                libc::PROT_NONE,
            );
            if !writable {
                libc::mprotect(p, pages * PAGE, libc::PROT_READ);
            }
        }
        addr as u64
    }

    fn unmapped(&self) -> u64 {
        self.unmapped
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: callers only read buffers made by `buffer`, which are readable for `len`.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, out.as_mut_ptr(), len) };
        out
    }

    fn bpf(&mut self, cmd: i32, attr: u64, size: u32, common: (u64, u32)) -> Result<i32, Errno> {
        // SAFETY: bpf(2) reads and writes user memory only through the kernel's checked copies;
        // a bad pointer gives EFAULT, never a fault in this process.
        // The 4th and 5th arguments are 7.2's common attrs (read when cmd has BPF_COMMON_ATTRS);
        // they are always passed, zeros for a classic call, so no stale register reaches them.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd as libc::c_long,
                attr,
                size as libc::c_long,
                common.0,
                common.1 as libc::c_long,
            )
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(r as i32)
        }
    }

    fn close(&mut self, fd: i32) -> Result<(), Errno> {
        // SAFETY: closing a number the scenario names; the child owns every fd past 2.
        if unsafe { libc::close(fd) } < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    fn path(&self, scenario_path: &str) -> String {
        if !scenario_path.starts_with('@') {
            return scenario_path.to_string();
        }
        let (bpffs, tmp) = self.dirs.get_or_init(|| {
            // A scenario that cannot get a bpffs sees its pins fail, and the transcript says so.
            private_bpffs().unwrap_or_else(|e| {
                (
                    format!("/nonexistent-bpffs ({e})"),
                    "/nonexistent-tmp".into(),
                )
            })
        });
        super::map_path(scenario_path, bpffs, tmp)
    }

    /// Keeps the permitted capabilities across the uid change (PR_SET_KEEPCAPS), leaves every
    /// supplementary group, moves to `uid` and the gid of the same number, then makes `keep`
    /// the effective and permitted sets (capset, version 3).
    fn drop_privileges(&mut self, uid: u32, keep: u64) -> Result<(), Errno> {
        #[repr(C)]
        struct CapHeader {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy)]
        struct CapData {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
        let mut hdr = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let half = |shift: u32| CapData {
            effective: (keep >> shift) as u32,
            permitted: (keep >> shift) as u32,
            inheritable: 0,
        };
        let data = [half(0), half(32)];
        // The private bpffs must exist before root is gone: making it needs CAP_SYS_ADMIN.
        let _ = self.path("@bpffs");
        // SAFETY: prctl, setresgid and setresuid take numbers; capset reads the header and two
        // data structs laid out as <linux/capability.h> has them.
        unsafe {
            if libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0
                || libc::setgroups(0, std::ptr::null()) < 0
                || libc::setresgid(uid, uid, uid) < 0
                || libc::setresuid(uid, uid, uid) < 0
                || libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) < 0
            {
                return Err(errno());
            }
        }
        Ok(())
    }

    fn set_cpu(&mut self, cpu: u32) -> Result<(), Errno> {
        if cpu as usize >= libc::CPU_SETSIZE as usize {
            return Err(Errno::EINVAL);
        }
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays inside it (checked above).
        let r = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu as usize, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if r < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        std::fs::create_dir(path).map_err(|e| Errno(e.raw_os_error().unwrap_or(Errno::EIO.0)))
    }

    fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a valid C string.
        if unsafe { libc::unlink(c.as_ptr()) } < 0 {
            Err(errno())
        } else {
            Ok(())
        }
    }

    fn fdinfo(&mut self, fd: i32) -> Result<String, Errno> {
        std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"))
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(Errno::EIO.0)))
    }

    fn open(&mut self, path: &str) -> Result<i32, Errno> {
        let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
        // SAFETY: a valid NUL-terminated path.
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        if fd < 0 {
            Err(errno())
        } else {
            Ok(fd)
        }
    }
}

/// The id of the struct called `name` in a raw BTF blob (the format of
/// /sys/kernel/btf/vmlinux: a header, then the type records, then the strings).
pub fn btf_struct_id(btf: &[u8], name: &str) -> Option<u32> {
    let u32_at =
        |o: usize| -> Option<u32> { Some(u32::from_le_bytes(btf.get(o..o + 4)?.try_into().ok()?)) };
    if btf.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let str_off = u32_at(16)? as usize;
    let types = hdr_len + type_off;
    let strings = hdr_len + str_off;
    let mut p = types;
    let mut id = 1u32;
    while p + 12 <= types + type_len {
        let (name_off, info) = (u32_at(p)? as usize, u32_at(p + 4)?);
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        if kind == 4 {
            let s = btf.get(strings + name_off..)?;
            let end = s.iter().position(|b| *b == 0)?;
            if &s[..end] == name.as_bytes() {
                return Some(id);
            }
        }
        // What follows each kind's 12-byte record (include/uapi/linux/btf.h).
        p += 12
            + match kind {
                1 | 14 | 17 => 4,             // INT, VAR, DECL_TAG
                3 => 12,                      // ARRAY
                4 | 5 | 15 | 19 => 12 * vlen, // STRUCT, UNION, DATASEC, ENUM64
                6 | 13 => 8 * vlen,           // ENUM, FUNC_PROTO
                _ => 0,
            };
        id += 1;
    }
    None
}

/// `num_possible_cpus()` from /sys/devices/system/cpu/possible (`0-1`, `0,2-3`).
pub fn possible_cpus() -> anyhow::Result<u32> {
    let path = "/sys/devices/system/cpu/possible";
    let s = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    parse_cpu_list(s.trim()).with_context(|| format!("parsing {path}: {s:?}"))
}

pub fn parse_cpu_list(s: &str) -> anyhow::Result<u32> {
    syscall_model::profile::parse_cpu_list(s).context("not a CPU list such as 0-3,5")
}

/// The running kernel's release (`uname -r`).
pub fn kernel_release() -> String {
    // SAFETY: uname fills a plain struct.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::from("unknown");
    }
    let bytes: Vec<u8> = u
        .release
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether this process may create a bpf map (root on a kernel with bpf(2)); the reason if not.
pub fn bpf_available() -> Result<(), String> {
    let mut attr = [0u8; 80];
    attr[0..4].copy_from_slice(&2u32.to_le_bytes()); // ARRAY
    attr[4..8].copy_from_slice(&4u32.to_le_bytes());
    attr[8..12].copy_from_slice(&4u32.to_le_bytes());
    attr[12..16].copy_from_slice(&1u32.to_le_bytes());
    // SAFETY: attr is a valid 80-byte buffer for the duration of the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            0 as libc::c_long,
            attr.as_ptr(),
            80 as libc::c_long,
        )
    };
    if fd < 0 {
        return Err(format!(
            "bpf(BPF_MAP_CREATE) on the host fails with {} (need root and a kernel with bpf(2))",
            errno()
        ));
    }
    // SAFETY: fd was just returned by bpf(2).
    unsafe { libc::close(fd as i32) };
    Ok(())
}

/// Runs `f` in a forked child with only fds 0-2 open and returns what it produced.
/// Closes every fd from `first` on (`close_range`).
pub fn close_fds_from(first: u32) {
    // SAFETY: close_range takes plain numbers; closing fds this process owns.
    unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32);
    }
}

pub fn run_isolated(f: impl FnOnce() -> Vec<u8>) -> anyhow::Result<Vec<u8>> {
    const SHARED: usize = 64 << 20;
    // SAFETY: an anonymous shared mapping the child writes its result into.
    let shm = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SHARED,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if shm == libc::MAP_FAILED {
        bail!(
            "mmap of the result area failed: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fork; the child only runs `f` (no locks of other threads are needed: glibc
    // makes malloc usable after fork) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        unsafe { libc::munmap(shm, SHARED) };
        bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: in the child: drop every inherited fd past 2, make sure 0-2 are open.
        unsafe {
            close_fds_from(3);
            for fd in 0..3 {
                if libc::fcntl(fd, libc::F_GETFD) < 0 {
                    libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                }
            }
        }
        let out = f();
        let n = out.len().min(SHARED - 8);
        // SAFETY: the shared area is SHARED bytes long.
        unsafe {
            std::ptr::copy_nonoverlapping((n as u64).to_le_bytes().as_ptr(), shm as *mut u8, 8);
            std::ptr::copy_nonoverlapping(out.as_ptr(), (shm as *mut u8).add(8), n);
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    // A child that gave up root could not remove its scratch directory; its parent can.
    let _ = std::fs::remove_dir_all(scratch_dir(pid as u32));
    let result = if r < 0 {
        Err(anyhow::anyhow!(
            "waitpid failed: {}",
            std::io::Error::last_os_error()
        ))
    } else if libc::WIFSIGNALED(status) {
        Err(anyhow::anyhow!(
            "the scenario child died of signal {}",
            libc::WTERMSIG(status)
        ))
    } else if libc::WEXITSTATUS(status) != 0 {
        Err(anyhow::anyhow!(
            "the scenario child exited with {}",
            libc::WEXITSTATUS(status)
        ))
    } else {
        let mut len = [0u8; 8];
        // SAFETY: the child wrote a length and that many bytes.
        unsafe { std::ptr::copy_nonoverlapping(shm as *const u8, len.as_mut_ptr(), 8) };
        let n = (u64::from_le_bytes(len) as usize).min(SHARED - 8);
        let mut out = vec![0u8; n];
        unsafe { std::ptr::copy_nonoverlapping((shm as *const u8).add(8), out.as_mut_ptr(), n) };
        Ok(out)
    };
    // SAFETY: the mapping made above; the child is gone.
    unsafe { libc::munmap(shm, SHARED) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_every_cpu() {
        assert_eq!(parse_cpu_list("0-1").unwrap(), 2);
        assert_eq!(parse_cpu_list("0").unwrap(), 1);
        assert_eq!(parse_cpu_list("0,2-3").unwrap(), 3);
        assert!(parse_cpu_list("x").is_err());
    }
}
