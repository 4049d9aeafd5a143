//! include/linux/bpf_types.h: which ops serve which map type.
//!
//! The kernel's `bpf_map_types[]` maps a type number to its `struct bpf_map_ops`. Here the
//! allocation half of those ops (`map_alloc_check`, `map_alloc`) is a [`BpfMapTypeOps`]
//! value; the element half is the [`BpfMapOps`] trait object that
//! `map_alloc` returns.

use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{MapCreateAttr, MapType};
use crate::{
    arena, arraymap, bloom_filter, bpf_cgrp_storage, bpf_inode_storage, bpf_insn_array,
    bpf_local_storage, bpf_sk_storage, bpf_struct_ops, bpf_task_storage, cpumap, devmap, hashtab,
    local_storage, lpm_trie, queue_stack_maps, reuseport_array, ringbuf, sock_map, stackmap,
    xskmap,
};

pub type MapAllocCheck = fn(&mut Ctx, &MapCreateAttr) -> Result<(), Errno>;
pub type MapAlloc = fn(&mut Ctx, &MapCreateAttr) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno>;

/// The creation half of one `struct bpf_map_ops`.
pub struct BpfMapTypeOps {
    /// The kernel's name for the ops table (`htab_map_ops`).
    pub name: &'static str,
    /// The file that defines it.
    pub file: &'static str,
    pub map_alloc_check: Option<MapAllocCheck>,
    pub map_alloc: MapAlloc,
}

pub static ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "array_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::array_map_alloc_check),
    map_alloc: arraymap::array_map_alloc,
};

pub static PERCPU_ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "percpu_array_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::array_map_alloc_check),
    map_alloc: arraymap::array_map_alloc,
};

pub static HTAB_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "htab_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::htab_map_alloc_check),
    map_alloc: hashtab::htab_map_alloc,
};

pub static HTAB_PERCPU_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "htab_percpu_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::htab_map_alloc_check),
    map_alloc: hashtab::htab_map_alloc,
};

pub static QUEUE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "queue_map_ops",
    file: "kernel/bpf/queue_stack_maps.c",
    map_alloc_check: Some(queue_stack_maps::queue_stack_map_alloc_check),
    map_alloc: queue_stack_maps::queue_stack_map_alloc,
};

pub static STACK_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "stack_map_ops",
    file: "kernel/bpf/queue_stack_maps.c",
    map_alloc_check: Some(queue_stack_maps::queue_stack_map_alloc_check),
    map_alloc: queue_stack_maps::queue_stack_map_alloc,
};

pub static BLOOM_FILTER_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "bloom_filter_map_ops",
    file: "kernel/bpf/bloom_filter.c",
    map_alloc_check: Some(bloom_filter::bloom_map_alloc_check),
    map_alloc: bloom_filter::bloom_map_alloc,
};

pub static TRIE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "trie_map_ops",
    file: "kernel/bpf/lpm_trie.c",
    map_alloc_check: None,
    map_alloc: lpm_trie::trie_alloc,
};

pub static PROG_ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "prog_array_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::fd_array_map_alloc_check),
    map_alloc: arraymap::fd_array_map_alloc,
};

pub static PERF_EVENT_ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "perf_event_array_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::fd_array_map_alloc_check),
    map_alloc: arraymap::fd_array_map_alloc,
};

pub static CGROUP_ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "cgroup_array_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::fd_array_map_alloc_check),
    map_alloc: arraymap::fd_array_map_alloc,
};

pub static ARRAY_OF_MAPS_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "array_of_maps_map_ops",
    file: "kernel/bpf/arraymap.c",
    map_alloc_check: Some(arraymap::fd_array_map_alloc_check),
    map_alloc: arraymap::fd_array_map_alloc,
};

pub static HTAB_OF_MAPS_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "htab_of_maps_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::fd_htab_map_alloc_check),
    map_alloc: hashtab::htab_of_map_alloc,
};

pub static HTAB_LRU_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "htab_lru_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::htab_map_alloc_check),
    map_alloc: hashtab::htab_map_alloc,
};

pub static HTAB_LRU_PERCPU_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "htab_lru_percpu_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::htab_map_alloc_check),
    map_alloc: hashtab::htab_map_alloc,
};

pub static RINGBUF_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "ringbuf_map_ops",
    file: "kernel/bpf/ringbuf.c",
    map_alloc_check: None,
    map_alloc: ringbuf::ringbuf_map_alloc,
};

pub static STACK_TRACE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "stack_trace_map_ops",
    file: "kernel/bpf/stackmap.c",
    map_alloc_check: None,
    map_alloc: stackmap::stack_map_alloc,
};

/// CGROUP_STORAGE and PERCPU_CGROUP_STORAGE share this table.
pub static CGROUP_STORAGE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "cgroup_storage_map_ops",
    file: "kernel/bpf/local_storage.c",
    map_alloc_check: None,
    map_alloc: local_storage::cgroup_storage_map_alloc,
};

pub static SK_STORAGE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "sk_storage_map_ops",
    file: "net/core/bpf_sk_storage.c",
    map_alloc_check: Some(bpf_local_storage::bpf_local_storage_map_alloc_check),
    map_alloc: bpf_sk_storage::bpf_sk_storage_map_alloc,
};

pub static INODE_STORAGE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "inode_storage_map_ops",
    file: "kernel/bpf/bpf_inode_storage.c",
    map_alloc_check: Some(bpf_local_storage::bpf_local_storage_map_alloc_check),
    map_alloc: bpf_inode_storage::inode_storage_map_alloc,
};

pub static TASK_STORAGE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "task_storage_map_ops",
    file: "kernel/bpf/bpf_task_storage.c",
    map_alloc_check: Some(bpf_local_storage::bpf_local_storage_map_alloc_check),
    map_alloc: bpf_task_storage::task_storage_map_alloc,
};

pub static CGRP_STORAGE_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "cgrp_storage_map_ops",
    file: "kernel/bpf/bpf_cgrp_storage.c",
    map_alloc_check: Some(bpf_local_storage::bpf_local_storage_map_alloc_check),
    map_alloc: bpf_cgrp_storage::cgroup_storage_map_alloc,
};

pub static DEV_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "dev_map_ops",
    file: "kernel/bpf/devmap.c",
    map_alloc_check: Some(devmap::dev_map_alloc_check),
    map_alloc: devmap::dev_map_alloc,
};

pub static DEV_MAP_HASH_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "dev_map_hash_ops",
    file: "kernel/bpf/devmap.c",
    map_alloc_check: Some(devmap::dev_map_alloc_check),
    map_alloc: devmap::dev_map_alloc,
};

pub static CPU_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "cpu_map_ops",
    file: "kernel/bpf/cpumap.c",
    map_alloc_check: None,
    map_alloc: cpumap::cpu_map_alloc,
};

pub static SOCK_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "sock_map_ops",
    file: "net/core/sock_map.c",
    map_alloc_check: None,
    map_alloc: sock_map::sock_map_alloc,
};

pub static SOCK_HASH_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "sock_hash_ops",
    file: "net/core/sock_map.c",
    map_alloc_check: None,
    map_alloc: sock_map::sock_hash_alloc,
};

pub static XSK_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "xsk_map_ops",
    file: "net/xdp/xskmap.c",
    map_alloc_check: None,
    map_alloc: xskmap::xsk_map_alloc,
};

pub static REUSEPORT_ARRAY_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "reuseport_array_ops",
    file: "kernel/bpf/reuseport_array.c",
    map_alloc_check: Some(reuseport_array::reuseport_array_alloc_check),
    map_alloc: reuseport_array::reuseport_array_alloc,
};

pub static USER_RINGBUF_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "user_ringbuf_map_ops",
    file: "kernel/bpf/ringbuf.c",
    map_alloc_check: None,
    map_alloc: ringbuf::ringbuf_map_alloc,
};

pub static BPF_STRUCT_OPS_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "bpf_struct_ops_map_ops",
    file: "kernel/bpf/bpf_struct_ops.c",
    map_alloc_check: Some(bpf_struct_ops::bpf_struct_ops_map_alloc_check),
    map_alloc: bpf_struct_ops::bpf_struct_ops_map_alloc,
};

pub static ARENA_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "arena_map_ops",
    file: "kernel/bpf/arena.c",
    map_alloc_check: None,
    map_alloc: arena::arena_map_alloc,
};

pub static INSN_ARRAY_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "insn_array_map_ops",
    file: "kernel/bpf/bpf_insn_array.c",
    map_alloc_check: Some(bpf_insn_array::insn_array_alloc_check),
    map_alloc: bpf_insn_array::insn_array_alloc,
};

pub static RHTAB_MAP_OPS: BpfMapTypeOps = BpfMapTypeOps {
    name: "rhtab_map_ops",
    file: "kernel/bpf/hashtab.c",
    map_alloc_check: Some(hashtab::rhtab_map_alloc_check),
    map_alloc: hashtab::rhtab_map_alloc,
};

/// What the type table holds for a number below `__MAX_BPF_MAP_TYPE`.
pub enum MapTypeEntry {
    /// The model implements the type.
    Modelled(&'static BpfMapTypeOps),
    /// The kernel has ops for it but the model does not implement the type yet.
    NotModelled,
    /// No ops: BPF_MAP_TYPE_UNSPEC (the kernel returns EINVAL).
    NoOps,
}

/// `bpf_map_types[type]`, for a type number the profile's kernel knows.
pub fn bpf_map_types(t: MapType) -> MapTypeEntry {
    match t {
        MapType::UNSPEC => MapTypeEntry::NoOps,
        MapType::HASH => MapTypeEntry::Modelled(&HTAB_MAP_OPS),
        MapType::ARRAY => MapTypeEntry::Modelled(&ARRAY_MAP_OPS),
        MapType::PERCPU_HASH => MapTypeEntry::Modelled(&HTAB_PERCPU_MAP_OPS),
        MapType::PERCPU_ARRAY => MapTypeEntry::Modelled(&PERCPU_ARRAY_MAP_OPS),
        MapType::LRU_HASH => MapTypeEntry::Modelled(&HTAB_LRU_MAP_OPS),
        MapType::LRU_PERCPU_HASH => MapTypeEntry::Modelled(&HTAB_LRU_PERCPU_MAP_OPS),
        MapType::LPM_TRIE => MapTypeEntry::Modelled(&TRIE_MAP_OPS),
        MapType::RINGBUF => MapTypeEntry::Modelled(&RINGBUF_MAP_OPS),
        MapType::STACK_TRACE => MapTypeEntry::Modelled(&STACK_TRACE_MAP_OPS),
        MapType::PROG_ARRAY => MapTypeEntry::Modelled(&PROG_ARRAY_MAP_OPS),
        MapType::PERF_EVENT_ARRAY => MapTypeEntry::Modelled(&PERF_EVENT_ARRAY_MAP_OPS),
        MapType::CGROUP_ARRAY => MapTypeEntry::Modelled(&CGROUP_ARRAY_MAP_OPS),
        MapType::ARRAY_OF_MAPS => MapTypeEntry::Modelled(&ARRAY_OF_MAPS_MAP_OPS),
        MapType::HASH_OF_MAPS => MapTypeEntry::Modelled(&HTAB_OF_MAPS_MAP_OPS),
        MapType::QUEUE => MapTypeEntry::Modelled(&QUEUE_MAP_OPS),
        MapType::STACK => MapTypeEntry::Modelled(&STACK_MAP_OPS),
        MapType::BLOOM_FILTER => MapTypeEntry::Modelled(&BLOOM_FILTER_MAP_OPS),
        MapType::CGROUP_STORAGE | MapType::PERCPU_CGROUP_STORAGE => {
            MapTypeEntry::Modelled(&CGROUP_STORAGE_MAP_OPS)
        }
        MapType::SK_STORAGE => MapTypeEntry::Modelled(&SK_STORAGE_MAP_OPS),
        MapType::INODE_STORAGE => MapTypeEntry::Modelled(&INODE_STORAGE_MAP_OPS),
        MapType::TASK_STORAGE => MapTypeEntry::Modelled(&TASK_STORAGE_MAP_OPS),
        MapType::CGRP_STORAGE => MapTypeEntry::Modelled(&CGRP_STORAGE_MAP_OPS),
        MapType::DEVMAP => MapTypeEntry::Modelled(&DEV_MAP_OPS),
        MapType::DEVMAP_HASH => MapTypeEntry::Modelled(&DEV_MAP_HASH_OPS),
        MapType::CPUMAP => MapTypeEntry::Modelled(&CPU_MAP_OPS),
        MapType::SOCKMAP => MapTypeEntry::Modelled(&SOCK_MAP_OPS),
        MapType::SOCKHASH => MapTypeEntry::Modelled(&SOCK_HASH_OPS),
        MapType::XSKMAP => MapTypeEntry::Modelled(&XSK_MAP_OPS),
        MapType::REUSEPORT_SOCKARRAY => MapTypeEntry::Modelled(&REUSEPORT_ARRAY_OPS),
        MapType::USER_RINGBUF => MapTypeEntry::Modelled(&USER_RINGBUF_MAP_OPS),
        MapType::STRUCT_OPS => MapTypeEntry::Modelled(&BPF_STRUCT_OPS_MAP_OPS),
        MapType::ARENA => MapTypeEntry::Modelled(&ARENA_MAP_OPS),
        MapType::INSN_ARRAY => MapTypeEntry::Modelled(&INSN_ARRAY_MAP_OPS),
        MapType::RHASH => MapTypeEntry::Modelled(&RHTAB_MAP_OPS),
        _ => MapTypeEntry::NotModelled,
    }
}

/// Which capability `map_create` demands for a type (the "privileged map type" switch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapPriv {
    /// Creatable without capabilities (when unprivileged bpf is enabled).
    Unprivileged,
    /// CAP_BPF.
    Bpf,
    /// CAP_NET_ADMIN.
    NetAdmin,
}

/// The privilege switch of `map_create()` (6.12 and later).
pub fn map_priv(t: MapType) -> MapPriv {
    match t {
        MapType::ARRAY
        | MapType::PERCPU_ARRAY
        | MapType::PROG_ARRAY
        | MapType::PERF_EVENT_ARRAY
        | MapType::CGROUP_ARRAY
        | MapType::ARRAY_OF_MAPS
        | MapType::HASH
        | MapType::PERCPU_HASH
        | MapType::HASH_OF_MAPS
        | MapType::RINGBUF
        | MapType::USER_RINGBUF
        | MapType::CGROUP_STORAGE
        | MapType::PERCPU_CGROUP_STORAGE
        | MapType::RHASH => MapPriv::Unprivileged,
        MapType::SOCKMAP
        | MapType::SOCKHASH
        | MapType::DEVMAP
        | MapType::DEVMAP_HASH
        | MapType::XSKMAP => MapPriv::NetAdmin,
        _ => MapPriv::Bpf,
    }
}

/// Which `map_meta_equal` a type's ops have: none (it cannot be an inner map), the generic
/// `bpf_map_meta_equal`, or `array_map_meta_equal` (which also compares max_entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaEqual {
    None,
    Generic,
    Array,
}

pub fn map_meta_equal_kind(t: MapType, profile: &crate::profile::KernelProfile) -> MetaEqual {
    match t {
        MapType::ARRAY => MetaEqual::Array,
        MapType::PERCPU_ARRAY if profile.percpu_array_meta_equal_checks_max_entries => {
            MetaEqual::Array
        }
        // xsk_map_meta_equal() compares max_entries too; an XSKMAP never has BPF_F_INNER_MAP,
        // so array_map_meta_equal's rule is the same.
        MapType::XSKMAP => MetaEqual::Array,
        MapType::PROG_ARRAY
        | MapType::ARRAY_OF_MAPS
        | MapType::HASH_OF_MAPS
        | MapType::STRUCT_OPS
        | MapType::CGROUP_STORAGE
        | MapType::PERCPU_CGROUP_STORAGE
        | MapType::INSN_ARRAY => MetaEqual::None,
        _ => MetaEqual::Generic,
    }
}
