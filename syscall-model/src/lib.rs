//! A faithful, executable model of the Linux bpf(2) map syscalls.
//!
//! The model takes what the kernel takes (a command number, a user pointer to a
//! `union bpf_attr`, and a size), reaches user memory only through [`uaccess::UserMemory`],
//! and returns what the kernel returns: a value or an [`Errno`]. Its modules are named after
//! the kernel files they re-tell, and each check names the kernel function it mirrors:
//!
//! | module | kernel |
//! |---|---|
//! | [`syscall`] | kernel/bpf/syscall.c (`__sys_bpf`, `map_create`, the element commands) |
//! | [`hashtab`] | kernel/bpf/hashtab.c |
//! | [`bpf_lru_list`] | kernel/bpf/bpf_lru_list.c (the LRU hashes' lists) |
//! | [`arraymap`] | kernel/bpf/arraymap.c |
//! | [`lpm_trie`] | kernel/bpf/lpm_trie.c |
//! | [`queue_stack_maps`] | kernel/bpf/queue_stack_maps.c |
//! | [`bloom_filter`] | kernel/bpf/bloom_filter.c |
//! | [`ringbuf`] | kernel/bpf/ringbuf.c |
//! | [`stackmap`] | kernel/bpf/stackmap.c |
//! | [`local_storage`] | kernel/bpf/local_storage.c (CGROUP_STORAGE) |
//! | [`bpf_local_storage`] | kernel/bpf/bpf_local_storage.c |
//! | [`bpf_sk_storage`] | net/core/bpf_sk_storage.c |
//! | [`bpf_inode_storage`] | kernel/bpf/bpf_inode_storage.c |
//! | [`bpf_task_storage`] | kernel/bpf/bpf_task_storage.c |
//! | [`bpf_cgrp_storage`] | kernel/bpf/bpf_cgrp_storage.c |
//! | [`devmap`] | kernel/bpf/devmap.c |
//! | [`cpumap`] | kernel/bpf/cpumap.c |
//! | [`reuseport_array`] | kernel/bpf/reuseport_array.c |
//! | [`sock_map`] | net/core/sock_map.c |
//! | [`xskmap`] | net/xdp/xskmap.c |
//! | [`socket`] | net/socket.c (`sockfd_lookup`; the model has no sockets) |
//! | [`bpf_struct_ops`] | kernel/bpf/bpf_struct_ops.c |
//! | [`arena`] | kernel/bpf/arena.c |
//! | [`bpf_insn_array`] | kernel/bpf/bpf_insn_array.c |
//! | [`inode`] | kernel/bpf/inode.c (pinning in a bpffs) |
//! | [`map_in_map`] | kernel/bpf/map_in_map.c |
//! | [`bpf_types`] | include/linux/bpf_types.h (type number -> ops) |
//! | [`map`] | `struct bpf_map`, `struct bpf_map_ops` (include/linux/bpf.h) |
//! | [`jhash`] | include/linux/jhash.h |
//! | [`uapi`] | include/uapi/linux/bpf.h |
//! | [`fd`] | the process fd table (fs/file.c) |
//!
//! Version and architecture differences live in [`profile::KernelProfile`].

pub mod arena;
pub mod arraymap;
pub mod bloom_filter;
pub mod bpf_cgrp_storage;
pub mod bpf_inode_storage;
pub mod bpf_insn_array;
pub mod bpf_local_storage;
pub mod bpf_lru_list;
pub mod bpf_sk_storage;
pub mod bpf_struct_ops;
pub mod bpf_task_storage;
pub mod bpf_types;
pub mod cpumap;
pub mod ctx;
pub mod devmap;
pub mod errno;
pub mod fd;
pub mod hashtab;
pub mod index_hash;
pub mod inode;
pub mod jhash;
pub mod kernel;
pub mod local_storage;
pub mod lpm_trie;
pub mod map;
pub mod map_in_map;
pub mod profile;
pub mod queue_stack_maps;
pub mod reuseport_array;
pub mod ringbuf;
pub mod sock_map;
pub mod socket;
pub mod stackmap;
pub mod syscall;
pub mod trace;
pub mod uaccess;
pub mod uapi;
pub mod xskmap;

pub use errno::Errno;
pub use kernel::{Cred, Kernel, Process};
pub use profile::{Arch, KernelProfile};
