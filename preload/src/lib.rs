//! `libbpfmodel_preload.so`: run an unmodified program's bpf(2) map calls against the model.
//!
//! ```text
//! LD_PRELOAD=target/release/libbpfmodel_preload.so bpftool map create /sys/fs/bpf/m \
//!     type hash key 4 value 8 entries 16 name m
//! ```
//!
//! What it replaces, and why each (libbpf and bpftool reach the kernel through these; see
//! docs/preload.md for the traces this list comes from):
//! - `syscall(__NR_bpf, ...)`: every bpf(2) call goes to the model server ([`server`]), with
//!   the program's memory and fds behind it; every other syscall number goes to the kernel
//!   untouched.
//! - `fopen`, `fopen64`, `open`, `open64`, `openat`, `openat64` of `/proc/self/fdinfo/N` for a
//!   model fd: the model's fdinfo text (bpftool reads `memlock` and `frozen` there).
//! - `readlink`, `readlinkat` of `/proc/self/fd/N` for a model fd: `anon_inode:bpf-map`
//!   (bpftool checks the type of a pinned object that way).
//! - `statfs`, `statfs64` in the model's bpffs: BPF_FS_MAGIC (bpftool checks a pin's directory
//!   is a bpffs, and mounts one otherwise).
//! - `unlink`, `unlinkat`, `remove`, `mkdir`, `mkdirat` in the model's bpffs: the model's
//!   namespace (removing a pin, making a directory for pins).
//!
//! Programs that make the bpf system call without libc's `syscall()` (an inline `syscall`
//! instruction, a static binary, Go) cannot be reached by LD_PRELOAD.

mod client;
mod config;
mod proto;
mod raw;
mod server;

use libc::{c_char, c_int, c_long, c_uint, mode_t, size_t, ssize_t, FILE};
use raw::{call_next, set_errno, Next};
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set in the server process (forked from a program): there every call passes through.
pub(crate) static IN_SERVER: AtomicBool = AtomicBool::new(false);

/// Whether a replaced function acts for the model: not in the server, and not while the
/// library itself calls it (making its directory, opening its lock and log).
fn active() -> bool {
    !IN_SERVER.load(Ordering::Relaxed) && !client::in_library()
}

/// Runs `f`, turning a panic (a bug here) into a failed call with EIO rather than unwinding
/// into C.
fn guard<R>(fail: R, f: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        set_errno(libc::EIO);
        fail
    })
}

/// `syscall(number, ...)`. Declared with six fixed `long` arguments: on x86_64, riscv64 and
/// aarch64 Linux the variadic integer arguments of a call arrive in exactly those registers.
///
/// # Safety
/// As for libc's `syscall`: the arguments must be valid for the system call.
#[no_mangle]
pub unsafe extern "C" fn syscall(
    n: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    if n != libc::SYS_bpf || IN_SERVER.load(Ordering::Relaxed) {
        return raw::syscall_errno(n, [a1, a2, a3, a4, a5, a6]);
    }
    guard(-1, || {
        // The cmd and size are C ints: only their low 32 bits are defined.
        let r = client::bpf(a1 as i32, a2 as u64, a3 as u32, a4 as u64, a5 as u32);
        if r < 0 {
            set_errno(-r as i32);
            -1
        } else {
            r as c_long
        }
    })
}

fn c_path<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: callers pass a NUL-terminated path (the C contract of the replaced function).
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// The fd of `/proc/self/<dir>/N` (also `/proc/thread-self/...` and `/proc/<our pid>/...`).
fn proc_fd(path: &str, dir: &str) -> Option<c_int> {
    let rest = path.strip_prefix("/proc/")?;
    let (who, rest) = rest.split_once('/')?;
    // SAFETY: getpid cannot fail.
    let me = who == "self" || who == "thread-self" || who.parse() == Ok(unsafe { libc::getpid() });
    let n = rest.strip_prefix(dir)?.strip_prefix('/')?;
    (me && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

/// A model fd's fdinfo as a readable fd (a memfd holding the text), if `path` names one.
fn fdinfo_memfd(path: *const c_char) -> Option<c_int> {
    if !active() {
        return None;
    }
    let fd = proc_fd(c_path(path)?, "fdinfo")?;
    let text = client::fd_text(fd, false)?;
    // SAFETY: a new memfd, written and rewound.
    unsafe {
        let m = libc::memfd_create(c"bpfmodel-fdinfo".as_ptr(), libc::MFD_CLOEXEC);
        if m < 0 {
            return None;
        }
        let b = text.as_bytes();
        let mut off = 0;
        while off < b.len() {
            let n = libc::write(m, b[off..].as_ptr().cast(), b.len() - off);
            if n <= 0 {
                libc::close(m);
                return None;
            }
            off += n as usize;
        }
        libc::lseek(m, 0, libc::SEEK_SET);
        Some(m)
    }
}

static NEXT_FOPEN: Next = Next::new(b"fopen\0");
static NEXT_FOPEN64: Next = Next::new(b"fopen64\0");
static NEXT_OPEN: Next = Next::new(b"open\0");
static NEXT_OPEN64: Next = Next::new(b"open64\0");
static NEXT_OPENAT: Next = Next::new(b"openat\0");
static NEXT_OPENAT64: Next = Next::new(b"openat64\0");
static NEXT_READLINK: Next = Next::new(b"readlink\0");
static NEXT_READLINKAT: Next = Next::new(b"readlinkat\0");
static NEXT_STATFS: Next = Next::new(b"statfs\0");
static NEXT_STATFS64: Next = Next::new(b"statfs64\0");
static NEXT_UNLINK: Next = Next::new(b"unlink\0");
static NEXT_UNLINKAT: Next = Next::new(b"unlinkat\0");
static NEXT_REMOVE: Next = Next::new(b"remove\0");
static NEXT_MKDIR: Next = Next::new(b"mkdir\0");
static NEXT_MKDIRAT: Next = Next::new(b"mkdirat\0");

type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int;

fn fopen_impl(next: &Next, path: *const c_char, mode: *const c_char) -> *mut FILE {
    if let Some(m) = guard(None, || fdinfo_memfd(path)) {
        // Close-on-exec only with fopen's "e", as for the file fopen would have opened.
        let cloexec = c_path(mode).is_some_and(|m| m.contains('e'));
        if !cloexec {
            // SAFETY: clears FD_CLOEXEC on our memfd.
            unsafe { libc::fcntl(m, libc::F_SETFD, 0) };
        }
        // SAFETY: fdopen takes over the memfd.
        let f = unsafe { libc::fdopen(m, mode) };
        if f.is_null() {
            // SAFETY: ours.
            unsafe { libc::close(m) };
        }
        return f;
    }
    call_next!(next, FopenFn, std::ptr::null_mut(), path, mode)
}

/// The memfd as open() would return it: close-on-exec only if asked for.
fn open_result(m: c_int, flags: c_int) -> c_int {
    if flags & libc::O_CLOEXEC == 0 {
        // SAFETY: clears FD_CLOEXEC on our memfd.
        unsafe { libc::fcntl(m, libc::F_SETFD, 0) };
    }
    m
}

/// # Safety
/// libc's `fopen`.
#[no_mangle]
pub unsafe extern "C" fn fopen(path: *const c_char, mode: *const c_char) -> *mut FILE {
    fopen_impl(&NEXT_FOPEN, path, mode)
}

/// # Safety
/// libc's `fopen64`.
#[no_mangle]
pub unsafe extern "C" fn fopen64(path: *const c_char, mode: *const c_char) -> *mut FILE {
    fopen_impl(&NEXT_FOPEN64, path, mode)
}

/// # Safety
/// libc's `open` (the mode is read only with O_CREAT or O_TMPFILE, as libc's is).
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    match guard(None, || fdinfo_memfd(path)) {
        Some(m) => open_result(m, flags),
        None => call_next!(NEXT_OPEN, OpenFn, -1, path, flags, mode),
    }
}

/// # Safety
/// libc's `open64`.
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    match guard(None, || fdinfo_memfd(path)) {
        Some(m) => open_result(m, flags),
        None => call_next!(NEXT_OPEN64, OpenFn, -1, path, flags, mode),
    }
}

/// # Safety
/// libc's `openat`.
#[no_mangle]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    match guard(None, || fdinfo_memfd(path)) {
        Some(m) => open_result(m, flags),
        None => call_next!(NEXT_OPENAT, OpenatFn, -1, dirfd, path, flags, mode),
    }
}

/// # Safety
/// libc's `openat64`.
#[no_mangle]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    match guard(None, || fdinfo_memfd(path)) {
        Some(m) => open_result(m, flags),
        None => call_next!(NEXT_OPENAT64, OpenatFn, -1, dirfd, path, flags, mode),
    }
}

/// What readlink of `path` says if it is the /proc link of a model fd.
fn model_fd_link(path: *const c_char) -> Option<String> {
    if !active() {
        return None;
    }
    let fd = proc_fd(c_path(path)?, "fd")?;
    client::fd_text(fd, true)
}

/// readlink's answer from `link`: truncated to the buffer, no NUL.
fn copy_link(link: &str, buf: *mut c_char, size: size_t) -> ssize_t {
    let n = link.len().min(size);
    // SAFETY: the caller's buffer holds `size` bytes.
    unsafe { std::ptr::copy_nonoverlapping(link.as_ptr(), buf.cast(), n) };
    n as ssize_t
}

/// # Safety
/// libc's `readlink`.
#[no_mangle]
pub unsafe extern "C" fn readlink(path: *const c_char, buf: *mut c_char, size: size_t) -> ssize_t {
    if let Some(link) = guard(None, || model_fd_link(path)) {
        return copy_link(&link, buf, size);
    }
    type F = unsafe extern "C" fn(*const c_char, *mut c_char, size_t) -> ssize_t;
    call_next!(NEXT_READLINK, F, -1, path, buf, size)
}

/// # Safety
/// libc's `readlinkat`.
#[no_mangle]
pub unsafe extern "C" fn readlinkat(
    dirfd: c_int,
    path: *const c_char,
    buf: *mut c_char,
    size: size_t,
) -> ssize_t {
    if let Some(link) = guard(None, || model_fd_link(path)) {
        return copy_link(&link, buf, size);
    }
    type F = unsafe extern "C" fn(c_int, *const c_char, *mut c_char, size_t) -> ssize_t;
    call_next!(NEXT_READLINKAT, F, -1, dirfd, path, buf, size)
}

/// The model path `path` names (relative to the cwd or `dirfd`'s directory), if it is in the
/// model's bpffs.
fn bpffs_path(dirfd: c_int, path: *const c_char) -> Option<String> {
    if !active() {
        return None;
    }
    let path = c_path(path)?;
    let base = if path.starts_with('/') {
        "/".to_string()
    } else if dirfd == libc::AT_FDCWD {
        std::env::current_dir().ok()?.to_string_lossy().into_owned()
    } else {
        client::real_readlink(&format!("/proc/self/fd/{dirfd}"))?
    };
    let p = syscall_model::inode::normalize(&base, path);
    client::config().in_bpffs(&p).then_some(p)
}

/// `BPF_FS_MAGIC`, what statfs() says of a bpf filesystem.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// statfs in the model's bpffs: `Some(true)` for a bpffs path, `Some(false)` to fail with errno
/// set, `None` to ask the real file system.
fn model_statfs(path: *const c_char) -> Option<bool> {
    let p = bpffs_path(libc::AT_FDCWD, path)?;
    match client::path_op(proto::Msg::Statfs { path: p }) {
        Ok(1) => Some(true),
        Ok(_) => None,
        Err(e) => {
            set_errno(e);
            Some(false)
        }
    }
}

macro_rules! fill_statfs {
    ($buf:expr) => {{
        // SAFETY: the caller's struct; zeroed, then the fields a bpffs reports.
        let b = unsafe { &mut *$buf };
        *b = unsafe { std::mem::zeroed() };
        b.f_type = BPF_FS_MAGIC as _;
        b.f_bsize = 4096;
        b.f_frsize = 4096;
        b.f_namelen = 255;
        0
    }};
}

/// # Safety
/// libc's `statfs`.
#[no_mangle]
pub unsafe extern "C" fn statfs(path: *const c_char, buf: *mut libc::statfs) -> c_int {
    match guard(None, || model_statfs(path)) {
        Some(true) => fill_statfs!(buf),
        Some(false) => -1,
        None => {
            type F = unsafe extern "C" fn(*const c_char, *mut libc::statfs) -> c_int;
            call_next!(NEXT_STATFS, F, -1, path, buf)
        }
    }
}

/// # Safety
/// libc's `statfs64`.
#[no_mangle]
pub unsafe extern "C" fn statfs64(path: *const c_char, buf: *mut libc::statfs64) -> c_int {
    match guard(None, || model_statfs(path)) {
        Some(true) => fill_statfs!(buf),
        Some(false) => -1,
        None => {
            type F = unsafe extern "C" fn(*const c_char, *mut libc::statfs64) -> c_int;
            call_next!(NEXT_STATFS64, F, -1, path, buf)
        }
    }
}

/// A path operation in the model's bpffs, as libc returns it; `None` for other paths.
fn model_path_op(dirfd: c_int, path: *const c_char, mkdir: bool) -> Option<c_int> {
    let p = bpffs_path(dirfd, path)?;
    let req = if mkdir {
        proto::Msg::Mkdir { path: p }
    } else {
        proto::Msg::Unlink { path: p }
    };
    Some(match client::path_op(req) {
        Ok(_) => 0,
        Err(e) => {
            set_errno(e);
            -1
        }
    })
}

/// # Safety
/// libc's `unlink`.
#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    match guard(None, || model_path_op(libc::AT_FDCWD, path, false)) {
        Some(r) => r,
        None => {
            type F = unsafe extern "C" fn(*const c_char) -> c_int;
            call_next!(NEXT_UNLINK, F, -1, path)
        }
    }
}

/// # Safety
/// libc's `unlinkat`. Removing a directory (AT_REMOVEDIR) is left to the real file system.
#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let model = if flags & libc::AT_REMOVEDIR == 0 {
        guard(None, || model_path_op(dirfd, path, false))
    } else {
        None
    };
    match model {
        Some(r) => r,
        None => {
            type F = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
            call_next!(NEXT_UNLINKAT, F, -1, dirfd, path, flags)
        }
    }
}

/// # Safety
/// libc's `remove`.
#[no_mangle]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    match guard(None, || model_path_op(libc::AT_FDCWD, path, false)) {
        Some(r) => r,
        None => {
            type F = unsafe extern "C" fn(*const c_char) -> c_int;
            call_next!(NEXT_REMOVE, F, -1, path)
        }
    }
}

/// # Safety
/// libc's `mkdir`.
#[no_mangle]
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: mode_t) -> c_int {
    match guard(None, || model_path_op(libc::AT_FDCWD, path, true)) {
        Some(r) => r,
        None => {
            type F = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
            call_next!(NEXT_MKDIR, F, -1, path, mode)
        }
    }
}

/// # Safety
/// libc's `mkdirat`.
#[no_mangle]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    match guard(None, || model_path_op(dirfd, path, true)) {
        Some(r) => r,
        None => {
            type F = unsafe extern "C" fn(c_int, *const c_char, mode_t) -> c_int;
            call_next!(NEXT_MKDIRAT, F, -1, dirfd, path, mode)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fd_paths_name_our_own_fds_only() {
        assert_eq!(proc_fd("/proc/self/fdinfo/3", "fdinfo"), Some(3));
        assert_eq!(proc_fd("/proc/thread-self/fd/12", "fd"), Some(12));
        let me = format!("/proc/{}/fdinfo/4", std::process::id());
        assert_eq!(proc_fd(&me, "fdinfo"), Some(4));
        assert_eq!(proc_fd("/proc/1/fdinfo/4", "fdinfo"), None);
        assert_eq!(proc_fd("/proc/self/fdinfo/", "fdinfo"), None);
        assert_eq!(proc_fd("/proc/self/fdinfo/3x", "fdinfo"), None);
        assert_eq!(proc_fd("/proc/self/fd/3", "fdinfo"), None);
        assert_eq!(proc_fd("/etc/passwd", "fd"), None);
    }
}
