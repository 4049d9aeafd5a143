//! The real system calls and libc functions underneath the ones this library replaces.
//!
//! `syscall()` itself is ours in the process (that is the point), and the Rust runtime inside
//! this library calls it too (futexes), so every number but bpf's goes straight to the kernel
//! with the architecture's trap instruction, as glibc's own `syscall()` does: no lookup, no
//! lock, nothing that could come back here. The other replaced functions (`fopen`, `readlink`,
//! ...) pass through to the next definition, libc's, found once with `dlsym(RTLD_NEXT)`.

use libc::c_long;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The raw trap: the kernel's return value, -errno on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "x86_64")]
pub unsafe fn raw_syscall6(n: c_long, a: [c_long; 6]) -> c_long {
    let ret: c_long;
    std::arch::asm!(
        "syscall",
        inlateout("rax") n => ret,
        in("rdi") a[0], in("rsi") a[1], in("rdx") a[2],
        in("r10") a[3], in("r8") a[4], in("r9") a[5],
        lateout("rcx") _, lateout("r11") _,
        options(nostack)
    );
    ret
}

/// The raw trap: the kernel's return value, -errno on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "riscv64")]
pub unsafe fn raw_syscall6(n: c_long, a: [c_long; 6]) -> c_long {
    let ret: c_long;
    std::arch::asm!(
        "ecall",
        inlateout("a0") a[0] => ret,
        in("a1") a[1], in("a2") a[2], in("a3") a[3], in("a4") a[4], in("a5") a[5],
        in("a7") n,
        options(nostack)
    );
    ret
}

/// The raw trap: the kernel's return value, -errno on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
#[cfg(target_arch = "aarch64")]
pub unsafe fn raw_syscall6(n: c_long, a: [c_long; 6]) -> c_long {
    let ret: c_long;
    std::arch::asm!(
        "svc 0",
        inlateout("x0") a[0] => ret,
        in("x1") a[1], in("x2") a[2], in("x3") a[3], in("x4") a[4], in("x5") a[5],
        in("x8") n,
        options(nostack)
    );
    ret
}

/// `errno = e`.
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location() is the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// glibc's `syscall()` contract on top of the trap: -1 and errno on failure.
///
/// # Safety
/// The arguments must be valid for system call `n`.
pub unsafe fn syscall_errno(n: c_long, a: [c_long; 6]) -> c_long {
    let ret = raw_syscall6(n, a);
    if (-4095..0).contains(&ret) {
        set_errno(-ret as i32);
        -1
    } else {
        ret
    }
}

/// A libc function found with `dlsym(RTLD_NEXT, name)` on first use.
pub struct Next {
    name: &'static [u8],
    addr: AtomicUsize,
}

impl Next {
    /// `name` ends in a NUL byte.
    pub const fn new(name: &'static [u8]) -> Next {
        Next {
            name,
            addr: AtomicUsize::new(0),
        }
    }

    /// The address of the next definition, 0 if there is none.
    pub fn get(&self) -> usize {
        let a = self.addr.load(Ordering::Relaxed);
        if a != 0 {
            return a;
        }
        // SAFETY: `name` is NUL-terminated; dlsym only reads it.
        let a = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr().cast()) } as usize;
        self.addr.store(a, Ordering::Relaxed);
        a
    }
}

/// Calls the next definition of a libc function as the given function type, or fails with
/// ENOSYS (and `$fail`) when there is none.
macro_rules! call_next {
    ($next:expr, $ty:ty, $fail:expr, $($arg:expr),*) => {{
        let a = $next.get();
        if a == 0 {
            $crate::raw::set_errno(libc::ENOSYS);
            $fail
        } else {
            // SAFETY: dlsym found libc's definition of this very symbol, whose C type is $ty.
            let f: $ty = unsafe { std::mem::transmute::<usize, $ty>(a) };
            unsafe { f($($arg),*) }
        }
    }};
}
pub(crate) use call_next;
