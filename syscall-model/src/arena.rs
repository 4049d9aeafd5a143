//! kernel/bpf/arena.c: BPF_MAP_TYPE_ARENA, a sparse region of up to 4 GiB shared by programs
//! and user space through mmap. `max_entries` counts pages; a non-zero `map_extra` is the user
//! address the region must be mapped at. There are no elements: from the syscall a lookup is
//! EINVAL and every other element command EOPNOTSUPP (95).

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{map_flags::*, MapCreateAttr};

const FILE: &str = "kernel/bpf/arena.c";

/// `SZ_4G`: the largest region.
const SZ_4G: u64 = 1 << 32;

/// `arena_map_alloc()` (ARENA has no alloc_check).
pub fn arena_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "arena_map_alloc";
    ctx.enter(F, FILE, String::new);
    let p = ctx.profile();
    if p.arena_refused_eperm {
        return Err(ctx.fail(
            F,
            FILE,
            "this kernel build creates arena maps (the host's 6.18.44 refuses every one)",
            Errno::EPERM,
            String::new,
        ));
    }
    check!(ctx, F, p.arena_checks_jit && !p.jit_supports_arena => Errno::EOPNOTSUPP,
        "bpf_jit_supports_arena(): the JIT can address an arena",
        "arch={} jit_supports_arena={}", p.arch.name(), p.jit_supports_arena);
    let flags = attr.map_flags;
    check!(ctx, F, attr.key_size != 0 || attr.value_size != 0 || attr.max_entries == 0
            || flags & BPF_F_MMAPABLE == 0
            || flags & !(BPF_F_SEGV_ON_FAULT | BPF_F_MMAPABLE | BPF_F_NO_USER_CONV) != 0 => Errno::EINVAL,
        "key_size 0, value_size 0, max_entries (pages) > 0, BPF_F_MMAPABLE set and no flags but SEGV_ON_FAULT and NO_USER_CONV",
        "key_size={} value_size={} max_entries={} map_flags={flags:#x}", attr.key_size, attr.value_size, attr.max_entries);
    let page = p.page_size as u64;
    let extra = attr.map_extra;
    check!(ctx, F, extra & (page - 1) != 0 => Errno::EINVAL,
        "map_extra (the user address) is page aligned", "map_extra={extra:#x}");
    let vm_range = attr.max_entries as u64 * page;
    check!(ctx, F, vm_range > SZ_4G => Errno::E2BIG,
        "max_entries pages make at most 4 GiB", "{} pages = {vm_range:#x} bytes", attr.max_entries);
    // The kernel adds in u64 and lets it wrap.
    let last = extra.wrapping_add(vm_range).wrapping_sub(1);
    check!(ctx, F, extra >> 32 != last >> 32 => Errno::ERANGE,
        "the user range does not cross a 4 GiB boundary",
        "map_extra={extra:#x} last byte={last:#x}");
    Ok((MapDesc::from_attr(attr), Box::new(Arena)))
}

/// `struct bpf_arena`: its pages are reached only through mmap and programs.
struct Arena;

impl BpfMapOps for Arena {
    /// `arena_map_lookup_elem()`: an ERR_PTR, so the syscall returns EINVAL.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &mut [u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "arena_map_lookup_elem",
            FILE,
            "an arena has no elements to look up",
            Errno::EINVAL,
            String::new,
        ))
    }

    /// `arena_map_update_elem()`.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &[u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "arena_map_update_elem",
            FILE,
            "an arena has no elements to update",
            Errno::EOPNOTSUPP,
            String::new,
        ))
    }

    /// `arena_map_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _m: &MapDesc, _k: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "arena_map_delete_elem",
            FILE,
            "an arena has no elements to delete",
            Errno::EOPNOTSUPP,
            String::new,
        ))
    }

    /// `arena_map_get_next_key()`.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _m: &MapDesc,
        _k: Option<&[u8]>,
        _n: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "arena_map_get_next_key",
            FILE,
            "an arena has no keys to walk",
            Errno::EOPNOTSUPP,
            String::new,
        ))
    }

    /// `arena_map_mem_usage()`: 0 (pages are charged when they are faulted in).
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        0
    }
}
