//! kernel/bpf/ringbuf.c: BPF_MAP_TYPE_RINGBUF and BPF_MAP_TYPE_USER_RINGBUF (the same
//! allocation and element ops; only mmap and poll differ: a user ring buffer is written by user
//! space and drained by programs). Data moves through mmap and poll; every element command from
//! the syscall is ENOTSUPP (524).

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{map_flags::*, MapCreateAttr, MapType};

const FILE: &str = "kernel/bpf/ringbuf.c";

/// `RINGBUF_CREATE_FLAG_MASK` (7.2 adds BPF_F_RB_OVERWRITE, a profile matter).
const RINGBUF_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE;

/// `ringbuf_map_alloc()`.
pub fn ringbuf_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "ringbuf_map_alloc";
    ctx.enter(F, FILE, String::new);
    let mask = RINGBUF_CREATE_FLAG_MASK
        | if ctx.profile().ringbuf_overwrite {
            BPF_F_RB_OVERWRITE
        } else {
            0
        };
    check!(ctx, F, attr.map_flags & !mask != 0 => Errno::EINVAL,
        "map_flags within NUMA_NODE (access flags are refused too)", "map_flags={:#x}", attr.map_flags);
    if attr.has(BPF_F_RB_OVERWRITE) {
        let t = attr.map_type();
        check!(ctx, F, t != MapType::RINGBUF => Errno::EINVAL,
            "BPF_F_RB_OVERWRITE only on a RINGBUF (not a USER_RINGBUF)", "map_type={t:?}");
    }
    let page = ctx.profile().page_size;
    check!(ctx, F, attr.key_size != 0 || attr.value_size != 0 || !attr.max_entries.is_power_of_two()
            || !attr.max_entries.is_multiple_of(page) => Errno::EINVAL,
        "key_size 0, value_size 0, max_entries a power of two and a multiple of PAGE_SIZE",
        "key_size={} value_size={} max_entries={}", attr.key_size, attr.value_size, attr.max_entries);
    let sizes = ctx.profile().sizes;
    let rb = Ringbuf {
        struct_size: sizes.bpf_ringbuf_map,
        meta_pages: sizes.ringbuf_meta_pages,
        page: page as u64,
    };
    Ok((MapDesc::from_attr(attr), Box::new(rb)))
}

struct Ringbuf {
    struct_size: u64,
    meta_pages: u64,
    page: u64,
}

fn enotsupp(ctx: &mut Ctx, func: &'static str) -> Errno {
    ctx.fail(
        func,
        FILE,
        "a ring buffer has no elements for the syscall (use mmap)",
        Errno::ENOTSUPP,
        String::new,
    )
}

impl BpfMapOps for Ringbuf {
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &mut [u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(enotsupp(ctx, "ringbuf_map_lookup_elem"))
    }

    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &[u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(enotsupp(ctx, "ringbuf_map_update_elem"))
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, _m: &MapDesc, _k: &[u8]) -> Result<(), Errno> {
        Err(enotsupp(ctx, "ringbuf_map_delete_elem"))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: Option<&[u8]>,
        _n: &mut [u8],
    ) -> Result<(), Errno> {
        Err(enotsupp(ctx, "ringbuf_map_get_next_key"))
    }

    /// `ringbuf_map_mem_usage()`: the struct, the pages (metadata and data), and the page
    /// pointers (data pages are mapped twice).
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        let data_pages = map.max_entries as u64 / self.page;
        let nr_pages = self.meta_pages + data_pages;
        self.struct_size + nr_pages * self.page + (self.meta_pages + 2 * data_pages) * 8
    }
}
