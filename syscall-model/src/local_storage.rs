//! kernel/bpf/local_storage.c: BPF_MAP_TYPE_CGROUP_STORAGE and
//! BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE (one ops table, `cgroup_storage_map_ops`, for both).
//!
//! A storage (one value, or one value per CPU) exists for each cgroup a program using the map
//! is attached to, keyed by the cgroup's inode id (8-byte key) or by the id and the attach type
//! (the 16-byte `struct bpf_cgroup_storage_key`). Only attaching a program creates one: the
//! syscall can neither create nor delete a storage, so for the model, which has no programs, a
//! map is always empty. LOOKUP and GET_NEXT_KEY find nothing (ENOENT), UPDATE only rewrites an
//! existing storage (ENOENT once its flags pass), DELETE is always EINVAL, and there is no
//! lookup-and-delete and no batch op (ENOTSUPP from the syscall).

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::hashtab::bpf_map_flags_access_ok;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr, MapType};

const FILE: &str = "kernel/bpf/local_storage.c";

/// `LOCAL_STORAGE_CREATE_FLAG_MASK`.
const LOCAL_STORAGE_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK;

/// `sizeof(struct bpf_cgroup_storage_key)`: a u64 cgroup inode id and a u32 attach type,
/// padded to 16.
const SIZEOF_CGROUP_STORAGE_KEY: u32 = 16;

/// `cgroup_storage_map_alloc()` (the type has no alloc_check).
pub fn cgroup_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "cgroup_storage_map_alloc";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    let percpu = attr.map_type() == MapType::PERCPU_CGROUP_STORAGE;
    // The shared value is bounded like every local storage; a per-CPU one also by
    // PCPU_MIN_UNIT_SIZE.
    let mut max_value_size = crate::bpf_local_storage::max_value_size(ctx);
    if percpu {
        max_value_size = max_value_size.min(ctx.profile().pcpu_min_unit_size);
    }
    let ks = attr.key_size;
    check!(ctx, F, ks != SIZEOF_CGROUP_STORAGE_KEY && ks != 8 => Errno::EINVAL,
        "key_size is 16 (struct bpf_cgroup_storage_key: cgroup id and attach type) or 8 (the cgroup id alone)",
        "key_size={ks}");
    check!(ctx, F, attr.value_size == 0 => Errno::EINVAL, "value_size > 0", "value_size={}", attr.value_size);
    check!(ctx, F, attr.value_size > max_value_size => Errno::E2BIG,
        "value_size at most BPF_LOCAL_STORAGE_MAX_VALUE_SIZE (and PCPU_MIN_UNIT_SIZE when per-CPU)",
        "value_size={} max={max_value_size}", attr.value_size);
    check!(ctx, F, attr.map_flags & !LOCAL_STORAGE_CREATE_FLAG_MASK != 0
            || !bpf_map_flags_access_ok(attr.map_flags) => Errno::EINVAL,
        "map_flags within NUMA_NODE and the access flags, not both *_PROG flags",
        "map_flags={:#x}", attr.map_flags);
    check!(ctx, F, attr.max_entries != 0 => Errno::EINVAL,
        "max_entries is 0 (storages come with attached programs, not with a size)",
        "max_entries={}", attr.max_entries);
    let map = CgroupStorageMap {
        percpu,
        percpu_cpu_flags: ctx.profile().percpu_cpu_flags,
        struct_size: ctx.profile().sizes.bpf_cgroup_storage_map,
    };
    Ok((MapDesc::from_attr(attr), Box::new(map)))
}

/// `struct bpf_cgroup_storage_map` with no storage linked: no program is ever attached in the
/// model, so its tree and list stay empty.
struct CgroupStorageMap {
    percpu: bool,
    /// 7.2's BPF_F_CPU series also changed the per-CPU update's flag rule.
    percpu_cpu_flags: bool,
    /// `sizeof(struct bpf_cgroup_storage_map)` of the profiled kernel.
    struct_size: u64,
}

/// `cgroup_storage_lookup()` finding no storage for the key.
fn no_storage(ctx: &mut Ctx, func: &'static str, key: &[u8]) -> Errno {
    ctx.fail(
        func,
        FILE,
        "a storage exists for the key (attaching a program to a cgroup creates it)",
        Errno::ENOENT,
        || format!("key {} (no program attached)", crate::trace::hex(key)),
    )
}

impl BpfMapOps for CgroupStorageMap {
    /// `bpf_percpu_cgroup_storage_copy()`, or the generic copy over `cgroup_storage_lookup_elem()`.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        let f = if self.percpu {
            "bpf_percpu_cgroup_storage_copy"
        } else {
            "cgroup_storage_lookup_elem"
        };
        Err(no_storage(ctx, f, key))
    }

    /// `bpf_percpu_cgroup_storage_update()` or `cgroup_storage_update_elem()`: the flags, then
    /// the storage (an update never creates one).
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        _value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        if self.percpu {
            const F: &str = "bpf_percpu_cgroup_storage_update";
            if self.percpu_cpu_flags {
                let allowed = BPF_ANY | BPF_EXIST | BPF_F_CPU | BPF_F_ALL_CPUS;
                check!(ctx, F, (flags as u32 as u64) & !allowed != 0 => Errno::EINVAL,
                    "the low 32 bits of flags within BPF_EXIST, BPF_F_CPU and BPF_F_ALL_CPUS",
                    "flags={flags:#x}");
            } else {
                check!(ctx, F, flags != BPF_ANY && flags != BPF_EXIST => Errno::EINVAL,
                    "flags are BPF_ANY or BPF_EXIST", "flags={flags:#x}");
            }
            return Err(no_storage(ctx, F, key));
        }
        const F: &str = "cgroup_storage_update_elem";
        check!(ctx, F, flags & !(BPF_F_LOCK | BPF_EXIST) != 0 => Errno::EINVAL,
            "flags within BPF_EXIST and BPF_F_LOCK", "flags={flags:#x}");
        check!(ctx, F, flags & BPF_F_LOCK != 0 && !map.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={flags:#x} has_spin_lock={}", map.has_spin_lock);
        Err(no_storage(ctx, F, key))
    }

    /// `cgroup_storage_delete_elem()`: storages go away with their programs, never by key.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, _key: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "cgroup_storage_delete_elem",
            FILE,
            "a cgroup storage cannot be deleted from the syscall",
            Errno::EINVAL,
            String::new,
        ))
    }

    /// `cgroup_storage_get_next_key()`: the map's list of storages is empty.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: Option<&[u8]>,
        _next_key: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "cgroup_storage_get_next_key",
            FILE,
            "the map holds a storage (one per attached cgroup and attach type)",
            Errno::ENOENT,
            || "no program attached: the list is empty".to_string(),
        ))
    }

    /// `cgroup_storage_map_usage()`: the map struct only; storages are not counted.
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        self.struct_size
    }
}
