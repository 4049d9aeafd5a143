//! The environment variables the library reads (each documented in the README's "Running
//! programs against the model" section).

use std::path::PathBuf;

/// What BPFMODEL_TRACE asks to see on stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trace {
    /// Nothing.
    Off,
    /// `1`: a line for every call of a command the model does not implement.
    Unmodelled,
    /// `all`: a line for every bpf(2) call and its result.
    All,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// BPFMODEL_DIR: where the server's socket, lock and log live; one server per directory.
    /// Default /tmp/bpfmodel-<euid>.
    pub dir: PathBuf,
    /// BPFMODEL_BPFFS: where the model's bpffs is mounted. Default /sys/fs/bpf, where
    /// programs look for it.
    pub bpffs: String,
    /// BPFMODEL_PROFILE: the kernel version to model (`6.1`, `6.12`, `6.18`, `7.2`); default
    /// the running kernel's (or the nearest the model knows).
    pub profile: Option<String>,
    /// BPFMODEL_TRACE.
    pub trace: Trace,
    /// BPFMODEL_CREDS=caller: the model sees the caller's real uid and no capabilities, so
    /// the privilege checks bite as they would for that user. Default: root with every
    /// capability, the same program run as root on a real kernel.
    pub creds_caller: bool,
    /// BPFMODEL_IDLE_MS: how long the server lingers with no client, fd or pin before it
    /// exits. Default 1000.
    pub idle_ms: u64,
}

impl Config {
    pub fn from_env() -> Config {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        // SAFETY: geteuid cannot fail.
        let euid = unsafe { libc::geteuid() };
        // Absolute, since the server works from `/`.
        let dir = var("BPFMODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(format!("/tmp/bpfmodel-{euid}")));
        let dir = if dir.is_relative() {
            std::env::current_dir().map(|c| c.join(&dir)).unwrap_or(dir)
        } else {
            dir
        };
        let bpffs = syscall_model::inode::normalize(
            "/",
            &var("BPFMODEL_BPFFS").unwrap_or_else(|| syscall_model::inode::BPFFS_ROOT.into()),
        );
        let trace = match var("BPFMODEL_TRACE").as_deref() {
            None | Some("0") => Trace::Off,
            Some("all") => Trace::All,
            Some(_) => Trace::Unmodelled,
        };
        Config {
            dir,
            bpffs,
            profile: var("BPFMODEL_PROFILE"),
            trace,
            creds_caller: var("BPFMODEL_CREDS").as_deref() == Some("caller"),
            idle_ms: var("BPFMODEL_IDLE_MS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1000),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The directory's lock, held exclusively while a server starts or decides to exit.
    pub fn lock(&self) -> std::io::Result<std::fs::File> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(self.dir.join("lock"))?;
        // SAFETY: flock on our fd; the lock goes when the file closes.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(f)
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Whether an absolute, normalised path is in the model's bpffs.
    pub fn in_bpffs(&self, path: &str) -> bool {
        path == self.bpffs
            || (path.starts_with(&self.bpffs)
                && path.as_bytes().get(self.bpffs.len()) == Some(&b'/'))
            || self.bpffs == "/"
    }
}
