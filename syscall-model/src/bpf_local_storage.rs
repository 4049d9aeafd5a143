//! kernel/bpf/bpf_local_storage.c: what SK_STORAGE, INODE_STORAGE, TASK_STORAGE and
//! CGRP_STORAGE share, the alloc_check and the map allocation behind each type's own map_alloc
//! (net/core/bpf_sk_storage.c, kernel/bpf/bpf_inode_storage.c, bpf_task_storage.c,
//! bpf_cgrp_storage.c).
//!
//! A local storage map must be created with BTF for its key and value (user space reads the
//! values back through BTF), so its alloc_check wants both type ids, and `map_create` then
//! resolves them in `btf_fd`. The model loads no BTF, so that last step always fails (EBADF
//! for an fd that is not open, EINVAL for any other file): every check before it is modelled
//! in the kernel's order, and no local storage map is ever created. Its element half is
//! therefore never reached.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{map_flags::*, MapCreateAttr};

const FILE: &str = "kernel/bpf/bpf_local_storage.c";

/// `BPF_LOCAL_STORAGE_CREATE_FLAG_MASK`.
const BPF_LOCAL_STORAGE_CREATE_FLAG_MASK: u32 = BPF_F_NO_PREALLOC | BPF_F_CLONE;

/// `MAX_BPF_STACK`.
const MAX_BPF_STACK: u64 = 512;

/// `BPF_LOCAL_STORAGE_MAX_VALUE_SIZE` (include/linux/bpf_local_storage.h): what fits in a
/// kmalloc'ed element next to the BPF stack, and in a u16 with the element header.
pub fn max_value_size(ctx: &Ctx) -> u32 {
    let p = ctx.profile();
    let elem = p.sizes.bpf_local_storage_elem;
    let by_kmalloc = p.kmalloc_max_size.saturating_sub(MAX_BPF_STACK + elem);
    let by_u16 = (u16::MAX as u64).saturating_sub(elem);
    by_kmalloc.min(by_u16) as u32
}

/// `bpf_local_storage_map_alloc_check()`: the alloc_check of all four local storage types.
pub fn bpf_local_storage_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "bpf_local_storage_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    let flags = attr.map_flags;
    check!(ctx, F, flags & !BPF_LOCAL_STORAGE_CREATE_FLAG_MASK != 0
            || flags & BPF_F_NO_PREALLOC == 0
            || attr.max_entries != 0
            || attr.key_size != 4
            || attr.value_size == 0
            || attr.btf_key_type_id == 0
            || attr.btf_value_type_id == 0 => Errno::EINVAL,
        "map_flags within NO_PREALLOC and CLONE with NO_PREALLOC set, max_entries 0, key_size 4 \
         (an fd), value_size > 0, and BTF type ids for both key and value",
        "map_flags={flags:#x} max_entries={} key_size={} value_size={} btf_key_type_id={} btf_value_type_id={}",
        attr.max_entries, attr.key_size, attr.value_size, attr.btf_key_type_id, attr.btf_value_type_id);
    let max = max_value_size(ctx);
    check!(ctx, F, attr.value_size > max => Errno::E2BIG,
        "value_size at most BPF_LOCAL_STORAGE_MAX_VALUE_SIZE (U16_MAX less the element header)",
        "value_size={} max={max}", attr.value_size);
    Ok(())
}

/// `bpf_local_storage_map_alloc()`: the buckets and the cache slot; it has no check the model
/// can fail (only allocation failures).
pub fn bpf_local_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("bpf_local_storage_map_alloc", FILE, || {
        format!("map_type={:?}", attr.map_type())
    });
    Ok((MapDesc::from_attr(attr), Box::new(LocalStorageMap)))
}

/// `struct bpf_local_storage_map`. `map_create` frees it again at the BTF step (the model has
/// no BTF), so no fd ever refers to one and none of its element ops can be called.
struct LocalStorageMap;

/// The element commands of a local storage map: unreachable in the model (see the module
/// comment). ENOSYS, which bpf(2) never returns, so it cannot pass for a kernel answer.
fn never_created(ctx: &mut Ctx, map: &MapDesc) -> Errno {
    ctx.fail(
        "bpf_local_storage_map_alloc",
        FILE,
        "a local storage map exists (it needs BTF, which the model does not load)",
        Errno::ENOSYS,
        || format!("{:?}", map.map_type),
    )
}

impl BpfMapOps for LocalStorageMap {
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        _key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        Err(never_created(ctx, map))
    }

    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        _key: &[u8],
        _value: &[u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        Err(never_created(ctx, map))
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, _key: &[u8]) -> Result<(), Errno> {
        Err(never_created(ctx, map))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        _key: Option<&[u8]>,
        _next_key: &mut [u8],
    ) -> Result<(), Errno> {
        Err(never_created(ctx, map))
    }

    /// `bpf_local_storage_map_mem_usage()` is never shown: the map gets no fd.
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        0
    }
}
