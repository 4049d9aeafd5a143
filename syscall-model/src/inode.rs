//! kernel/bpf/inode.c: pinning objects in a bpf filesystem (BPF_OBJ_PIN, BPF_OBJ_GET), over
//! the model's own small file namespace, with the permission rules of fs/namei.c that decide
//! who may walk, create, open and remove there.
//!
//! The namespace holds directories and pinned objects. `/sys/fs/bpf` is a bpffs mount (as is
//! anything created under it); `/`, `/tmp` and `/dev` are ordinary directories, so a pin
//! there is EPERM. A pin holds its map, as the kernel's pinned inode holds a user reference:
//! the map outlives its fds. Every inode has an owner and a mode: a bpffs root is 01777 (sticky,
//! like /tmp), a pin is 0600 of whoever pinned it, a directory made through the harness 0755
//! (0777 less the umask 022).

use crate::errno::Errno;
use crate::kernel::{cap, Cred};
use crate::map::BpfMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the model's bpffs is mounted.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// `PATH_MAX`.
pub const PATH_MAX: usize = 4096;

/// The permission bits `inode_permission()` is asked for.
pub const MAY_EXEC: u32 = 1;
pub const MAY_WRITE: u32 = 2;
pub const MAY_READ: u32 = 4;

/// `S_ISVTX`: in a sticky directory only a file's or the directory's owner may remove it.
pub const S_ISVTX: u32 = 0o1000;

/// The mode of a pin: `S_IRUSR | S_IWUSR` less the umask (`bpf_obj_do_pin`).
pub const PIN_MODE: u32 = 0o600;
/// The mode of a directory the harness makes: `mkdir(path, 0777)` less the umask 022.
pub const MKDIR_MODE: u32 = 0o755;

#[derive(Clone)]
pub enum Node {
    /// A directory; `bpffs` if it belongs to a bpf filesystem.
    Dir { bpffs: bool },
    /// A pinned map.
    Map(Arc<BpfMap>),
    /// Some other file (a device node), for completeness of lookups.
    File,
}

/// An inode: what it is, who owns it, and its permission bits.
#[derive(Clone)]
pub struct Inode {
    pub node: Node,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

impl Inode {
    fn root_owned(node: Node, mode: u32) -> Inode {
        Inode {
            node,
            uid: 0,
            gid: 0,
            mode,
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir { .. })
    }
}

/// `generic_permission()` (fs/namei.c): the owner's, the group's or everyone's bits, as the
/// caller is the owner, in the group, or neither; then CAP_DAC_OVERRIDE and
/// CAP_DAC_READ_SEARCH may grant what the bits refuse. EACCES otherwise.
pub fn generic_permission(cred: &Cred, inode: &Inode, mask: u32) -> Result<(), Errno> {
    let bits = if cred.uid == inode.uid {
        inode.mode >> 6
    } else if cred.gid == inode.gid {
        inode.mode >> 3
    } else {
        inode.mode
    };
    if mask & !bits & 0o7 == 0 {
        return Ok(());
    }
    let granted = if inode.is_dir() {
        cred.capable(cap::CAP_DAC_OVERRIDE)
            || (mask & MAY_WRITE == 0 && cred.capable(cap::CAP_DAC_READ_SEARCH))
    } else {
        (cred.capable(cap::CAP_DAC_OVERRIDE) && (mask & MAY_EXEC == 0 || inode.mode & 0o111 != 0))
            || (mask & !MAY_READ == 0 && cred.capable(cap::CAP_DAC_READ_SEARCH))
    };
    if granted {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// Why a path operation failed: the errno, the fs/namei.c function that decided it, and the
/// rule, for the caller's trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    pub errno: Errno,
    pub func: &'static str,
    pub rule: &'static str,
}

fn perr(errno: Errno, func: &'static str, rule: &'static str) -> PathError {
    PathError { errno, func, rule }
}

/// The model's file namespace: absolute, normalised paths to inodes.
pub struct Vfs {
    nodes: BTreeMap<String, Inode>,
}

impl Default for Vfs {
    fn default() -> Vfs {
        let mut nodes = BTreeMap::new();
        let dirs = [
            ("/", 0o755),
            ("/tmp", 0o1777),
            ("/dev", 0o755),
            ("/sys", 0o555),
            ("/sys/fs", 0o755),
        ];
        for (d, mode) in dirs {
            nodes.insert(
                d.to_string(),
                Inode::root_owned(Node::Dir { bpffs: false }, mode),
            );
        }
        // bpf_fill_super(): the root of a bpffs is S_IRWXUGO | S_ISVTX.
        nodes.insert(
            BPFFS_ROOT.to_string(),
            Inode::root_owned(Node::Dir { bpffs: true }, 0o1777),
        );
        for f in ["/dev/null", "/dev/zero"] {
            nodes.insert(f.to_string(), Inode::root_owned(Node::File, 0o666));
        }
        Vfs { nodes }
    }
}

/// Joins and normalises a path: `.` and empty components dropped, `..` goes up.
pub fn normalize(base: &str, path: &str) -> String {
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

impl Vfs {
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|i| &i.node)
    }

    pub fn inode(&self, path: &str) -> Option<&Inode> {
        self.nodes.get(path)
    }

    /// The path walk up to `path`'s parent (`link_path_walk`): each directory on the way must
    /// exist (ENOENT), be a directory (ENOTDIR) and be searchable by the caller (`may_lookup`:
    /// MAY_EXEC, EACCES), the parent included, since looking up the last name searches it.
    fn walk_to_parent(&self, cred: &Cred, path: &str) -> Result<&Inode, PathError> {
        let mut dir = "/".to_string();
        let mut inode = self.nodes.get("/").ok_or_else(|| {
            perr(
                Errno::ENOENT,
                "link_path_walk",
                "every directory on the path exists",
            )
        })?;
        let parent = parent(path);
        let comps: Vec<&str> = parent.split('/').filter(|c| !c.is_empty()).collect();
        for c in comps.iter().map(Some).chain([None]) {
            if !inode.is_dir() {
                return Err(perr(
                    Errno::ENOTDIR,
                    "link_path_walk",
                    "every component before the last is a directory",
                ));
            }
            generic_permission(cred, inode, MAY_EXEC).map_err(|e| {
                perr(
                    e,
                    "may_lookup",
                    "the caller may search every directory on the path (MAY_EXEC)",
                )
            })?;
            let Some(c) = c else { break };
            dir = if dir == "/" {
                format!("/{c}")
            } else {
                format!("{dir}/{c}")
            };
            inode = self.nodes.get(&dir).ok_or_else(|| {
                perr(
                    Errno::ENOENT,
                    "link_path_walk",
                    "every directory on the path exists",
                )
            })?;
        }
        Ok(inode)
    }

    /// `user_path_at()`: the inode at `path` after a walk the caller may make.
    pub fn lookup(&self, cred: &Cred, path: &str) -> Result<&Inode, PathError> {
        if path == "/" {
            return self
                .nodes
                .get("/")
                .ok_or_else(|| perr(Errno::ENOENT, "user_path_at", "the path exists"));
        }
        self.walk_to_parent(cred, path)
            .map_err(|e| match (e.errno, e.func) {
                (Errno::ENOENT, "link_path_walk") => {
                    perr(Errno::ENOENT, "user_path_at", "the path exists")
                }
                (_, "link_path_walk") => perr(e.errno, "user_path_at", e.rule),
                _ => e,
            })?;
        self.nodes
            .get(path)
            .ok_or_else(|| perr(Errno::ENOENT, "user_path_at", "the path exists"))
    }

    /// `filename_create()` (`user_path_create`): the walk, then the name must be free
    /// (EEXIST). Returns the parent directory's inode.
    pub fn path_create(&self, cred: &Cred, path: &str) -> Result<&Inode, PathError> {
        if path == "/" {
            return Err(perr(
                Errno::EEXIST,
                "user_path_create",
                "the parent exists and the name is free",
            ));
        }
        let dir = self
            .walk_to_parent(cred, path)
            .map_err(|e| match (e.errno, e.func) {
                (Errno::ENOENT, "link_path_walk") => perr(
                    Errno::ENOENT,
                    "user_path_create",
                    "the parent exists and the name is free",
                ),
                (_, "link_path_walk") => perr(e.errno, "user_path_create", e.rule),
                _ => e,
            })?;
        if self.nodes.contains_key(path) {
            return Err(perr(
                Errno::EEXIST,
                "user_path_create",
                "the parent exists and the name is free",
            ));
        }
        Ok(dir)
    }

    /// `may_create()`: creating in a directory needs MAY_WRITE | MAY_EXEC there.
    pub fn may_create(cred: &Cred, dir: &Inode) -> Result<(), PathError> {
        generic_permission(cred, dir, MAY_WRITE | MAY_EXEC).map_err(|e| {
            perr(
                e,
                "may_create",
                "the caller may write in the parent directory",
            )
        })
    }

    pub fn insert(&mut self, path: String, inode: Inode) {
        self.nodes.insert(path, inode);
    }

    /// `mount -t bpf bpf PATH` on a normalised path: the directories on the way that do not
    /// exist become root's 0755 ones, and `path` the 01777 root of an empty bpffs (hiding
    /// whatever was below it, as a mount does).
    pub fn mount_bpffs(&mut self, path: &str) {
        let mut at = String::new();
        for c in path.split('/').filter(|c| !c.is_empty()) {
            at.push('/');
            at.push_str(c);
            if at.len() < path.len() && !self.nodes.contains_key(&at) {
                self.nodes.insert(
                    at.clone(),
                    Inode::root_owned(Node::Dir { bpffs: false }, 0o755),
                );
            }
        }
        let below = format!("{}/", path.trim_end_matches('/'));
        self.nodes.retain(|p, _| !p.starts_with(&below));
        self.nodes.insert(
            path.to_string(),
            Inode::root_owned(Node::Dir { bpffs: true }, 0o1777),
        );
    }

    /// Whether any object is pinned (a pin keeps its map alive with no process holding it).
    pub fn has_pins(&self) -> bool {
        self.nodes.values().any(|i| matches!(i.node, Node::Map(_)))
    }

    /// Whether `path` is a directory of a bpffs (what statfs() would call BPF_FS_MAGIC).
    pub fn is_bpffs_dir(&self, path: &str) -> bool {
        matches!(self.get(path), Some(Node::Dir { bpffs: true }))
    }

    /// `mkdir(path, 0777)`: a directory of the parent's kind, owned by the caller.
    pub fn mkdir(&mut self, cred: &Cred, path: &str) -> Result<(), PathError> {
        let dir = self.path_create(cred, path)?;
        Vfs::may_create(cred, dir)?;
        let bpffs = matches!(dir.node, Node::Dir { bpffs: true });
        let inode = Inode {
            node: Node::Dir { bpffs },
            uid: cred.uid,
            gid: cred.gid,
            mode: MKDIR_MODE,
        };
        self.nodes.insert(path.to_string(), inode);
        Ok(())
    }

    /// `unlink(path)` (`do_unlinkat`, `may_delete`): the name must exist (ENOENT); the caller
    /// must be able to write in its directory (EACCES) and, if that directory is sticky, own
    /// the file or the directory or have CAP_FOWNER (EPERM); a directory is EISDIR. Dropping a
    /// pin lets its map go when nothing else holds it.
    pub fn unlink(&mut self, cred: &Cred, path: &str) -> Result<(), PathError> {
        let dir = self
            .walk_to_parent(cred, path)
            .map_err(|e| match (e.errno, e.func) {
                (_, "link_path_walk") => perr(e.errno, "do_unlinkat", e.rule),
                _ => e,
            })?
            .clone();
        let victim = self
            .nodes
            .get(path)
            .ok_or_else(|| perr(Errno::ENOENT, "do_unlinkat", "the name exists"))?;
        generic_permission(cred, &dir, MAY_WRITE | MAY_EXEC)
            .map_err(|e| perr(e, "may_delete", "the caller may write in the directory"))?;
        if dir.mode & S_ISVTX != 0
            && cred.uid != victim.uid
            && cred.uid != dir.uid
            && !cred.capable(cap::CAP_FOWNER)
        {
            return Err(perr(
                Errno::EPERM,
                "check_sticky",
                "in a sticky directory the caller owns the file or the directory",
            ));
        }
        if victim.is_dir() {
            return Err(perr(
                Errno::EISDIR,
                "may_delete",
                "unlink removes files, not directories",
            ));
        }
        self.nodes.remove(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_cannot_remove_roots_file_from_a_sticky_directory_but_root_can() {
        let mut vfs = Vfs::default();
        vfs.insert("/tmp/f".into(), Inode::root_owned(Node::File, 0o600));
        let e = vfs.unlink(&Cred::user(1000), "/tmp/f").unwrap_err();
        assert_eq!((e.errno, e.func), (Errno::EPERM, "check_sticky"));
        vfs.unlink(&Cred::root(), "/tmp/f").unwrap();
    }

    #[test]
    fn searching_a_directory_needs_exec_permission() {
        let mut vfs = Vfs::default();
        vfs.insert(
            "/tmp/d".into(),
            Inode::root_owned(Node::Dir { bpffs: false }, 0o700),
        );
        vfs.insert("/tmp/d/f".into(), Inode::root_owned(Node::File, 0o666));
        let e = vfs.lookup(&Cred::user(1000), "/tmp/d/f").err().unwrap();
        assert_eq!((e.errno, e.func), (Errno::EACCES, "may_lookup"));
        assert!(vfs.lookup(&Cred::root(), "/tmp/d/f").is_ok());
    }

    #[test]
    fn the_owners_bits_apply_to_the_owner_even_when_others_may_do_more() {
        let inode = Inode {
            node: Node::File,
            uid: 1000,
            gid: 1000,
            mode: 0o066,
        };
        assert_eq!(
            generic_permission(&Cred::user(1000), &inode, MAY_READ),
            Err(Errno::EACCES)
        );
        assert_eq!(
            generic_permission(&Cred::user(2000), &inode, MAY_READ),
            Ok(())
        );
    }
}
