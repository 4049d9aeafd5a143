//! The process's file descriptor table: what `fdget()` finds behind a number.
//!
//! As in Linux, a new file takes the lowest free number, fds 0-2 start out open (they are the
//! terminal, not bpf objects), and closing a number frees it for reuse. A map stays alive as
//! long as some fd (or other reference) holds it; the last close frees it and its id.

use crate::errno::Errno;
use crate::map::BpfMap;
use std::sync::Arc;

/// `f_mode` bits that decide what a map fd may do (`map_get_sys_perms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FMode {
    pub can_read: bool,
    pub can_write: bool,
}

impl FMode {
    pub const RDWR: FMode = FMode {
        can_read: true,
        can_write: true,
    };
    pub const RDONLY: FMode = FMode {
        can_read: true,
        can_write: false,
    };
    pub const WRONLY: FMode = FMode {
        can_read: false,
        can_write: true,
    };

    /// The `O_*` access mode as fdinfo prints it.
    pub fn o_flags(self) -> u32 {
        match (self.can_read, self.can_write) {
            (true, false) => 0,
            (false, true) => 1,
            _ => 2,
        }
    }
}

/// What an open file is, as far as bpf(2) can tell.
#[derive(Clone)]
pub enum FileKind {
    /// An anon inode "bpf-map" file (`bpf_map_fops`).
    BpfMap(Arc<BpfMap>),
    /// Any other file: a tty, /dev/null. bpf(2) rejects it where it wants a bpf object.
    Other { path: String },
    /// A directory opened with O_DIRECTORY (a `path_fd` for pinning).
    Dir { path: String },
}

#[derive(Clone)]
pub struct File {
    pub kind: FileKind,
    pub f_mode: FMode,
}

impl File {
    pub fn map(&self) -> Option<&Arc<BpfMap>> {
        match &self.kind {
            FileKind::BpfMap(m) => Some(m),
            FileKind::Other { .. } | FileKind::Dir { .. } => None,
        }
    }

    pub fn describe(&self) -> String {
        match &self.kind {
            FileKind::BpfMap(m) => format!("bpf-map id {}", m.id()),
            FileKind::Other { path } => path.clone(),
            FileKind::Dir { path } => format!("the directory {path}"),
        }
    }
}

/// The fd numbers of a process that lives outside the model: the LD_PRELOAD server's client,
/// whose fds are real fds of its own (placeholders the server hands out). `fdget()` and
/// `fd_install()` ask it, so the numbers the model sees and returns are the process's real
/// ones, and dup(), close() and exec act on them as on kernel fds.
pub trait FdHost: Send + Sync {
    /// `fdget(ufd)`: the file behind the process's fd `ufd`, if it is open.
    fn get(&self, ufd: u32) -> Option<Arc<File>>;
    /// `get_unused_fd_flags(O_CLOEXEC)` + `fd_install()`: a new fd of the process for `file`.
    fn install(&self, file: Arc<File>) -> Result<i32, Errno>;
}

/// The fd table of one process.
pub struct FdTable {
    files: Vec<Option<Arc<File>>>,
    /// `RLIMIT_NOFILE`: numbers at or past it cannot be allocated (EMFILE).
    limit: u32,
    /// Set when the numbers belong to a real process (see [`FdHost`]); `files` is then unused.
    host: Option<Arc<dyn FdHost>>,
}

impl FdTable {
    /// A table with fds 0, 1 and 2 open on the terminal.
    pub fn with_std_streams(limit: u32) -> FdTable {
        let tty = Arc::new(File {
            kind: FileKind::Other {
                path: "/dev/tty".into(),
            },
            f_mode: FMode::RDWR,
        });
        FdTable {
            files: vec![Some(tty.clone()), Some(tty.clone()), Some(tty)],
            limit,
            host: None,
        }
    }

    /// A table whose numbers are those of a real process, looked up through `host`.
    pub fn hosted(host: Arc<dyn FdHost>) -> FdTable {
        FdTable {
            files: Vec::new(),
            limit: 0,
            host: Some(host),
        }
    }

    /// `fdget(ufd)`: the file behind a number (the number is read as unsigned, so -1 is just
    /// a very large fd that is not open).
    pub fn get(&self, ufd: u32) -> Option<Arc<File>> {
        if let Some(host) = &self.host {
            return host.get(ufd);
        }
        self.files.get(ufd as usize).cloned().flatten()
    }

    /// `get_unused_fd_flags` + `fd_install`: the lowest free number.
    pub fn install(&mut self, file: File) -> Result<i32, Errno> {
        if let Some(host) = &self.host {
            return host.install(Arc::new(file));
        }
        let slot = self.files.iter().position(Option::is_none);
        let fd = slot.unwrap_or(self.files.len());
        if fd as u64 >= self.limit as u64 {
            return Err(Errno::EMFILE);
        }
        if fd == self.files.len() {
            self.files.push(None);
        }
        self.files[fd] = Some(Arc::new(file));
        Ok(fd as i32)
    }

    /// `close(fd)`: EBADF if it is not open. A hosted process closes its fds itself, so here
    /// every number is EBADF.
    pub fn close(&mut self, fd: i32) -> Result<Arc<File>, Errno> {
        let slot = usize::try_from(fd).ok().and_then(|i| self.files.get_mut(i));
        match slot.and_then(Option::take) {
            Some(f) => {
                while matches!(self.files.last(), Some(None)) {
                    self.files.pop();
                }
                Ok(f)
            }
            None => Err(Errno::EBADF),
        }
    }

    /// The open numbers, in order (none for a hosted process: the model does not see them).
    pub fn open_fds(&self) -> Vec<i32> {
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is_some())
            .map(|(i, _)| i as i32)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other() -> File {
        File {
            kind: FileKind::Other {
                path: "/dev/null".into(),
            },
            f_mode: FMode::RDONLY,
        }
    }

    #[test]
    fn new_fds_take_the_lowest_free_number() {
        let mut t = FdTable::with_std_streams(1024);
        assert_eq!(t.install(other()), Ok(3));
        assert_eq!(t.install(other()), Ok(4));
        t.close(3).unwrap();
        assert_eq!(t.install(other()), Ok(3));
        assert_eq!(t.install(other()), Ok(5));
    }

    #[test]
    fn closing_a_closed_fd_is_ebadf() {
        let mut t = FdTable::with_std_streams(1024);
        assert_eq!(t.close(7).err(), Some(Errno::EBADF));
        assert_eq!(t.close(-1).err(), Some(Errno::EBADF));
        assert!(t.close(0).is_ok());
        assert_eq!(t.close(0).err(), Some(Errno::EBADF));
    }

    #[test]
    fn the_limit_gives_emfile() {
        let mut t = FdTable::with_std_streams(4);
        assert_eq!(t.install(other()), Ok(3));
        assert_eq!(t.install(other()), Err(Errno::EMFILE));
    }
}
