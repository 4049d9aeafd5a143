//! The modelled machine: one [`Kernel`] (global bpf state: the map idr, the profile, the
//! network devices offload would look at) shared by any number of [`Process`]es (credentials
//! and an fd table). Both are `Send + Sync`; any number of threads may call into them at once.

use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::fd::{FMode, FdHost, FdTable, File, FileKind};
use crate::map::MapIdr;
use crate::profile::KernelProfile;
use crate::trace::Tracer;
use crate::uaccess::UserMemory;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Capability numbers (include/uapi/linux/capability.h).
pub mod cap {
    pub const CAP_NET_ADMIN: u32 = 12;
    pub const CAP_SYS_ADMIN: u32 = 21;
    pub const CAP_PERFMON: u32 = 38;
    pub const CAP_BPF: u32 = 39;
    pub const CAP_DAC_OVERRIDE: u32 = 1;
    pub const CAP_DAC_READ_SEARCH: u32 = 2;
    pub const CAP_FOWNER: u32 = 3;
}

/// The caller's credentials: its (fs)uid and (fs)gid, and its effective capabilities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cred {
    pub uid: u32,
    pub gid: u32,
    pub caps: u64,
}

impl Cred {
    /// uid 0 with every capability.
    pub fn root() -> Cred {
        Cred {
            uid: 0,
            gid: 0,
            caps: u64::MAX,
        }
    }

    /// An ordinary user (in the group of the same number) without capabilities.
    pub fn user(uid: u32) -> Cred {
        Cred {
            uid,
            gid: uid,
            caps: 0,
        }
    }

    /// `capable(cap)`.
    pub fn capable(&self, cap: u32) -> bool {
        cap < 64 && self.caps & (1 << cap) != 0
    }

    /// `bpf_capable()`: CAP_BPF or CAP_SYS_ADMIN.
    pub fn bpf_capable(&self) -> bool {
        self.capable(cap::CAP_BPF) || self.capable(cap::CAP_SYS_ADMIN)
    }

    /// `perfmon_capable()`: CAP_PERFMON or CAP_SYS_ADMIN.
    pub fn perfmon_capable(&self) -> bool {
        self.capable(cap::CAP_PERFMON) || self.capable(cap::CAP_SYS_ADMIN)
    }
}

/// A network device as `__dev_get_by_index` finds it (map offload looks them up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDev {
    pub ifindex: u32,
    pub name: String,
    /// Whether the driver has `ndo_bpf` (lo does not).
    pub has_ndo_bpf: bool,
}

/// The global state of the modelled kernel.
pub struct Kernel {
    pub profile: KernelProfile,
    pub(crate) map_idr: Arc<Mutex<MapIdr>>,
    /// The devices of the caller's network namespace: just `lo` on a fresh machine.
    pub netdevs: Vec<NetDev>,
    /// Source of `get_random_u32()` for hash seeds; deterministic so runs repeat.
    random: AtomicU64,
    /// The file namespace pins live in (one bpffs at /sys/fs/bpf).
    vfs: Mutex<crate::inode::Vfs>,
}

impl Kernel {
    pub fn new(profile: KernelProfile) -> Arc<Kernel> {
        Arc::new(Kernel {
            profile,
            map_idr: Arc::new(Mutex::new(MapIdr::default())),
            netdevs: vec![NetDev {
                ifindex: 1,
                name: "lo".into(),
                has_ndo_bpf: false,
            }],
            random: AtomicU64::new(0x9e37_79b9_7f4a_7c15),
            vfs: Mutex::new(crate::inode::Vfs::default()),
        })
    }

    /// `get_random_u32()`: a splitmix64 stream, so a model run is repeatable.
    pub fn get_random_u32(&self) -> u32 {
        let mut z = self
            .random
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) as u32
    }

    /// `dev_get_by_index(net, ifindex)`: the device of the caller's network namespace with this
    /// index. Loopback (ifindex 1) exists in every namespace; the model has no other device.
    pub fn dev_get_by_index(&self, ifindex: u32) -> Option<&NetDev> {
        self.netdevs.iter().find(|d| d.ifindex == ifindex)
    }

    pub fn vfs(&self) -> MutexGuard<'_, crate::inode::Vfs> {
        self.vfs.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn map_idr(&self) -> MutexGuard<'_, MapIdr> {
        self.map_idr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new process of this kernel with fds 0-2 open.
    pub fn spawn(self: &Arc<Kernel>, cred: Cred) -> Process {
        self.spawn_with(cred, FdTable::with_std_streams(self.profile.rlimit_nofile))
    }

    /// A process that lives outside the model (the LD_PRELOAD server's client): its fd numbers
    /// are its real ones, looked up and handed out through `host`.
    pub fn spawn_hosted(self: &Arc<Kernel>, cred: Cred, host: Arc<dyn FdHost>) -> Process {
        self.spawn_with(cred, FdTable::hosted(host))
    }

    fn spawn_with(self: &Arc<Kernel>, cred: Cred, fds: FdTable) -> Process {
        Process {
            kernel: self.clone(),
            cred,
            fds: Mutex::new(fds),
            cpu: AtomicU32::new(0),
            cwd: Mutex::new("/".to_string()),
        }
    }

    /// Mounts another bpffs at `path` (`mount -t bpf bpf PATH`), making the directories on the
    /// way as root's 0755 ones. A path that is already a directory becomes the mount's root.
    pub fn mount_bpffs(&self, path: &str) {
        self.vfs().mount_bpffs(&crate::inode::normalize("/", path));
    }
}

/// A process calling bpf(2): credentials and an fd table.
pub struct Process {
    pub kernel: Arc<Kernel>,
    pub cred: Cred,
    fds: Mutex<FdTable>,
    /// The CPU the process runs on (`raw_smp_processor_id()` in its syscalls): the LRU maps
    /// take nodes from that CPU's lists.
    cpu: AtomicU32,
    /// The working directory relative pathnames start from (AT_FDCWD).
    cwd: Mutex<String>,
}

impl Process {
    /// `sched_setaffinity()` to one CPU: EINVAL past the possible CPUs.
    pub fn set_cpu(&self, cpu: u32) -> Result<(), Errno> {
        if cpu >= self.kernel.profile.num_possible_cpus {
            return Err(Errno::EINVAL);
        }
        self.cpu.store(cpu, Ordering::Relaxed);
        Ok(())
    }

    /// The CPU the process runs on.
    pub fn cpu(&self) -> u32 {
        self.cpu.load(Ordering::Relaxed)
    }

    /// `chdir(path)`, without checks: the caller's real working directory, for a process that
    /// lives outside the model.
    pub fn set_cwd(&self, path: &str) {
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = crate::inode::normalize("/", path);
    }

    /// The working directory (`/` unless set).
    pub fn cwd(&self) -> String {
        self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `bpf(cmd, attr, size)`: the syscall. `Ok` is the return value (0 or a new fd).
    pub fn bpf(&self, cmd: i32, uattr: u64, size: u32, mem: &dyn UserMemory) -> Result<i32, Errno> {
        let mut ctx = Ctx::new(&self.kernel, self, mem, None);
        crate::syscall::sys_bpf(&mut ctx, cmd, uattr, size, (0, 0))
    }

    /// The five-argument form of 7.2: `bpf(cmd, attr, size, common_attr, common_size)`.
    pub fn bpf_common(
        &self,
        cmd: i32,
        uattr: u64,
        size: u32,
        common: (u64, u32),
        mem: &dyn UserMemory,
    ) -> Result<i32, Errno> {
        let mut ctx = Ctx::new(&self.kernel, self, mem, None);
        crate::syscall::sys_bpf(&mut ctx, cmd, uattr, size, common)
    }

    /// The same call with every check reported to `tracer`.
    pub fn bpf_traced(
        &self,
        cmd: i32,
        uattr: u64,
        size: u32,
        common: (u64, u32),
        mem: &dyn UserMemory,
        tracer: &mut dyn Tracer,
    ) -> Result<i32, Errno> {
        let mut ctx = Ctx::new(&self.kernel, self, mem, Some(tracer));
        crate::syscall::sys_bpf(&mut ctx, cmd, uattr, size, common)
    }

    pub fn fds(&self) -> MutexGuard<'_, FdTable> {
        self.fds.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `close(fd)`. The last reference to a map frees it.
    pub fn close(&self, fd: i32) -> Result<(), Errno> {
        let file = self.fds().close(fd)?;
        drop(file);
        Ok(())
    }

    /// The text of `/proc/self/fdinfo/<fd>` for a map fd (`bpf_map_show_fdinfo`); EBADF if the
    /// fd is not open, EINVAL if it is not a map (the model only renders maps).
    pub fn fdinfo(&self, fd: i32) -> Result<String, Errno> {
        let file = self.fds().get(fd as u32).ok_or(Errno::EBADF)?;
        let map = file.map().cloned().ok_or(Errno::EINVAL)?;
        Ok(crate::syscall::obj::bpf_map_show_fdinfo(
            &map,
            &file,
            &self.kernel.profile,
        ))
    }

    /// `open(path, O_RDONLY)` of a file that is not a bpf object (/dev/null, a directory):
    /// ENOENT if the namespace has no such path.
    pub fn open_other(&self, path: &str) -> Result<i32, Errno> {
        let path = crate::inode::normalize("/", path);
        let vfs = self.kernel.vfs();
        let inode = vfs.lookup(&self.cred, &path).map_err(|e| e.errno)?;
        crate::inode::generic_permission(&self.cred, inode, crate::inode::MAY_READ)?;
        let kind = match inode.node {
            crate::inode::Node::Dir { .. } => FileKind::Dir { path },
            _ => FileKind::Other { path },
        };
        drop(vfs);
        self.fds().install(File {
            kind,
            f_mode: FMode::RDONLY,
        })
    }

    /// `mkdir(path)` in the model's namespace.
    pub fn mkdir(&self, path: &str) -> Result<(), Errno> {
        self.kernel
            .vfs()
            .mkdir(&self.cred, &crate::inode::normalize("/", path))
            .map_err(|e| e.errno)
    }

    /// `unlink(path)` in the model's namespace.
    pub fn unlink(&self, path: &str) -> Result<(), Errno> {
        self.kernel
            .vfs()
            .unlink(&self.cred, &crate::inode::normalize("/", path))
            .map_err(|e| e.errno)
    }
}
