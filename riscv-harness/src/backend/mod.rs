//! Backends: where a scenario's calls go. The [`model`] backend calls the syscall model with
//! a simulated address space; the [`host`] backend calls the running kernel through
//! `syscall(SYS_bpf, ..)` with real memory. The executor ([`crate::exec`]) drives both the same
//! way, so their transcripts can be compared byte for byte.

pub mod kernel;
pub mod model;

use syscall_model::profile::KernelVersion;
use syscall_model::Errno;

/// An fd number that no scenario ever opens (`never` in a scenario).
pub const NEVER_FD: i32 = 999;

/// The byte user buffers start out with, so that bytes the kernel did not write stand out.
pub const POISON: u8 = 0xa5;

/// What the executor needs from a place that runs bpf(2).
pub trait Backend {
    /// `model` or `kernel`.
    fn name(&self) -> &'static str;
    /// `num_possible_cpus()` of the kernel behind it (per-CPU values have one slot each).
    fn num_possible_cpus(&self) -> u32;
    /// The version of the kernel behind it (the profile's, for the model): picks among
    /// version-qualified expectations.
    fn kernel_version(&self) -> KernelVersion;
    /// A fresh buffer holding `bytes` that ends exactly at a page boundary, followed by an
    /// unmapped page, so any access past its end faults. Read-only unless `writable`.
    fn buffer(&mut self, bytes: &[u8], writable: bool) -> u64;
    /// An address nothing is mapped at (`BAD` in a scenario).
    fn unmapped(&self) -> u64;
    /// The current contents of a buffer made by [`Backend::buffer`].
    fn read(&self, addr: u64, len: usize) -> Vec<u8>;
    /// `bpf(cmd, attr, size, common_attr, common_size)`: the last two are 7.2's common attrs
    /// (`(0, 0)` for the classic three-argument call; older kernels ignore them).
    fn bpf(&mut self, cmd: i32, attr: u64, size: u32, common: (u64, u32)) -> Result<i32, Errno>;
    /// `close(fd)`.
    fn close(&mut self, fd: i32) -> Result<(), Errno>;
    /// The real path of a scenario path: `@bpffs/...` is under this backend's bpf filesystem,
    /// `@tmp/...` under an ordinary directory; anything else is used as written.
    fn path(&self, scenario_path: &str) -> String;
    /// `mkdir(path, 0700)`.
    fn mkdir(&mut self, path: &str) -> Result<(), Errno>;
    /// `unlink(path)`.
    fn unlink(&mut self, path: &str) -> Result<(), Errno>;
    /// The text of `/proc/self/fdinfo/<fd>` (ENOENT if the fd is not open).
    fn fdinfo(&mut self, fd: i32) -> Result<String, Errno>;
    /// `open(path, O_RDONLY)` of a file that is not a bpf object.
    fn open(&mut self, path: &str) -> Result<i32, Errno>;
    /// Run on this one CPU from now on (`sched_setaffinity`). Every scenario starts on CPU 0,
    /// because the LRU maps keep per-CPU lists and a call's CPU decides which one it uses.
    fn set_cpu(&mut self, cpu: u32) -> Result<(), Errno>;
    /// From now on run as `uid` (and its gid) with only the capabilities in the bit set `keep`
    /// (`drop_privileges()` in a scenario). There is no way back: a backend that runs scenarios
    /// in a long-lived process must give such a scenario a process of its own.
    fn drop_privileges(&mut self, uid: u32, keep: u64) -> Result<(), Errno>;
    /// The id of the struct `name` in this kernel's vmlinux BTF (`btf_id(NAME)` in a
    /// scenario), if it has one.
    fn btf_vmlinux_id(&self, name: &str) -> Option<u32>;
    /// The model's steps through the kernel since the last call to this (for a backend that
    /// records them; a kernel cannot).
    fn take_steps(&mut self) -> Vec<syscall_model::trace::Step> {
        Vec::new()
    }
}

/// Maps `@bpffs` and `@tmp` prefixes onto a backend's two directories.
pub fn map_path(scenario_path: &str, bpffs: &str, tmp: &str) -> String {
    if let Some(rest) = scenario_path.strip_prefix("@bpffs") {
        format!("{bpffs}{rest}")
    } else if let Some(rest) = scenario_path.strip_prefix("@tmp") {
        format!("{tmp}{rest}")
    } else {
        scenario_path.to_string()
    }
}
