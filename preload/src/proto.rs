//! The conversation between a program (the client, this library inside it) and the model
//! server, one SOCK_SEQPACKET message per step.
//!
//! The client opens an exchange with a request (a bpf(2) call, an fdinfo read, ...). While
//! the model works on it, the server asks the client for what only the client has: its memory
//! (`Read`, `Write`: the model's copy_from_user and copy_to_user, in the model's order, so
//! faults land where the kernel's would), its fds (`Resolve`: what is behind fd N) and new fds
//! (`Install`, carrying a placeholder over SCM_RIGHTS). The exchange ends with `Done` or
//! `Text`. Messages are a tag byte and little-endian fields; strings and byte strings carry a
//! u32 length.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The largest piece of memory one `Read` or `Write` carries; longer copies take several.
pub const CHUNK: usize = 32 * 1024;
/// Room for the largest message: a chunk and its header.
const MAX_MSG: usize = CHUNK + 64;

/// What a process's fd is, as the client sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdWhat {
    /// Not open.
    Closed,
    /// A socket: maybe one of the server's placeholders; its inode number says which.
    Socket(u64),
    /// A directory, by path (a `path_fd` for pinning).
    Dir(String),
    /// Anything else (a file, a pipe, a tty), by its /proc/self/fd link.
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    // Requests, client to server.
    /// Hello from the server when it accepts a connection (server to client).
    Hello {
        version: u32,
    },
    /// `bpf(cmd, attr, size[, common, common_size])`; `cwd` for relative pathnames.
    Call {
        cmd: i32,
        attr: u64,
        size: u32,
        common: u64,
        common_size: u32,
        cwd: String,
    },
    /// The text of /proc/self/fdinfo/FD for a model fd.
    FdInfo {
        fd: i32,
    },
    /// What readlink(/proc/self/fd/FD) says for a model fd.
    FdLink {
        fd: i32,
    },
    /// unlink(PATH) in the model's bpffs.
    Unlink {
        path: String,
    },
    /// mkdir(PATH) in the model's bpffs.
    Mkdir {
        path: String,
    },
    /// Whether PATH is in the model's bpffs (statfs).
    Statfs {
        path: String,
    },

    // The server's questions during an exchange.
    Read {
        addr: u64,
        len: u32,
    },
    Write {
        addr: u64,
        data: Vec<u8>,
    },
    Resolve {
        fd: u32,
    },
    /// A new fd for the client: the placeholder travels as SCM_RIGHTS.
    Install,

    // The client's answers.
    Data {
        data: Vec<u8>,
    },
    Fault {
        addr: u64,
    },
    Wrote,
    FdIs {
        what: FdWhat,
    },
    /// The number the placeholder got, or -errno if it could not be received.
    Installed {
        fd: i32,
    },

    // The end of an exchange.
    /// The call's return value, or -errno; `unmodelled` when the model does not implement the
    /// command and the errno is the one a kernel without it would give.
    Done {
        ret: i64,
        unmodelled: bool,
    },
    /// A text answer, or -errno in `ret`.
    Text {
        ret: i64,
        text: String,
    },
}

pub const VERSION: u32 = 1;

struct Enc(Vec<u8>);

impl Enc {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
}

struct Dec<'a>(&'a [u8]);

fn short() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "truncated bpfmodel message")
}

impl Dec<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(short());
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| short())?,
        ))
    }
    fn u64(&mut self) -> io::Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| short())?,
        ))
    }
    fn bytes(&mut self) -> io::Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> io::Result<String> {
        String::from_utf8(self.bytes()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a string is not UTF-8"))
    }
}

impl Msg {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc(Vec::with_capacity(32));
        match self {
            Msg::Hello { version } => {
                e.u8(0);
                e.u32(*version);
            }
            Msg::Call {
                cmd,
                attr,
                size,
                common,
                common_size,
                cwd,
            } => {
                e.u8(1);
                e.u32(*cmd as u32);
                e.u64(*attr);
                e.u32(*size);
                e.u64(*common);
                e.u32(*common_size);
                e.bytes(cwd.as_bytes());
            }
            Msg::FdInfo { fd } => {
                e.u8(2);
                e.u32(*fd as u32);
            }
            Msg::FdLink { fd } => {
                e.u8(3);
                e.u32(*fd as u32);
            }
            Msg::Unlink { path } => {
                e.u8(4);
                e.bytes(path.as_bytes());
            }
            Msg::Mkdir { path } => {
                e.u8(5);
                e.bytes(path.as_bytes());
            }
            Msg::Statfs { path } => {
                e.u8(6);
                e.bytes(path.as_bytes());
            }
            Msg::Read { addr, len } => {
                e.u8(10);
                e.u64(*addr);
                e.u32(*len);
            }
            Msg::Write { addr, data } => {
                e.u8(11);
                e.u64(*addr);
                e.bytes(data);
            }
            Msg::Resolve { fd } => {
                e.u8(12);
                e.u32(*fd);
            }
            Msg::Install => e.u8(13),
            Msg::Data { data } => {
                e.u8(20);
                e.bytes(data);
            }
            Msg::Fault { addr } => {
                e.u8(21);
                e.u64(*addr);
            }
            Msg::Wrote => e.u8(22),
            Msg::FdIs { what } => {
                e.u8(23);
                match what {
                    FdWhat::Closed => e.u8(0),
                    FdWhat::Socket(ino) => {
                        e.u8(1);
                        e.u64(*ino);
                    }
                    FdWhat::Dir(p) => {
                        e.u8(2);
                        e.bytes(p.as_bytes());
                    }
                    FdWhat::Other(p) => {
                        e.u8(3);
                        e.bytes(p.as_bytes());
                    }
                }
            }
            Msg::Installed { fd } => {
                e.u8(24);
                e.u32(*fd as u32);
            }
            Msg::Done { ret, unmodelled } => {
                e.u8(30);
                e.u64(*ret as u64);
                e.u8(*unmodelled as u8);
            }
            Msg::Text { ret, text } => {
                e.u8(31);
                e.u64(*ret as u64);
                e.bytes(text.as_bytes());
            }
        }
        e.0
    }

    pub fn decode(b: &[u8]) -> io::Result<Msg> {
        let mut d = Dec(b);
        let m = match d.u8()? {
            0 => Msg::Hello { version: d.u32()? },
            1 => Msg::Call {
                cmd: d.u32()? as i32,
                attr: d.u64()?,
                size: d.u32()?,
                common: d.u64()?,
                common_size: d.u32()?,
                cwd: d.string()?,
            },
            2 => Msg::FdInfo {
                fd: d.u32()? as i32,
            },
            3 => Msg::FdLink {
                fd: d.u32()? as i32,
            },
            4 => Msg::Unlink { path: d.string()? },
            5 => Msg::Mkdir { path: d.string()? },
            6 => Msg::Statfs { path: d.string()? },
            10 => Msg::Read {
                addr: d.u64()?,
                len: d.u32()?,
            },
            11 => Msg::Write {
                addr: d.u64()?,
                data: d.bytes()?,
            },
            12 => Msg::Resolve { fd: d.u32()? },
            13 => Msg::Install,
            20 => Msg::Data { data: d.bytes()? },
            21 => Msg::Fault { addr: d.u64()? },
            22 => Msg::Wrote,
            23 => Msg::FdIs {
                what: match d.u8()? {
                    0 => FdWhat::Closed,
                    1 => FdWhat::Socket(d.u64()?),
                    2 => FdWhat::Dir(d.string()?),
                    3 => FdWhat::Other(d.string()?),
                    k => return Err(bad(k)),
                },
            },
            24 => Msg::Installed {
                fd: d.u32()? as i32,
            },
            30 => Msg::Done {
                ret: d.u64()? as i64,
                unmodelled: d.u8()? != 0,
            },
            31 => Msg::Text {
                ret: d.u64()? as i64,
                text: d.string()?,
            },
            k => return Err(bad(k)),
        };
        if !d.0.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "trailing bytes in a bpfmodel message",
            ));
        }
        Ok(m)
    }
}

fn bad(tag: u8) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unknown bpfmodel message tag {tag}"),
    )
}

/// Sends one message, with `fd` attached as SCM_RIGHTS if given.
pub fn send(sock: RawFd, msg: &Msg, fd: Option<RawFd>) -> io::Result<()> {
    let bytes = msg.encode();
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer in it refers to a live local buffer.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if let Some(fd) = fd {
        // SAFETY: the control buffer has room for one cmsg holding one int (CMSG_SPACE(4) is
        // 24 bytes on 64-bit Linux, the buffer 32).
        unsafe {
            let space = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
            mh.msg_control = cbuf.as_mut_ptr().cast();
            mh.msg_controllen = space as _;
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
        }
    }
    loop {
        // SAFETY: `mh` describes live buffers.
        let n = unsafe { libc::sendmsg(sock, &mh, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives one message and the fd it carries, if any (installed O_CLOEXEC at the lowest free
/// number, as the kernel installs a bpf fd). EOF is an `UnexpectedEof` error. A message whose
/// fd could not be installed (the fd table is full) comes with `Err(EMFILE)` in place of it.
pub fn recv(sock: RawFd) -> io::Result<(Msg, Option<io::Result<OwnedFd>>)> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: as in send().
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cbuf) as _;
    let n = loop {
        // SAFETY: `mh` describes live buffers.
        let n = unsafe { libc::recvmsg(sock, &mut mh, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the bpfmodel peer hung up",
        ));
    }
    let mut fd = None;
    // SAFETY: the kernel filled `mh`; the CMSG macros walk only what it reports.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                // One fd is expected; any more a peer sent are closed, not leaked.
                let data = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let n = data / std::mem::size_of::<RawFd>();
                for i in 0..n {
                    let p = libc::CMSG_DATA(c).cast::<RawFd>().add(i);
                    let owned = OwnedFd::from_raw_fd(std::ptr::read_unaligned(p));
                    if fd.is_none() {
                        fd = Some(Ok(owned));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    if mh.msg_flags & libc::MSG_CTRUNC != 0 && fd.is_none() {
        fd = Some(Err(io::Error::from_raw_os_error(libc::EMFILE)));
    }
    buf.truncate(n);
    Ok((Msg::decode(&buf)?, fd))
}

/// The inode number of an open fd, and whether it is a socket (`fstat`).
pub fn fd_ino(fd: RawFd) -> Option<(u64, bool)> {
    // SAFETY: fstat fills a plain struct; a bad fd is just an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_ino, st.st_mode & libc::S_IFMT == libc::S_IFSOCK))
}

/// The credentials of the process at the other end of a Unix socket (SO_PEERCRED).
pub fn peer_cred(sock: RawFd) -> Option<libc::ucred> {
    let mut uc = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a ucred of the length given.
    let r = unsafe {
        libc::getsockopt(
            sock,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut uc as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(uc)
}

/// Wraps an fd we own.
pub fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: callers pass fds they have just created and own alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_survives_encoding() {
        let all = [
            Msg::Hello { version: VERSION },
            Msg::Call {
                cmd: -3,
                attr: 0x7fff_0000_1000,
                size: 72,
                common: 0,
                common_size: 0,
                cwd: "/tmp".into(),
            },
            Msg::FdInfo { fd: 3 },
            Msg::FdLink { fd: 4 },
            Msg::Unlink {
                path: "/sys/fs/bpf/m".into(),
            },
            Msg::Mkdir {
                path: "/sys/fs/bpf/d".into(),
            },
            Msg::Statfs {
                path: "/sys/fs/bpf".into(),
            },
            Msg::Read { addr: 8, len: 4 },
            Msg::Write {
                addr: 16,
                data: vec![1, 2, 3],
            },
            Msg::Resolve { fd: u32::MAX },
            Msg::Install,
            Msg::Data { data: vec![9; 5] },
            Msg::Fault { addr: 4096 },
            Msg::Wrote,
            Msg::FdIs {
                what: FdWhat::Socket(77),
            },
            Msg::FdIs {
                what: FdWhat::Dir("/sys/fs/bpf".into()),
            },
            Msg::FdIs {
                what: FdWhat::Other("/dev/null".into()),
            },
            Msg::FdIs {
                what: FdWhat::Closed,
            },
            Msg::Installed { fd: -24 },
            Msg::Done {
                ret: -22,
                unmodelled: true,
            },
            Msg::Text {
                ret: 0,
                text: "pos:\t0\n".into(),
            },
        ];
        for m in all {
            assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn a_truncated_or_unknown_message_is_an_error_not_a_panic() {
        let b = Msg::Read { addr: 1, len: 2 }.encode();
        for n in 0..b.len() {
            assert!(Msg::decode(&b[..n]).is_err());
        }
        assert!(Msg::decode(&[99]).is_err());
        let mut long = b.clone();
        long.push(0);
        assert!(Msg::decode(&long).is_err());
    }
}
