//! The model backend: a [`syscall_model::Process`] with a simulated address space.

use super::Backend;
use std::sync::{Arc, Mutex};
use syscall_model::profile::KernelVersion;
use syscall_model::trace::{Step, Tracer};
use syscall_model::uaccess::{SimMemory, UserMemory};
use syscall_model::{Cred, Errno, Kernel, KernelProfile, Process};

const PAGE: u64 = 4096;
/// Where the simulated buffers start: well away from NULL, and at no round address. The
/// fuzzer's raw attr bytes are mostly zero, so a stray pointer often has one nonzero byte;
/// buffers at 0x7f00_0000_0000 (where they once started) were one such pointer away, and an
/// OBJ_GET read a path out of them where the kernel, with nothing mapped there, said EFAULT.
pub const BASE: u64 = 0x7f3a_5c40_0000;
/// Never mapped in the simulated space.
const UNMAPPED: u64 = 0x7e00_dead_0000;

pub struct ModelBackend {
    process: Process,
    mem: SimMemory,
    next: u64,
    tracer: Option<Box<dyn Tracer + Send>>,
    /// Where the steps go when the backend records them (see [`ModelBackend::record_steps`]).
    steps: Option<Arc<Mutex<Vec<Step>>>>,
}

/// A tracer that keeps steps where the backend can take them.
struct Shared(Arc<Mutex<Vec<Step>>>);

impl Tracer for Shared {
    fn step(&mut self, step: Step) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(step);
    }
}

impl ModelBackend {
    /// A new kernel for `profile` and one root process in it.
    pub fn new(profile: KernelProfile) -> ModelBackend {
        let kernel = Kernel::new(profile);
        ModelBackend::with_process(kernel.spawn(Cred::root()))
    }

    pub fn with_process(process: Process) -> ModelBackend {
        ModelBackend {
            process,
            mem: SimMemory::new(),
            next: BASE,
            tracer: None,
            steps: None,
        }
    }

    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.process.kernel
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The simulated address space the backend's buffers live in.
    pub fn memory(&self) -> &SimMemory {
        &self.mem
    }

    /// Reports every check of the following calls to `tracer`.
    pub fn set_tracer(&mut self, tracer: Option<Box<dyn Tracer + Send>>) {
        self.tracer = tracer;
        self.steps = None;
    }

    /// Keeps the steps of the following calls for [`Backend::take_steps`].
    pub fn record_steps(&mut self) {
        let steps = Arc::new(Mutex::new(Vec::new()));
        self.tracer = Some(Box::new(Shared(steps.clone())));
        self.steps = Some(steps);
    }
}

impl Backend for ModelBackend {
    fn name(&self) -> &'static str {
        "model"
    }

    fn num_possible_cpus(&self) -> u32 {
        self.process.kernel.profile.num_possible_cpus
    }

    fn kernel_version(&self) -> KernelVersion {
        self.process.kernel.profile.version
    }

    fn buffer(&mut self, bytes: &[u8], writable: bool) -> u64 {
        let pages = (bytes.len() as u64).div_ceil(PAGE).max(1);
        let start = self.next;
        self.mem.map(start, pages * PAGE, writable);
        // The next buffer starts after a guard page.
        self.next = start + (pages + 1) * PAGE;
        let addr = start + pages * PAGE - bytes.len() as u64;
        self.mem.poke(addr, bytes);
        addr
    }

    fn unmapped(&self) -> u64 {
        UNMAPPED
    }

    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        self.mem.peek_or_zero(addr, len)
    }

    fn bpf(&mut self, cmd: i32, attr: u64, size: u32, common: (u64, u32)) -> Result<i32, Errno> {
        let mem: &dyn UserMemory = &self.mem;
        match self.tracer.as_deref_mut() {
            Some(t) => self.process.bpf_traced(cmd, attr, size, common, mem, t),
            None => self.process.bpf_common(cmd, attr, size, common, mem),
        }
    }

    fn close(&mut self, fd: i32) -> Result<(), Errno> {
        self.process.close(fd)
    }

    fn path(&self, scenario_path: &str) -> String {
        super::map_path(scenario_path, syscall_model::inode::BPFFS_ROOT, "/tmp")
    }

    fn take_steps(&mut self) -> Vec<Step> {
        match &self.steps {
            Some(s) => std::mem::take(&mut *s.lock().unwrap_or_else(|e| e.into_inner())),
            None => Vec::new(),
        }
    }

    fn set_cpu(&mut self, cpu: u32) -> Result<(), Errno> {
        self.process.set_cpu(cpu)
    }

    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        self.process.mkdir(path)
    }

    fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        self.process.unlink(path)
    }

    fn fdinfo(&mut self, fd: i32) -> Result<String, Errno> {
        // No /proc/self/fdinfo/<fd> for a closed fd: the open fails ENOENT.
        self.process
            .fdinfo(fd)
            .map_err(|e| if e == Errno::EBADF { Errno::ENOENT } else { e })
    }

    fn open(&mut self, path: &str) -> Result<i32, Errno> {
        self.process.open_other(path)
    }

    fn drop_privileges(&mut self, uid: u32, keep: u64) -> Result<(), Errno> {
        self.process.cred = syscall_model::Cred {
            uid,
            gid: uid,
            caps: keep,
        };
        Ok(())
    }

    fn btf_vmlinux_id(&self, name: &str) -> Option<u32> {
        syscall_model::bpf_struct_ops::btf_vmlinux_type_id(&self.process.kernel.profile, name)
    }
}
