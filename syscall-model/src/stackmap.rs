//! kernel/bpf/stackmap.c: BPF_MAP_TYPE_STACK_TRACE. Stacks are collected by programs; from the
//! syscall the map only ever shows empty buckets.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{map_flags::*, MapCreateAttr};

const FILE: &str = "kernel/bpf/stackmap.c";

/// `STACK_CREATE_FLAG_MASK`.
const STACK_CREATE_FLAG_MASK: u32 =
    BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_STACK_BUILD_ID;

/// `sizeof(struct bpf_stack_build_id)`.
const SIZEOF_BUILD_ID: u32 = 32;

/// `stack_map_alloc()` (STACK_TRACE has no alloc_check).
pub fn stack_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "stack_map_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.map_flags & !STACK_CREATE_FLAG_MASK != 0 => Errno::EINVAL,
        "map_flags within NUMA_NODE, RDONLY, WRONLY and STACK_BUILD_ID", "map_flags={:#x}", attr.map_flags);
    let vs = attr.value_size;
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4 || vs < 8 || !vs.is_multiple_of(8) => Errno::EINVAL,
        "max_entries > 0, key_size 4, value_size a multiple of 8 (one u64 per frame)",
        "max_entries={} key_size={} value_size={vs}", attr.max_entries, attr.key_size);
    let max_stack = ctx.profile().perf_event_max_stack;
    if attr.has(BPF_F_STACK_BUILD_ID) {
        check!(ctx, F, !vs.is_multiple_of(SIZEOF_BUILD_ID) || vs / SIZEOF_BUILD_ID > max_stack => Errno::EINVAL,
            "with STACK_BUILD_ID, value_size is whole struct bpf_stack_build_id frames, at most perf_event_max_stack",
            "value_size={vs} frames={} max={max_stack}", vs / SIZEOF_BUILD_ID);
    } else {
        check!(ctx, F, vs / 8 > max_stack => Errno::EINVAL,
            "at most kernel.perf_event_max_stack frames", "frames={} max={max_stack}", vs / 8);
    }
    check!(ctx, F, attr.max_entries as u64 > 1 << 31 => Errno::E2BIG,
        "max_entries <= 2^31", "max_entries={}", attr.max_entries);
    let n_buckets = (attr.max_entries as u64).next_power_of_two() as u32;
    let sizes = ctx.profile().sizes;
    let s = StackMap {
        n_buckets,
        struct_size: sizes.bpf_stack_map,
        bucket_size: sizes.stack_map_bucket,
    };
    Ok((MapDesc::from_attr(attr), Box::new(s)))
}

/// `struct bpf_stack_map`: every bucket empty (nothing fills them from user space).
struct StackMap {
    n_buckets: u32,
    struct_size: u64,
    bucket_size: u64,
}

fn id(key: &[u8]) -> u32 {
    u32::from_le_bytes([key[0], key[1], key[2], key[3]])
}

impl BpfMapOps for StackMap {
    /// `bpf_stackmap_copy()`: ENOENT for an empty bucket or an id past the buckets.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        key: &[u8],
        _v: &mut [u8],
        _f: u64,
    ) -> Result<(), Errno> {
        let i = id(key);
        Err(ctx.fail(
            "bpf_stackmap_copy",
            FILE,
            "the bucket holds a stack",
            Errno::ENOENT,
            || {
                let why = if i < self.n_buckets {
                    "bucket empty"
                } else {
                    "past the buckets"
                };
                format!("id={i} n_buckets={}: {why}", self.n_buckets)
            },
        ))
    }

    /// `stack_map_update_elem()`: stacks cannot be written from user space.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &[u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "stack_map_update_elem",
            FILE,
            "stacks are only stored by programs",
            Errno::EINVAL,
            String::new,
        ))
    }

    /// `stack_map_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _m: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "stack_map_delete_elem";
        let i = id(key);
        check!(ctx, F, i >= self.n_buckets => Errno::E2BIG, "id < n_buckets", "id={i} n_buckets={}", self.n_buckets);
        Err(
            ctx.fail(F, FILE, "the bucket holds a stack", Errno::ENOENT, || {
                format!("bucket {i} is empty")
            }),
        )
    }

    /// `stack_map_get_next_key()`: the next non-empty bucket; there is none.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: Option<&[u8]>,
        _n: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "stack_map_get_next_key",
            FILE,
            "a non-empty bucket follows",
            Errno::ENOENT,
            String::new,
        ))
    }

    /// 7.2 lets LOOKUP_AND_DELETE reach the stack map (the copy and clear of a bucket).
    fn map_lookup_and_delete_elem(
        &mut self,
        ctx: &mut Ctx,
        m: &MapDesc,
        key: &[u8],
        v: &mut [u8],
        f: u64,
    ) -> Option<Result<(), Errno>> {
        if !ctx.profile().lookup_and_delete_stack_trace {
            return None;
        }
        Some(self.map_lookup_elem_sys(ctx, m, key, v, f))
    }

    /// `stack_map_mem_usage()`.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size
            + self.n_buckets as u64 * 8
            + map.max_entries as u64 * (self.bucket_size + map.value_size as u64)
    }
}
