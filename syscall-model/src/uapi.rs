//! A mirror of the parts of include/uapi/linux/bpf.h that the map syscalls use: command and
//! map-type numbers, flag bits, and the byte layout of `union bpf_attr` for each command.
//!
//! The attr is kept as bytes (`Attr`), exactly as the kernel's copy of it, and each command
//! reads its fields at fixed little-endian offsets. Both x86_64 and riscv64 are little endian.

use std::fmt;

/// `enum bpf_cmd`: the first argument of bpf(2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BpfCmd(pub u32);

macro_rules! numbered {
    ($ty:ident, $prefix:expr, $($name:ident = $num:expr),* $(,)?) => {
        impl $ty {
            $(pub const $name: $ty = $ty($num);)*
            /// Every number with a name, in order.
            pub const NAMED: &'static [$ty] = &[$($ty::$name),*];

            /// The name without its prefix (`MAP_CREATE`, `HASH`), if the number has one.
            pub fn short_name(self) -> Option<&'static str> {
                match self.0 {
                    $($num => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// The full uapi name (`BPF_MAP_CREATE`, `BPF_MAP_TYPE_HASH`) or the number.
            pub fn full_name(self) -> String {
                match self.short_name() {
                    Some(n) => format!("{}{}", $prefix, n),
                    None => self.0.to_string(),
                }
            }

            /// Looks up a short or full name.
            pub fn from_name(name: &str) -> Option<$ty> {
                let short = name.strip_prefix($prefix).unwrap_or(name);
                match short {
                    $(stringify!($name) => Some($ty::$name),)*
                    _ => None,
                }
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.full_name())
            }
        }
    };
}

numbered! { BpfCmd, "BPF_",
    MAP_CREATE = 0,
    MAP_LOOKUP_ELEM = 1,
    MAP_UPDATE_ELEM = 2,
    MAP_DELETE_ELEM = 3,
    MAP_GET_NEXT_KEY = 4,
    PROG_LOAD = 5,
    OBJ_PIN = 6,
    OBJ_GET = 7,
    PROG_ATTACH = 8,
    PROG_DETACH = 9,
    PROG_TEST_RUN = 10,
    PROG_GET_NEXT_ID = 11,
    MAP_GET_NEXT_ID = 12,
    PROG_GET_FD_BY_ID = 13,
    MAP_GET_FD_BY_ID = 14,
    OBJ_GET_INFO_BY_FD = 15,
    PROG_QUERY = 16,
    RAW_TRACEPOINT_OPEN = 17,
    BTF_LOAD = 18,
    BTF_GET_FD_BY_ID = 19,
    TASK_FD_QUERY = 20,
    MAP_LOOKUP_AND_DELETE_ELEM = 21,
    MAP_FREEZE = 22,
    BTF_GET_NEXT_ID = 23,
    MAP_LOOKUP_BATCH = 24,
    MAP_LOOKUP_AND_DELETE_BATCH = 25,
    MAP_UPDATE_BATCH = 26,
    MAP_DELETE_BATCH = 27,
    LINK_CREATE = 28,
    LINK_UPDATE = 29,
    LINK_GET_FD_BY_ID = 30,
    LINK_GET_NEXT_ID = 31,
    ENABLE_STATS = 32,
    ITER_CREATE = 33,
    LINK_DETACH = 34,
    PROG_BIND_MAP = 35,
    TOKEN_CREATE = 36,
    PROG_STREAM_READ_BY_FD = 37,
    PROG_ASSOC_STRUCT_OPS = 38,
}

/// `enum bpf_map_type`: `attr->map_type` of BPF_MAP_CREATE.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MapType(pub u32);

numbered! { MapType, "BPF_MAP_TYPE_",
    UNSPEC = 0,
    HASH = 1,
    ARRAY = 2,
    PROG_ARRAY = 3,
    PERF_EVENT_ARRAY = 4,
    PERCPU_HASH = 5,
    PERCPU_ARRAY = 6,
    STACK_TRACE = 7,
    CGROUP_ARRAY = 8,
    LRU_HASH = 9,
    LRU_PERCPU_HASH = 10,
    LPM_TRIE = 11,
    ARRAY_OF_MAPS = 12,
    HASH_OF_MAPS = 13,
    DEVMAP = 14,
    SOCKMAP = 15,
    CPUMAP = 16,
    XSKMAP = 17,
    SOCKHASH = 18,
    CGROUP_STORAGE = 19,
    REUSEPORT_SOCKARRAY = 20,
    PERCPU_CGROUP_STORAGE = 21,
    QUEUE = 22,
    STACK = 23,
    SK_STORAGE = 24,
    DEVMAP_HASH = 25,
    STRUCT_OPS = 26,
    RINGBUF = 27,
    INODE_STORAGE = 28,
    TASK_STORAGE = 29,
    BLOOM_FILTER = 30,
    USER_RINGBUF = 31,
    CGRP_STORAGE = 32,
    ARENA = 33,
    INSN_ARRAY = 34,
    RHASH = 35,
}

impl MapType {
    /// The map types whose syscall value is one slot per possible CPU (`bpf_map_value_size`).
    pub fn is_percpu_value(self) -> bool {
        matches!(
            self,
            MapType::PERCPU_HASH
                | MapType::LRU_PERCPU_HASH
                | MapType::PERCPU_ARRAY
                | MapType::PERCPU_CGROUP_STORAGE
        )
    }

    /// `IS_FD_MAP()`: maps whose syscall value is a 4-byte fd or id.
    pub fn is_fd_map(self) -> bool {
        matches!(
            self,
            MapType::PROG_ARRAY
                | MapType::PERF_EVENT_ARRAY
                | MapType::CGROUP_ARRAY
                | MapType::ARRAY_OF_MAPS
                | MapType::HASH_OF_MAPS
        )
    }
}

/// Map creation flags (`attr->map_flags`).
pub mod map_flags {
    pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
    pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
    pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
    pub const BPF_F_RDONLY: u32 = 1 << 3;
    pub const BPF_F_WRONLY: u32 = 1 << 4;
    pub const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
    pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
    pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
    pub const BPF_F_CLONE: u32 = 1 << 9;
    pub const BPF_F_MMAPABLE: u32 = 1 << 10;
    pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
    pub const BPF_F_INNER_MAP: u32 = 1 << 12;
    pub const BPF_F_LINK: u32 = 1 << 13;
    pub const BPF_F_PATH_FD: u32 = 1 << 14;
    pub const BPF_F_VTYPE_BTF_OBJ_FD: u32 = 1 << 15;
    pub const BPF_F_TOKEN_FD: u32 = 1 << 16;
    pub const BPF_F_SEGV_ON_FAULT: u32 = 1 << 17;
    pub const BPF_F_NO_USER_CONV: u32 = 1 << 18;
    pub const BPF_F_RB_OVERWRITE: u32 = 1 << 19;

    /// `BPF_F_ACCESS_MASK` (include/linux/bpf.h).
    pub const BPF_F_ACCESS_MASK: u32 =
        BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG;

    /// Names for printing and parsing, lowest bit first.
    pub const NAMES: &[(&str, u32)] = &[
        ("NO_PREALLOC", BPF_F_NO_PREALLOC),
        ("NO_COMMON_LRU", BPF_F_NO_COMMON_LRU),
        ("NUMA_NODE", BPF_F_NUMA_NODE),
        ("RDONLY", BPF_F_RDONLY),
        ("WRONLY", BPF_F_WRONLY),
        ("STACK_BUILD_ID", BPF_F_STACK_BUILD_ID),
        ("ZERO_SEED", BPF_F_ZERO_SEED),
        ("RDONLY_PROG", BPF_F_RDONLY_PROG),
        ("WRONLY_PROG", BPF_F_WRONLY_PROG),
        ("CLONE", BPF_F_CLONE),
        ("MMAPABLE", BPF_F_MMAPABLE),
        ("PRESERVE_ELEMS", BPF_F_PRESERVE_ELEMS),
        ("INNER_MAP", BPF_F_INNER_MAP),
        ("LINK", BPF_F_LINK),
        ("PATH_FD", BPF_F_PATH_FD),
        ("VTYPE_BTF_OBJ_FD", BPF_F_VTYPE_BTF_OBJ_FD),
        ("TOKEN_FD", BPF_F_TOKEN_FD),
        ("SEGV_ON_FAULT", BPF_F_SEGV_ON_FAULT),
        ("NO_USER_CONV", BPF_F_NO_USER_CONV),
        ("RB_OVERWRITE", BPF_F_RB_OVERWRITE),
    ];
}

/// Element-command flags (`attr->flags` of LOOKUP/UPDATE/LOOKUP_AND_DELETE).
pub mod elem_flags {
    pub const BPF_ANY: u64 = 0;
    pub const BPF_NOEXIST: u64 = 1;
    pub const BPF_EXIST: u64 = 2;
    pub const BPF_F_LOCK: u64 = 4;
    /// 7.2: the target CPU travels in the upper 32 bits.
    pub const BPF_F_CPU: u64 = 8;
    /// 7.2: one value for every CPU.
    pub const BPF_F_ALL_CPUS: u64 = 16;

    pub const NAMES: &[(&str, u64)] = &[
        ("NOEXIST", BPF_NOEXIST),
        ("EXIST", BPF_EXIST),
        ("F_LOCK", BPF_F_LOCK),
        ("F_CPU", BPF_F_CPU),
        ("F_ALL_CPUS", BPF_F_ALL_CPUS),
    ];
}

/// Byte offsets of the fields of `union bpf_attr`, per command (the kernel's anonymous structs).
pub mod off {
    // BPF_MAP_CREATE
    pub const MAP_TYPE: usize = 0;
    pub const KEY_SIZE: usize = 4;
    pub const VALUE_SIZE: usize = 8;
    pub const MAX_ENTRIES: usize = 12;
    pub const MAP_FLAGS: usize = 16;
    pub const INNER_MAP_FD: usize = 20;
    pub const NUMA_NODE: usize = 24;
    pub const MAP_NAME: usize = 28;
    pub const BPF_OBJ_NAME_LEN: usize = 16;
    pub const MAP_IFINDEX: usize = 44;
    pub const BTF_FD: usize = 48;
    pub const BTF_KEY_TYPE_ID: usize = 52;
    pub const BTF_VALUE_TYPE_ID: usize = 56;
    pub const BTF_VMLINUX_VALUE_TYPE_ID: usize = 60;
    pub const MAP_EXTRA: usize = 64;
    pub const VALUE_TYPE_BTF_OBJ_FD: usize = 72;
    pub const MAP_TOKEN_FD: usize = 76;
    pub const EXCL_PROG_HASH: usize = 80;
    pub const EXCL_PROG_HASH_SIZE: usize = 88;

    // The element commands (LOOKUP, UPDATE, DELETE, GET_NEXT_KEY, LOOKUP_AND_DELETE, FREEZE)
    pub const MAP_FD: usize = 0;
    pub const KEY: usize = 8;
    /// `value` and `next_key` share this slot.
    pub const VALUE: usize = 16;
    pub const FLAGS: usize = 24;
}

/// The kernel's zero-filled copy of `union bpf_attr`. Its length is the profile's
/// `sizeof(union bpf_attr)`; reads past the end return zero, as the kernel never has such
/// fields.
#[derive(Clone)]
pub struct Attr {
    /// The union's bytes inline (no allocation per call): `len` of them are the kernel's.
    bytes: [u8; ATTR_MAX],
    len: usize,
    /// Past this offset every byte is still zero (the copy filled less than the union), so
    /// `CHECK_ATTR` need not read them.
    dirty: usize,
}

/// Room for the largest `union bpf_attr` of any profile (168 bytes in 6.18).
pub const ATTR_MAX: usize = 256;

impl Attr {
    /// A zeroed union of `size` bytes (at most [`ATTR_MAX`]).
    pub fn zeroed(size: usize) -> Attr {
        Attr {
            bytes: [0; ATTR_MAX],
            len: size.min(ATTR_MAX),
            dirty: 0,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.dirty = self.len;
        &mut self.bytes[..self.len]
    }

    /// The first `n` bytes (at most the union's), to be filled: the copy from user space.
    pub fn head_mut(&mut self, n: usize) -> &mut [u8] {
        let n = n.min(self.len);
        self.dirty = self.dirty.max(n);
        &mut self.bytes[..n]
    }

    #[inline]
    pub fn u32(&self, off: usize) -> u32 {
        if let Some(w) = self.bytes().get(off..off.wrapping_add(4)) {
            return u32::from_le_bytes(w.try_into().unwrap_or_default());
        }
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.bytes().get(off + i).copied().unwrap_or(0);
        }
        u32::from_le_bytes(b)
    }

    #[inline]
    pub fn u64(&self, off: usize) -> u64 {
        if let Some(w) = self.bytes().get(off..off.wrapping_add(8)) {
            return u64::from_le_bytes(w.try_into().unwrap_or_default());
        }
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.bytes().get(off + i).copied().unwrap_or(0);
        }
        u64::from_le_bytes(b)
    }

    pub fn set_u32(&mut self, off: usize, v: u32) {
        if let Some(s) = self.bytes[..self.len].get_mut(off..off.saturating_add(4)) {
            s.copy_from_slice(&v.to_le_bytes());
            self.dirty = self.dirty.max(off + 4);
        }
    }

    pub fn slice(&self, off: usize, len: usize) -> Vec<u8> {
        (off..off + len)
            .map(|i| self.bytes().get(i).copied().unwrap_or(0))
            .collect()
    }

    /// The first non-zero byte at or after `from`, if any (`memchr_inv(.., 0, ..)`).
    pub fn first_nonzero_from(&self, from: usize) -> Option<usize> {
        if from >= self.dirty {
            // Never written: zero (but an offset past the union is still "no such byte").
            return None;
        }
        let tail = &self.bytes[from..self.dirty];
        // Eight bytes at a time: every call checks the union's tail, so this is hot.
        let words = tail.chunks_exact(8);
        let rest = words.remainder();
        let mut at = from;
        for w in words {
            if u64::from_ne_bytes(w.try_into().unwrap_or_default()) != 0 {
                return w.iter().position(|&b| b != 0).map(|i| at + i);
            }
            at += 8;
        }
        rest.iter().position(|&b| b != 0).map(|i| at + i)
    }
}

/// The decoded BPF_MAP_CREATE struct. Every field the kernel reads, named as in bpf.h.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapCreateAttr {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub inner_map_fd: u32,
    pub numa_node: u32,
    pub map_name: [u8; 16],
    pub map_ifindex: u32,
    pub btf_fd: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub map_extra: u64,
    pub value_type_btf_obj_fd: u32,
    pub map_token_fd: u32,
    pub excl_prog_hash: u64,
    pub excl_prog_hash_size: u32,
}

impl MapCreateAttr {
    pub fn decode(a: &Attr) -> MapCreateAttr {
        let mut map_name = [0u8; 16];
        map_name.copy_from_slice(&a.slice(off::MAP_NAME, off::BPF_OBJ_NAME_LEN));
        MapCreateAttr {
            map_type: a.u32(off::MAP_TYPE),
            key_size: a.u32(off::KEY_SIZE),
            value_size: a.u32(off::VALUE_SIZE),
            max_entries: a.u32(off::MAX_ENTRIES),
            map_flags: a.u32(off::MAP_FLAGS),
            inner_map_fd: a.u32(off::INNER_MAP_FD),
            numa_node: a.u32(off::NUMA_NODE),
            map_name,
            map_ifindex: a.u32(off::MAP_IFINDEX),
            btf_fd: a.u32(off::BTF_FD),
            btf_key_type_id: a.u32(off::BTF_KEY_TYPE_ID),
            btf_value_type_id: a.u32(off::BTF_VALUE_TYPE_ID),
            btf_vmlinux_value_type_id: a.u32(off::BTF_VMLINUX_VALUE_TYPE_ID),
            map_extra: a.u64(off::MAP_EXTRA),
            value_type_btf_obj_fd: a.u32(off::VALUE_TYPE_BTF_OBJ_FD),
            map_token_fd: a.u32(off::MAP_TOKEN_FD),
            excl_prog_hash: a.u64(off::EXCL_PROG_HASH),
            excl_prog_hash_size: a.u32(off::EXCL_PROG_HASH_SIZE),
        }
    }

    pub fn map_type(&self) -> MapType {
        MapType(self.map_type)
    }

    pub fn has(&self, flag: u32) -> bool {
        self.map_flags & flag != 0
    }

    /// `bpf_map_attr_numa_node()`: the node, or NUMA_NO_NODE (-1) without BPF_F_NUMA_NODE.
    pub fn numa_node(&self) -> i32 {
        if self.has(map_flags::BPF_F_NUMA_NODE) {
            self.numa_node as i32
        } else {
            NUMA_NO_NODE
        }
    }
}

pub const NUMA_NO_NODE: i32 = -1;

/// The decoded struct shared by the element commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ElemAttr {
    pub map_fd: u32,
    pub key: u64,
    /// `value`, or `next_key` for GET_NEXT_KEY.
    pub value: u64,
    pub flags: u64,
}

impl ElemAttr {
    #[inline]
    pub fn decode(a: &Attr) -> ElemAttr {
        ElemAttr {
            map_fd: a.u32(off::MAP_FD),
            key: a.u64(off::KEY),
            value: a.u64(off::VALUE),
            flags: a.u64(off::FLAGS),
        }
    }
}

/// Renders map flags as `NO_PREALLOC|ZERO_SEED` (unknown bits in hex).
pub fn map_flags_name(flags: u32) -> String {
    bits_name(
        flags as u64,
        map_flags::NAMES.iter().map(|(n, b)| (*n, *b as u64)),
    )
}

/// Renders element flags as `NOEXIST|F_LOCK`, `ANY` for zero.
pub fn elem_flags_name(flags: u64) -> String {
    if flags == 0 {
        return "ANY".into();
    }
    bits_name(flags, elem_flags::NAMES.iter().copied())
}

fn bits_name(flags: u64, names: impl Iterator<Item = (&'static str, u64)>) -> String {
    if flags == 0 {
        return "0".into();
    }
    let mut rest = flags;
    let mut parts = Vec::new();
    for (n, b) in names {
        if rest & b == b && b != 0 {
            parts.push(n.to_string());
            rest &= !b;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(
            BpfCmd::from_name("BPF_MAP_FREEZE"),
            Some(BpfCmd::MAP_FREEZE)
        );
        assert_eq!(MapType::from_name("HASH"), Some(MapType::HASH));
        assert_eq!(MapType(99).full_name(), "99");
        assert_eq!(map_flags_name(0x41), "NO_PREALLOC|ZERO_SEED");
        assert_eq!(map_flags_name(1 << 30), "0x40000000");
    }

    #[test]
    fn attr_reads_past_its_end_are_zero() {
        let mut a = Attr::zeroed(8);
        a.set_u32(4, 7);
        assert_eq!(a.u32(4), 7);
        assert_eq!(a.u64(4), 7);
        assert_eq!(a.u32(100), 0);
    }
}
