//! The program's side: a connection to the server per thread, the exchange loop that answers
//! the server's questions from this process's memory and fds, and the server's start on first
//! use.

use crate::config::{Config, Trace};
use crate::proto::{self, FdWhat, Msg};
use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::sync::OnceLock;
use syscall_model::uaccess::{ProcessMemory, UserMemory};

pub fn config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(Config::from_env)
}

/// A live connection: the fd (moved high, out of the program's way), the inode of the socket
/// behind it (to notice the program closing or reusing the number) and the process it
/// belongs to (a forked child must not talk on its parent's connection).
struct Conn {
    fd: RawFd,
    ino: u64,
    pid: i32,
}

impl Conn {
    fn valid(&self) -> bool {
        // SAFETY: getpid cannot fail.
        self.pid == unsafe { libc::getpid() } && proto::fd_ino(self.fd) == Some((self.ino, true))
    }
}

impl Drop for Conn {
    /// Lets go of the connection (the thread exits, the call failed, a forked child finds
    /// its parent's): closed if the number is still our socket, forgotten if the program has
    /// closed it or put something else there.
    fn drop(&mut self) {
        if proto::fd_ino(self.fd) == Some((self.ino, true)) {
            // SAFETY: the fd is our socket (checked above).
            unsafe { libc::close(self.fd) };
        }
    }
}

thread_local! {
    /// Set while the library itself works (making its directory, opening its lock): its own
    /// calls to the functions it replaces must pass through, not come back to it.
    static IN_LIBRARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside the library's own work.
pub fn in_library() -> bool {
    IN_LIBRARY.try_with(|b| b.get()).unwrap_or(false)
}

/// Runs `f` with the library's replacements passing through.
fn as_library<R>(f: impl FnOnce() -> R) -> R {
    let was = IN_LIBRARY.try_with(|b| b.replace(true)).unwrap_or(false);
    let r = f();
    let _ = IN_LIBRARY.try_with(|b| b.set(was));
    r
}

thread_local! {
    static CONN: RefCell<Option<Conn>> = const { RefCell::new(None) };
}

/// The lowest number the connection may take: high, so the program's fds number as they would
/// without the library, but within a default fd limit.
fn high_fd_base() -> RawFd {
    // SAFETY: getrlimit fills a plain struct.
    let mut rl: libc::rlimit = unsafe { std::mem::zeroed() };
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur.min(1024) as RawFd
    } else {
        1024
    };
    (soft - 32).max(3)
}

/// What a connection attempt found.
enum Attempt {
    Connected(Conn),
    /// No server: no socket file, or nobody listening on it. Another may be started.
    Absent,
    /// A server closed the connection without a hello: it is leaving (it decides that under
    /// the directory's lock, and unlinks its socket before it lets go).
    Leaving,
    /// A server that did not answer properly (shutting down, overloaded). Starting another
    /// would unlink its socket and lose its maps, so the call fails instead.
    Unanswered(io::Error),
}

fn connect_once(cfg: &Config) -> io::Result<Attempt> {
    let cpath = std::ffi::CString::new(cfg.socket().as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let addr = crate::server::sockaddr_un(&cpath)?;
    // SAFETY: socket calls on fds this function owns.
    let s = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if s < 0 {
        return Err(io::Error::last_os_error());
    }
    let s = proto::own(s);
    let r = unsafe {
        libc::connect(
            s.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = io::Error::last_os_error();
        return Ok(match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ECONNREFUSED) => Attempt::Absent,
            _ => Attempt::Unanswered(e),
        });
    }
    // The server must be the caller's own (or root's): its questions write our memory.
    let peer = proto::peer_cred(s.as_raw_fd());
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !peer.is_some_and(|uc| uc.uid == euid || uc.uid == 0) {
        return Err(io::Error::other(format!(
            "the server at {} belongs to uid {}, not to this user ({euid})",
            cfg.socket().display(),
            peer.map_or("unknown".to_string(), |uc| uc.uid.to_string())
        )));
    }
    // A server that is shutting down closes without a hello; then start another.
    let tv = libc::timeval {
        tv_sec: 10,
        tv_usec: 0,
    };
    let set_timeout = |tv: &libc::timeval| unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    set_timeout(&tv);
    match proto::recv(s.as_raw_fd()) {
        Ok((Msg::Hello { version }, _)) if version == proto::VERSION => {}
        Ok((Msg::Hello { version }, _)) => {
            return Err(io::Error::other(format!(
                "the server at {} speaks protocol {version}, this library {}",
                cfg.socket().display(),
                proto::VERSION
            )))
        }
        Ok(_) => {
            return Ok(Attempt::Unanswered(io::Error::other(
                "the server sent no hello",
            )))
        }
        Err(e)
            if e.kind() == io::ErrorKind::UnexpectedEof
                || e.raw_os_error() == Some(libc::ECONNRESET) =>
        {
            return Ok(Attempt::Leaving)
        }
        Err(e) => return Ok(Attempt::Unanswered(e)),
    }
    set_timeout(&libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    });
    // SAFETY: F_DUPFD_CLOEXEC on our socket.
    let high = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_DUPFD_CLOEXEC, high_fd_base()) };
    let fd = if high >= 0 { high } else { s.into_raw_fd() };
    let (ino, _) = proto::fd_ino(fd).ok_or_else(io::Error::last_os_error)?;
    // SAFETY: getpid cannot fail.
    Ok(Attempt::Connected(Conn {
        fd,
        ino,
        pid: unsafe { libc::getpid() },
    }))
}

/// BPFMODEL_DIR must be the caller's own and closed to others (like ~/.ssh): whoever could
/// put a socket there could answer for the model and write this process's memory.
fn check_dir(cfg: &Config) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(&cfg.dir)?;
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if !m.is_dir() || m.uid() != euid || m.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "BPFMODEL_DIR {} must be a directory of uid {euid} that only it can write \
             (it is uid {}, mode {:o}{})",
            cfg.dir.display(),
            m.uid(),
            m.mode() & 0o7777,
            if m.is_dir() { "" } else { ", not a directory" }
        )));
    }
    Ok(())
}

/// Connects to the server of BPFMODEL_DIR, starting it if none is there.
fn connect(cfg: &Config) -> io::Result<Conn> {
    as_library(|| {
        match std::fs::create_dir(&cfg.dir) {
            Ok(()) => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&cfg.dir, std::fs::Permissions::from_mode(0o700))?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot make BPFMODEL_DIR {}: {e}", cfg.dir.display()),
                ))
            }
        }
        check_dir(cfg)?;
        for _ in 0..4 {
            match connect_once(cfg)? {
                Attempt::Connected(c) => return Ok(c),
                Attempt::Unanswered(e) => return Err(e),
                // A leaving server is gone once we hold the lock it leaves under.
                Attempt::Absent | Attempt::Leaving => {}
            }
            let lock = cfg.lock()?;
            match connect_once(cfg)? {
                Attempt::Connected(c) => return Ok(c),
                Attempt::Unanswered(e) => return Err(e),
                Attempt::Leaving => {
                    return Err(io::Error::other(
                        "the server closed the connection without a hello",
                    ))
                }
                // Under the lock no server is starting or leaving: none is there.
                Attempt::Absent => crate::server::spawn(cfg)?,
            }
            drop(lock);
        }
        Err(io::Error::other(format!(
            "no model server answers at {}",
            cfg.socket().display()
        )))
    })
}

/// Runs `f` on this thread's connection, connecting first if needed. A connection that fails
/// is dropped, so the next call starts afresh.
fn with_conn<R>(f: impl Fn(RawFd) -> io::Result<R>) -> io::Result<R> {
    let one_off = |f: &dyn Fn(RawFd) -> io::Result<R>| {
        let c = connect(config())?;
        f(c.fd)
    };
    let r = CONN.try_with(|slot| {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            // A bpf() call from a signal handler interrupting one of ours.
            return one_off(&f);
        };
        // A connection of another process (inherited over fork) or one the program closed
        // is dropped (closed if it is still our socket).
        if slot.as_ref().is_some_and(|c| !c.valid()) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(connect(config())?);
        }
        let fd = slot.as_ref().map(|c| c.fd).unwrap_or(-1);
        let r = f(fd);
        if r.is_err() {
            *slot = None;
        }
        r
    });
    // The thread is exiting (its locals are gone): use a connection of the moment.
    r.unwrap_or_else(|_| one_off(&f))
}

/// What fd `fd` is, for the server's `Resolve`.
fn describe_fd(fd: u32) -> FdWhat {
    let Ok(fd) = RawFd::try_from(fd) else {
        return FdWhat::Closed;
    };
    // SAFETY: fstat fills a plain struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return FdWhat::Closed;
    }
    let link = real_readlink(&format!("/proc/self/fd/{fd}")).unwrap_or_default();
    match st.st_mode & libc::S_IFMT {
        libc::S_IFSOCK => FdWhat::Socket(st.st_ino),
        libc::S_IFDIR => FdWhat::Dir(link),
        _ => FdWhat::Other(link),
    }
}

/// readlink(2) itself, not the library's.
pub fn real_readlink(path: &str) -> Option<String> {
    let c = std::ffi::CString::new(path).ok()?;
    let mut buf = [0u8; 4096];
    // SAFETY: readlinkat writes at most buf.len() bytes.
    let n = unsafe {
        crate::raw::raw_syscall6(
            libc::SYS_readlinkat,
            [
                libc::AT_FDCWD as libc::c_long,
                c.as_ptr() as libc::c_long,
                buf.as_mut_ptr() as libc::c_long,
                buf.len() as libc::c_long,
                0,
                0,
            ],
        )
    };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

/// Sends a request and answers the server's questions until the exchange ends.
fn exchange(req: &Msg) -> io::Result<Msg> {
    with_conn(|sock| {
        proto::send(sock, req, None)?;
        loop {
            let (m, fd) = proto::recv(sock)?;
            let reply = match m {
                Msg::Done { .. } | Msg::Text { .. } => return Ok(m),
                Msg::Read { addr, len } if len as usize <= proto::CHUNK => {
                    let mut buf = vec![0u8; len as usize];
                    match ProcessMemory.read(addr, &mut buf) {
                        Ok(()) => Msg::Data { data: buf },
                        Err(f) => Msg::Fault { addr: f.addr },
                    }
                }
                Msg::Write { addr, data } => match ProcessMemory.write(addr, &data) {
                    Ok(()) => Msg::Wrote,
                    Err(f) => Msg::Fault { addr: f.addr },
                },
                Msg::Resolve { fd } => Msg::FdIs {
                    what: describe_fd(fd),
                },
                Msg::Install => Msg::Installed {
                    fd: match fd {
                        Some(Ok(f)) => f.into_raw_fd(),
                        Some(Err(e)) => -e.raw_os_error().unwrap_or(libc::EMFILE),
                        None => -libc::EBADF,
                    },
                },
                other => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected message from the model server: {other:?}"),
                    ))
                }
            };
            proto::send(sock, &reply, None)?;
        }
    })
}

/// Reports a failure to reach the server, once per process.
fn report(e: &io::Error) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        stderr_line(&format!(
            "bpfmodel-preload: cannot use the model server ({}): {e}; see {}\n",
            config().socket().display(),
            config().log().display()
        ))
    });
}

/// One line on stderr in one write(2), so lines of concurrent processes do not interleave.
fn stderr_line(line: &str) {
    // SAFETY: writes our buffer to fd 2.
    unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
}

/// The error every call gets when the server cannot be reached: EIO, which bpf(2) itself
/// never returns, so it cannot pass for a kernel answer.
const NO_SERVER: i32 = libc::EIO;

/// `bpf(cmd, attr, size[, common, common_size])` for the program: the return value, or -errno.
pub fn bpf(cmd: i32, attr: u64, size: u32, common: u64, common_size: u32) -> i64 {
    const OBJ_PIN: i32 = 6;
    const OBJ_GET: i32 = 7;
    let cwd = if cmd == OBJ_PIN || cmd == OBJ_GET {
        std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let req = Msg::Call {
        cmd,
        attr,
        size,
        common,
        common_size,
        cwd,
    };
    let (ret, unmodelled) = match exchange(&req) {
        Ok(Msg::Done { ret, unmodelled }) => (ret, unmodelled),
        Ok(_) => (-(NO_SERVER as i64), false),
        Err(e) => {
            report(&e);
            (-(NO_SERVER as i64), false)
        }
    };
    let trace = config().trace;
    if (unmodelled && trace != Trace::Off) || trace == Trace::All {
        let name = syscall_model::uapi::BpfCmd(cmd as u32).full_name();
        let result = if ret >= 0 {
            ret.to_string()
        } else {
            let e = syscall_model::errno::Errno(-ret as i32);
            format!("-1 {}", e.name().unwrap_or("E?"))
        };
        let note = if unmodelled {
            " (not modelled: answered as a kernel without the command)"
        } else {
            ""
        };
        stderr_line(&format!(
            "bpfmodel: bpf({name}, size {size}) = {result}{note}\n"
        ));
    }
    ret
}

/// A text the server has about one of our fds (fdinfo, the fd link), if it is a model fd.
/// Only sockets can be placeholders, so no other fd costs a round trip (or starts a server).
pub fn fd_text(fd: RawFd, link: bool) -> Option<String> {
    if !matches!(proto::fd_ino(fd), Some((_, true))) {
        return None;
    }
    let req = if link {
        Msg::FdLink { fd }
    } else {
        Msg::FdInfo { fd }
    };
    match exchange(&req) {
        Ok(Msg::Text { ret: 0, text }) => Some(text),
        _ => None,
    }
}

/// A path operation on the model's bpffs: `Ok(ret)` or `Err(errno)`.
pub fn path_op(req: Msg) -> Result<i64, i32> {
    match exchange(&req) {
        Ok(Msg::Done { ret, .. }) if ret >= 0 => Ok(ret),
        Ok(Msg::Done { ret, .. }) => Err(-ret as i32),
        Ok(_) => Err(NO_SERVER),
        Err(e) => {
            report(&e);
            Err(NO_SERVER)
        }
    }
}
