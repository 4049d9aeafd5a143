//! kernel/bpf/inode.c: pinning objects in a bpf filesystem (BPF_OBJ_PIN, BPF_OBJ_GET), over
//! the model's own small file namespace.
//!
//! The namespace holds directories and pinned objects. `/sys/fs/bpf` is a bpffs mount (as is
//! anything created under it); `/`, `/tmp` and `/dev` are ordinary directories, so a pin
//! there is EPERM. A pin holds its map, as the kernel's pinned inode holds a user reference:
//! the map outlives its fds.

use crate::errno::Errno;
use crate::map::BpfMap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where the model's bpffs is mounted.
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// `PATH_MAX`.
pub const PATH_MAX: usize = 4096;

#[derive(Clone)]
pub enum Node {
    /// A directory; `bpffs` if it belongs to a bpf filesystem.
    Dir { bpffs: bool },
    /// A pinned map.
    Map(Arc<BpfMap>),
    /// Some other file (a device node), for completeness of lookups.
    File,
}

/// The model's file namespace: absolute, normalised paths to nodes.
pub struct Vfs {
    nodes: BTreeMap<String, Node>,
}

impl Default for Vfs {
    fn default() -> Vfs {
        let mut nodes = BTreeMap::new();
        for d in ["/", "/tmp", "/dev", "/sys", "/sys/fs"] {
            nodes.insert(d.to_string(), Node::Dir { bpffs: false });
        }
        nodes.insert(BPFFS_ROOT.to_string(), Node::Dir { bpffs: true });
        for f in ["/dev/null", "/dev/zero"] {
            nodes.insert(f.to_string(), Node::File);
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
        self.nodes.get(path)
    }

    /// The parent directory of a path to be created (`user_path_create`): ENOENT if it is
    /// missing, ENOTDIR if it is not a directory, EEXIST if the name is taken. Returns whether
    /// the parent is a bpffs directory.
    pub fn path_create(&self, path: &str) -> Result<bool, Errno> {
        if path == "/" {
            return Err(Errno::EEXIST);
        }
        match self.nodes.get(parent(path)) {
            None => Err(Errno::ENOENT),
            Some(Node::Dir { bpffs }) => {
                if self.nodes.contains_key(path) {
                    Err(Errno::EEXIST)
                } else {
                    Ok(*bpffs)
                }
            }
            Some(_) => Err(Errno::ENOTDIR),
        }
    }

    pub fn insert(&mut self, path: String, node: Node) {
        self.nodes.insert(path, node);
    }

    /// `mkdir(path)`: a directory of the parent's kind.
    pub fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        let bpffs = self.path_create(path)?;
        self.nodes.insert(path.to_string(), Node::Dir { bpffs });
        Ok(())
    }

    /// `unlink(path)`: ENOENT if missing, EISDIR for a directory; dropping a pin lets its map
    /// go when nothing else holds it.
    pub fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        match self.nodes.get(path) {
            None => Err(Errno::ENOENT),
            Some(Node::Dir { .. }) => Err(Errno::EISDIR),
            Some(_) => {
                self.nodes.remove(path);
                Ok(())
            }
        }
    }
}
