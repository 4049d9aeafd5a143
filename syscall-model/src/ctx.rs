//! The context of one system call: who calls, in which kernel, with which memory, and who
//! listens to the checks.

use crate::errno::Errno;
use crate::kernel::{Cred, Kernel, Process};
use crate::profile::KernelProfile;
use crate::trace::{Step, Tracer, Verdict};
pub use crate::uaccess::UserBytes;
use crate::uaccess::UserMemory;

pub struct Ctx<'a> {
    pub kernel: &'a Kernel,
    pub process: &'a Process,
    pub mem: &'a dyn UserMemory,
    tracer: Option<&'a mut dyn Tracer>,
    /// The file of each function entered so far (when tracing): a check or copy made in a
    /// shared helper on behalf of a function is reported in that function's file.
    entered: Vec<(&'static str, &'static str)>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        kernel: &'a Kernel,
        process: &'a Process,
        mem: &'a dyn UserMemory,
        tracer: Option<&'a mut dyn Tracer>,
    ) -> Ctx<'a> {
        Ctx {
            kernel,
            process,
            mem,
            tracer,
            entered: Vec::new(),
        }
    }

    pub fn profile(&self) -> &'a KernelProfile {
        &self.kernel.profile
    }

    pub fn cred(&self) -> &'a Cred {
        &self.process.cred
    }

    /// Whether a tracer listens; checks format their details only then.
    #[inline]
    pub fn tracing(&self) -> bool {
        self.tracer.is_some()
    }

    #[cold]
    #[inline(never)]
    pub fn record(
        &mut self,
        func: &'static str,
        file: &'static str,
        rule: &'static str,
        verdict: Verdict,
        detail: String,
    ) {
        if let Some(t) = self.tracer.as_deref_mut() {
            if verdict == Verdict::Enter {
                self.entered.push((func, file));
            }
            let file = self
                .entered
                .iter()
                .rev()
                .find(|(f, _)| *f == func)
                .map_or(file, |(_, f)| *f);
            t.step(Step {
                func,
                file,
                rule,
                detail,
                verdict,
            });
        }
    }

    /// Entering a kernel function.
    pub fn enter(
        &mut self,
        func: &'static str,
        file: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        if self.tracing() {
            let d = detail();
            self.record(func, file, "", Verdict::Enter, d);
        }
    }

    /// Something the kernel does that is not a check.
    pub fn note(
        &mut self,
        func: &'static str,
        file: &'static str,
        rule: &'static str,
        detail: impl FnOnce() -> String,
    ) {
        if self.tracing() {
            let d = detail();
            self.record(func, file, rule, Verdict::Note, d);
        }
    }

    /// A failure that does not come from a comparison (a fault, a missing fd): records it
    /// and hands the errno back for `return Err(..)`.
    pub fn fail(
        &mut self,
        func: &'static str,
        file: &'static str,
        rule: &'static str,
        errno: Errno,
        detail: impl FnOnce() -> String,
    ) -> Errno {
        if self.tracing() {
            let d = detail();
            self.record(func, file, rule, Verdict::Fail(errno), d);
        }
        errno
    }

    /// `copy_from_user(dst, src, len)` into a fresh buffer: EFAULT if any byte is unreadable.
    pub fn copy_from_user(
        &mut self,
        func: &'static str,
        what: &'static str,
        addr: u64,
        len: usize,
    ) -> Result<UserBytes, Errno> {
        let mut buf = UserBytes::zeroed(len);
        self.copy_from_user_into(func, what, addr, &mut buf)?;
        Ok(buf)
    }

    /// `copy_from_user(dst, src, len)` into `buf`: EFAULT if any byte is unreadable.
    #[inline]
    pub fn copy_from_user_into(
        &mut self,
        func: &'static str,
        what: &'static str,
        addr: u64,
        buf: &mut [u8],
    ) -> Result<(), Errno> {
        match self.mem.read(addr, buf) {
            Ok(()) => Ok(()),
            Err(f) => Err(
                self.fail(func, "kernel/bpf/syscall.c", what, Errno::EFAULT, || {
                    format!("{} bytes at {addr:#x}: fault at {:#x}", buf.len(), f.addr)
                }),
            ),
        }
    }

    /// `copy_to_user(dst, src, len)`: EFAULT if any byte is unwritable (the bytes before the
    /// fault are written).
    #[inline]
    pub fn copy_to_user(
        &mut self,
        func: &'static str,
        what: &'static str,
        addr: u64,
        data: &[u8],
    ) -> Result<(), Errno> {
        match self.mem.write(addr, data) {
            Ok(()) => Ok(()),
            Err(f) => Err(
                self.fail(func, "kernel/bpf/syscall.c", what, Errno::EFAULT, || {
                    format!("{} bytes to {addr:#x}: fault at {:#x}", data.len(), f.addr)
                }),
            ),
        }
    }
}
