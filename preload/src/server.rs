//! The model server: one process per BPFMODEL_DIR holding the modelled kernel, so that every
//! process of the user sees the same maps, ids and pins, as they would share one kernel.
//!
//! Why a server and not shared memory: the model's state is ordinary Rust data (hash maps,
//! Arcs, trees) that cannot live in a shared mapping without rewriting every map type for
//! position-independent storage and cross-process locks; and the kernel semantics we need
//! across processes (an object lives while any fd or pin holds it, fds survive fork and die at
//! exec or exit) fall out of real fds if a process holds them. The first call of any program
//! starts the server (forked from that program, detached, with every inherited fd closed), and
//! it exits when no client, fd or pin is left, or when its socket is removed.
//!
//! Fds: for every fd the model hands out, the server makes a socketpair, keeps one end and
//! passes the other to the client over SCM_RIGHTS, where it lands at the lowest free number
//! with O_CLOEXEC as a bpf fd would. The client's fd numbers are therefore real: dup(), fork,
//! exec and close() act on them, and when the last copy closes, the server's end reports a
//! hang-up and the server drops its reference to the map, as the kernel's release would. The
//! server identifies a client fd by the inode number of the socket behind it.

use crate::config::Config;
use crate::proto::{self, FdWhat, Msg};
use std::collections::HashMap;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use syscall_model::errno::Errno;
use syscall_model::fd::{FMode, FdHost, File, FileKind};
use syscall_model::kernel::{Cred, Kernel, Process};
use syscall_model::profile::{Arch, KernelProfile, KernelVersion};
use syscall_model::uaccess::{Fault, UserMemory};
use syscall_model::uapi::BpfCmd;

/// What readlink(/proc/self/fd/N) shows for the program fds the server answers probes with.
pub const PROG_LINK: &str = "anon_inode:bpf-prog";
/// ... and for a map fd.
pub const MAP_LINK: &str = "anon_inode:bpf-map";

/// One placeholder fd the server handed out: its end of the pair and the model file.
struct Placeholder {
    _ours: OwnedFd,
    file: Arc<File>,
}

struct Server {
    kernel: Arc<Kernel>,
    cfg: Config,
    /// Placeholders by the inode number of the client's end.
    registry: Mutex<HashMap<u64, Placeholder>>,
    /// Watches the server's ends for the hang-up of the last client copy.
    epoll: OwnedFd,
    conns: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl Server {
    /// Drops the placeholders whose every client copy is closed. The model objects are
    /// released after the registry lock is let go (a map's release takes the idr lock, which
    /// a call in progress may hold while it looks up an fd here).
    fn reap(&self) {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: the buffer has room for 64 events.
            let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), events.as_mut_ptr(), 64, 0) };
            if n <= 0 {
                return;
            }
            let gone: Vec<Placeholder> = {
                let mut reg = lock(&self.registry);
                events[..n as usize]
                    .iter()
                    .filter_map(|e| reg.remove(&{ e.u64 }))
                    .collect()
            };
            drop(gone);
        }
    }

    /// Registers a new placeholder for `file`; the client's end to send.
    fn new_placeholder(&self, file: Arc<File>) -> io::Result<OwnedFd> {
        let mut sv = [0; 2];
        // SAFETY: socketpair fills two fds.
        cvt(unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        })?;
        let (ours, theirs) = (proto::own(sv[0]), proto::own(sv[1]));
        let (ino, _) = proto::fd_ino(theirs.as_raw_fd()).ok_or_else(io::Error::last_os_error)?;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLRDHUP | libc::EPOLLHUP) as u32,
            u64: ino,
        };
        // SAFETY: both fds are open.
        cvt(unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                ours.as_raw_fd(),
                &mut ev,
            )
        })?;
        lock(&self.registry).insert(ino, Placeholder { _ours: ours, file });
        Ok(theirs)
    }

    fn idle(&self) -> bool {
        self.conns.load(Ordering::SeqCst) == 0
            && lock(&self.registry).is_empty()
            && !self.kernel.vfs().has_pins()
    }
}

/// One client connection: the socket the server asks its questions on.
struct Peer {
    sock: OwnedFd,
    broken: AtomicBool,
}

impl Peer {
    /// Asks the client something and waits for the answer; `None` once the client is gone or
    /// has broken the protocol (the call in progress then fails, and the connection closes).
    fn ask(&self, m: &Msg, fd: Option<RawFd>) -> Option<Msg> {
        if self.broken.load(Ordering::Relaxed) {
            return None;
        }
        let r = proto::send(self.sock.as_raw_fd(), m, fd)
            .and_then(|()| proto::recv(self.sock.as_raw_fd()));
        match r {
            Ok((m, _)) => Some(m),
            Err(_) => {
                self.broken.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    fn protocol_error(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

impl UserMemory for Peer {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        for (i, piece) in buf.chunks_mut(proto::CHUNK).enumerate() {
            let a = addr.wrapping_add((i * proto::CHUNK) as u64);
            match self.ask(
                &Msg::Read {
                    addr: a,
                    len: piece.len() as u32,
                },
                None,
            ) {
                Some(Msg::Data { data }) if data.len() == piece.len() => {
                    piece.copy_from_slice(&data)
                }
                Some(Msg::Fault { addr }) => return Err(Fault { addr }),
                Some(_) => {
                    self.protocol_error();
                    return Err(Fault { addr: a });
                }
                None => return Err(Fault { addr: a }),
            }
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        for (i, piece) in data.chunks(proto::CHUNK).enumerate() {
            let a = addr.wrapping_add((i * proto::CHUNK) as u64);
            let m = Msg::Write {
                addr: a,
                data: piece.to_vec(),
            };
            match self.ask(&m, None) {
                Some(Msg::Wrote) => {}
                Some(Msg::Fault { addr }) => return Err(Fault { addr }),
                Some(_) => {
                    self.protocol_error();
                    return Err(Fault { addr: a });
                }
                None => return Err(Fault { addr: a }),
            }
        }
        Ok(())
    }
}

/// The fd numbers of one client process, as the model's `fdget()` and `fd_install()` see them.
struct ClientFds {
    peer: Arc<Peer>,
    srv: Arc<Server>,
}

impl FdHost for ClientFds {
    fn get(&self, ufd: u32) -> Option<Arc<File>> {
        let what = match self.peer.ask(&Msg::Resolve { fd: ufd }, None)? {
            Msg::FdIs { what } => what,
            _ => {
                self.peer.protocol_error();
                return None;
            }
        };
        let other = |path: String| {
            Some(Arc::new(File {
                kind: FileKind::Other { path },
                f_mode: FMode::RDWR,
            }))
        };
        match what {
            FdWhat::Closed => None,
            FdWhat::Socket(ino) => match lock(&self.srv.registry).get(&ino) {
                Some(p) => Some(p.file.clone()),
                None => other(format!("socket:[{ino}]")),
            },
            FdWhat::Dir(path) => Some(Arc::new(File {
                kind: FileKind::Dir { path },
                f_mode: FMode::RDONLY,
            })),
            FdWhat::Other(path) => other(path),
        }
    }

    fn install(&self, file: Arc<File>) -> Result<i32, Errno> {
        let theirs = self
            .srv
            .new_placeholder(file)
            .map_err(|e| Errno(e.raw_os_error().unwrap_or(libc::ENFILE)))?;
        // The client's end travels in the message; ours of it closes when `theirs` drops.
        match self.peer.ask(&Msg::Install, Some(theirs.as_raw_fd())) {
            Some(Msg::Installed { fd }) if fd >= 0 => Ok(fd),
            Some(Msg::Installed { fd }) => Err(Errno(-fd)),
            Some(_) => {
                self.peer.protocol_error();
                Err(Errno::EBADF)
            }
            None => Err(Errno::EBADF),
        }
    }
}

/// The probe programs libbpf 1.x and bpftool load before they create maps, as
/// (instructions, what the probe tells its caller): a SOCKET_FILTER of two instructions under
/// the GPL. The server answers exactly these with a program fd that can only be closed, and
/// every other BPF_PROG_LOAD with EINVAL (the model has no verifier).
const PROBES: [[u8; 16]; 2] = [
    // r0 = 0; exit: libbpf's probe_kern_prog_name (map names are kept) and bpftool's memlock
    // probe (no RLIMIT_MEMLOCK bump needed).
    [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0],
    // call bpf_ktime_get_coarse_ns (160); exit: libbpf's probe_memcg_account (memory is
    // charged to the memory cgroup, so libbpf leaves RLIMIT_MEMLOCK alone).
    [0x85, 0, 0, 0, 160, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0],
];

/// Whether the BPF_PROG_LOAD attr at `attr` is one of the [`PROBES`].
fn is_probe(mem: &dyn UserMemory, attr: u64, size: u32) -> bool {
    if size < 24 {
        return false;
    }
    let mut head = [0u8; 24];
    if mem.read(attr, &mut head).is_err() {
        return false;
    }
    let u32_at = |o: usize| u32::from_le_bytes(head[o..o + 4].try_into().unwrap_or_default());
    let u64_at = |o: usize| u64::from_le_bytes(head[o..o + 8].try_into().unwrap_or_default());
    let (prog_type, insn_cnt, insns, license) = (u32_at(0), u32_at(4), u64_at(8), u64_at(16));
    if prog_type != 1 || insn_cnt != 2 {
        return false;
    }
    let mut code = [0u8; 16];
    let mut gpl = [0u8; 4];
    mem.read(insns, &mut code).is_ok()
        && mem.read(license, &mut gpl).is_ok()
        && &gpl == b"GPL\0"
        && PROBES.contains(&code)
}

fn done(r: Result<i32, Errno>) -> Msg {
    Msg::Done {
        ret: match r {
            Ok(v) => v as i64,
            Err(e) => -(e.0 as i64),
        },
        unmodelled: false,
    }
}

/// One request of a client.
fn answer(srv: &Server, process: &Process, peer: &Peer, req: Msg) -> Option<Msg> {
    Some(match req {
        Msg::Call {
            cmd,
            attr,
            size,
            common,
            common_size,
            cwd,
        } => {
            if !cwd.is_empty() {
                process.set_cwd(&cwd);
            }
            match process.bpf_common(cmd, attr, size, (common, common_size), peer) {
                // A command the model does not implement: the probes libbpf and bpftool make,
                // or what a kernel without the command would answer.
                Err(Errno::ENOSYS) => {
                    if cmd == BpfCmd::PROG_LOAD.0 as i32 && is_probe(peer, attr, size) {
                        done(process.fds().install(File {
                            kind: FileKind::Other {
                                path: PROG_LINK.into(),
                            },
                            f_mode: FMode::RDWR,
                        }))
                    } else {
                        Msg::Done {
                            ret: -(libc::EINVAL as i64),
                            unmodelled: true,
                        }
                    }
                }
                r => done(r),
            }
        }
        Msg::FdInfo { fd } => match process.fdinfo(fd) {
            Ok(text) => Msg::Text { ret: 0, text },
            Err(e) => Msg::Text {
                ret: -(e.0 as i64),
                text: String::new(),
            },
        },
        Msg::FdLink { fd } => {
            let file = process.fds().get(fd as u32);
            match file.as_ref().map(|f| &f.kind) {
                Some(FileKind::BpfMap(_)) => Msg::Text {
                    ret: 0,
                    text: MAP_LINK.into(),
                },
                Some(FileKind::Other { path }) if path == PROG_LINK => Msg::Text {
                    ret: 0,
                    text: path.clone(),
                },
                _ => Msg::Text {
                    ret: -(libc::EINVAL as i64),
                    text: String::new(),
                },
            }
        }
        Msg::Unlink { path } => done(process.unlink(&path).map(|()| 0)),
        Msg::Mkdir { path } => done(process.mkdir(&path).map(|()| 0)),
        Msg::Statfs { path } => {
            let vfs = srv.kernel.vfs();
            let path = syscall_model::inode::normalize("/", &path);
            let r = match vfs.get(&path) {
                None => Err(Errno::ENOENT),
                Some(syscall_model::inode::Node::Map(_)) => Ok(1),
                Some(_) => Ok(vfs.is_bpffs_dir(&path) as i32),
            };
            done(r)
        }
        _ => {
            peer.protocol_error();
            return None;
        }
    })
}

/// Counts a connection out when its thread ends, however it ends.
struct ConnCount(Arc<Server>);

impl Drop for ConnCount {
    fn drop(&mut self) {
        self.0.conns.fetch_sub(1, Ordering::SeqCst);
    }
}

fn handle(srv: Arc<Server>, sock: OwnedFd) {
    let _count = ConnCount(srv.clone());
    let peer = Arc::new(Peer {
        sock,
        broken: AtomicBool::new(false),
    });
    let fd = peer.sock.as_raw_fd();
    let mut cred = Cred::root();
    if srv.cfg.creds_caller {
        if let Some(uc) = proto::peer_cred(fd) {
            cred = Cred::user(uc.uid);
            cred.gid = uc.gid;
        }
    }
    let host = Arc::new(ClientFds {
        peer: peer.clone(),
        srv: srv.clone(),
    });
    let process = srv.kernel.spawn_hosted(cred, host);
    if proto::send(
        fd,
        &Msg::Hello {
            version: proto::VERSION,
        },
        None,
    )
    .is_ok()
    {
        while let Ok((req, _)) = proto::recv(fd) {
            srv.reap();
            // A panic in the model ends this connection (the client's call fails), not the
            // server, and is logged.
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                answer(&srv, &process, &peer, req)
            }));
            let Ok(Some(reply)) = reply else {
                let _ = writeln!(
                    io::stderr(),
                    "bpfmodel server: a request failed; connection closed"
                );
                break;
            };
            if peer.broken.load(Ordering::Relaxed) || proto::send(fd, &reply, None).is_err() {
                break;
            }
        }
    }
    drop(process);
}

/// The kernel profile the server models: BPFMODEL_PROFILE, or the running kernel's.
fn profile(cfg: &Config) -> Result<KernelProfile, String> {
    let arch = Arch::native().ok_or("the model knows x86_64 and riscv64 only")?;
    let ncpus = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| syscall_model::profile::parse_cpu_list(&s))
        .unwrap_or(1)
        .max(1);
    let release = match &cfg.profile {
        Some(p) => p.clone(),
        None => {
            // SAFETY: uname fills a plain struct.
            let mut u: libc::utsname = unsafe { std::mem::zeroed() };
            unsafe { libc::uname(&mut u) };
            // SAFETY: the kernel NUL-terminates the release.
            unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let v = KernelVersion::parse_release(&release).ok_or_else(|| {
        format!("BPFMODEL_PROFILE {release:?} is not a kernel version such as 6.12")
    })?;
    if cfg.profile.is_some() {
        return KernelProfile::for_version(v, arch, ncpus)
            .ok_or_else(|| format!("the model has no profile for Linux {v}"));
    }
    Ok(KernelProfile::nearest(v, arch, ncpus).0)
}

/// Starts the server for `cfg` in the background: binds the socket here (so a client can
/// connect as soon as this returns), then forks twice; the grandchild, detached from the
/// program's session, with every inherited fd closed and stdio on the log, serves until idle.
/// The caller holds the directory's lock.
pub fn spawn(cfg: &Config) -> io::Result<()> {
    let path = cfg.socket();
    let _ = std::fs::remove_file(&path);
    let cpath = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: plain socket calls on fds this function owns.
    let listener = proto::own(cvt(unsafe {
        libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0)
    })?);
    let addr = sockaddr_un(&cpath)?;
    cvt(unsafe {
        libc::bind(
            listener.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    })?;
    cvt(unsafe { libc::listen(listener.as_raw_fd(), 128) })?;
    // The socket file's own inode: while the path names it, this server is the directory's.
    let sock_ino = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&path)?.ino()
    };
    let log = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(cfg.log())?
    };
    // SAFETY: fork; the child only forks again and exits, the grandchild never returns.
    let pid = cvt(unsafe { libc::fork() })?;
    if pid == 0 {
        // SAFETY: setsid and fork in the child, _exit to leave without running the program's
        // atexit handlers or flushing its stdio buffers a second time.
        unsafe {
            libc::setsid();
            if libc::fork() == 0 {
                daemon_main(
                    listener.into_raw_fd(),
                    log.into_raw_fd(),
                    sock_ino,
                    cfg.clone(),
                );
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    // SAFETY: reaps the short-lived child; ECHILD (SIGCHLD ignored) is fine.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(())
}

pub fn sockaddr_un(path: &std::ffi::CStr) -> io::Result<libc::sockaddr_un> {
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.to_bytes();
    if b.len() >= addr.sun_path.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the socket path {path:?} is longer than a unix socket path may be"),
        ));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(addr)
}

/// Closes every fd except `keep` (sorted): close_range(2) where the kernel has it (5.9 on),
/// else one close(2) per number up to the fd limit.
///
/// # Safety
/// Closes fds the process may be using; for a freshly forked daemon only.
unsafe fn close_all_but(keep: &[RawFd]) {
    let mut from: libc::c_long = 0;
    let mut ranges = Vec::new();
    for &k in keep {
        if k as libc::c_long > from {
            ranges.push((from, k as libc::c_long - 1));
        }
        from = k as libc::c_long + 1;
    }
    ranges.push((from, libc::c_long::from(u32::MAX)));
    for (lo, hi) in ranges {
        let r = crate::raw::raw_syscall6(libc::SYS_close_range, [lo, hi, 0, 0, 0, 0]);
        if r != 0 {
            let mut rl: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
                rl.rlim_cur.min(1 << 20) as libc::c_long
            } else {
                1024
            };
            for fd in lo..=hi.min(max) {
                libc::close(fd as RawFd);
            }
        }
    }
}

/// The grandchild: tidy the process up, then serve.
fn daemon_main(listener: RawFd, log: RawFd, sock_ino: u64, cfg: Config) -> ! {
    // SAFETY: fd and signal housekeeping of a process that owns nothing else yet.
    let listener = unsafe {
        // The listener and the log move above the standard streams (a program run with its
        // stdio closed may have put them there), then everything else the program had open
        // goes: a pipe its parent waits on must not stay open here, nor the lock it holds.
        let listener = libc::fcntl(listener, libc::F_DUPFD_CLOEXEC, 3);
        let log = libc::fcntl(log, libc::F_DUPFD_CLOEXEC, 3);
        if listener < 0 || log < 0 {
            libc::_exit(1);
        }
        let mut keep = [listener, log];
        keep.sort();
        close_all_but(&keep);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        libc::dup2(null, 0);
        libc::dup2(null, 1);
        libc::dup2(log, 2);
        if null > 2 {
            libc::close(null);
        }
        libc::close(log);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        libc::chdir(c"/".as_ptr());
        libc::prctl(libc::PR_SET_NAME, c"bpfmodel-srv".as_ptr());
        // Room for a placeholder per fd of every client.
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
        listener
    };
    crate::IN_SERVER.store(true, Ordering::SeqCst);
    let code = match serve(proto::own(listener), sock_ino, cfg) {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(io::stderr(), "bpfmodel server: {e}");
            1
        }
    };
    // SAFETY: leave without the program's atexit handlers.
    unsafe { libc::_exit(code) }
}

fn serve(listener: OwnedFd, sock_ino: u64, cfg: Config) -> Result<(), String> {
    let profile = profile(&cfg)?;
    let kernel = Kernel::new(profile);
    kernel.mount_bpffs(&cfg.bpffs);
    let _ = writeln!(
        io::stderr(),
        "bpfmodel server {}: modelling {}, bpffs at {}",
        std::process::id(),
        kernel.profile.label(),
        cfg.bpffs
    );
    // SAFETY: epoll_create1 returns a new fd.
    let epoll = proto::own(
        cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(|e| e.to_string())?,
    );
    let srv = Arc::new(Server {
        kernel,
        cfg: cfg.clone(),
        registry: Mutex::new(HashMap::new()),
        epoll,
        conns: AtomicUsize::new(0),
    });
    let mut idle_since: Option<Instant> = None;
    let idle_for = Duration::from_millis(cfg.idle_ms);
    loop {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 200) };
        if n > 0 {
            if accept_one(&srv, &listener) {
                idle_since = None;
                continue;
            }
            // accept failed (out of fds, a broken listener): pause instead of spinning, and
            // let the checks below run.
            std::thread::sleep(Duration::from_millis(50));
        }
        srv.reap();
        // The directory went away (a test cleaning up): nobody can reach this server again.
        let on_disk = std::fs::metadata(cfg.socket()).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        });
        if on_disk != Some(sock_ino) {
            let _ = writeln!(
                io::stderr(),
                "bpfmodel server {}: {} is gone, exiting",
                std::process::id(),
                cfg.socket().display()
            );
            return Ok(());
        }
        if !srv.idle() {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < idle_for {
            continue;
        }
        // Idle: leave under the lock, unless a client slipped in meanwhile.
        let Ok(_lock) = cfg.lock() else {
            return Ok(());
        };
        // SAFETY: as above.
        let pending = unsafe { libc::poll(&mut pfd, 1, 0) } > 0;
        if pending || !srv.idle() {
            idle_since = None;
            continue;
        }
        let _ = std::fs::remove_file(cfg.socket());
        let _ = writeln!(
            io::stderr(),
            "bpfmodel server {}: idle, exiting",
            std::process::id()
        );
        return Ok(());
    }
}

/// Accepts one client and gives it a thread; false if accept itself failed.
fn accept_one(srv: &Arc<Server>, listener: &OwnedFd) -> bool {
    // SAFETY: accept4 on our listener.
    let c = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            libc::SOCK_CLOEXEC,
        )
    };
    if c < 0 {
        return false;
    }
    let sock = proto::own(c);
    srv.conns.fetch_add(1, Ordering::SeqCst);
    let srv2 = srv.clone();
    if std::thread::Builder::new()
        .name("bpfmodel-conn".into())
        .spawn(move || handle(srv2, sock))
        .is_err()
    {
        srv.conns.fetch_sub(1, Ordering::SeqCst);
    }
    true
}
