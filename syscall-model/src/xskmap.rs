//! net/xdp/xskmap.c: BPF_MAP_TYPE_XSKMAP, an array of AF_XDP sockets for XDP redirects.
//!
//! Read from the torvalds/linux copy of the search index (commit 037dd13, from before the
//! `map_mem_usage` ops) and checked call by call against 6.12.107, 6.18.44 and 7.2.11, which
//! behave alike here; memlock (`xsk_map_mem_usage`) was measured on all three. From user space a value is an AF_XDP socket fd (4 bytes); a lookup
//! is always EOPNOTSUPP (`xsk_map_lookup_elem_sys_only`), whatever the key; a delete of an
//! empty slot succeeds. Unlike the sockmap, the flags and the index are checked before the fd.
//!
//! The model has no sockets (see [`crate::socket`]), so an update ends at the socket lookup
//! (EBADF or ENOTSOCK). After it, per the source, `xsk_map_update_elem` answers EOPNOTSUPP for a socket that
//! is not AF_XDP, then 0 if the slot already holds that very socket, EEXIST for NOEXIST on a
//! full slot and ENOENT for EXIST on an empty one; none of that is modelled.

use crate::arraymap::index_get_next_key;
use crate::arraymap::key_index as index;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::socket::sockfd_lookup;
use crate::uapi::{elem_flags::BPF_EXIST, map_flags::*, MapCreateAttr};

const FILE: &str = "net/xdp/xskmap.c";

/// `sizeof(struct xsk_map) - sizeof(struct bpf_map)`: the spinlock, padded before the array
/// of socket pointers.
const XSK_MAP_TAIL: u64 = 8;

/// `sizeof(struct xdp_sock *)`.
const PTR_SIZE: u64 = 8;

/// `xsk_map_alloc()`.
pub fn xsk_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "xsk_map_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4 || attr.value_size != 4
            || attr.map_flags & !(BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY) != 0 => Errno::EINVAL,
        "max_entries > 0, key_size == 4, value_size == 4 (a socket fd), flags within \
         NUMA_NODE, RDONLY and WRONLY",
        "max_entries={} key_size={} value_size={} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags);
    let m = XskMap {
        struct_size: ctx.profile().sizes.bpf_map + XSK_MAP_TAIL,
    };
    Ok((MapDesc::from_attr(attr), Box::new(m)))
}

/// `struct xsk_map`: `max_entries` socket slots, all empty in the model.
struct XskMap {
    /// `sizeof(struct xsk_map)` of the profiled kernel.
    struct_size: u64,
}

impl BpfMapOps for XskMap {
    /// `xsk_map_lookup_elem_sys_only()`: the syscall cannot read an XSKMAP.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "xsk_map_lookup_elem_sys_only",
            FILE,
            "the type can be read from the syscall (XSKMAP cannot, for any key)",
            Errno::EOPNOTSUPP,
            || format!("index {}", index(key)),
        ))
    }

    /// `xsk_map_update_elem()`, up to the socket.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "xsk_map_update_elem";
        let i = index(key);
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, i >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        let fd = u32::from_le_bytes(value[..4].try_into().unwrap_or([0; 4]));
        let sock = sockfd_lookup(ctx, fd)?;
        match sock {}
    }

    /// `xsk_map_delete_elem()`: an index past the end is EINVAL; an empty slot is no error.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "xsk_map_delete_elem";
        let i = index(key);
        check!(ctx, F, i >= map.max_entries => Errno::EINVAL,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        ctx.note(F, FILE, "the slot is cleared, empty or not", || {
            format!("slot {i}")
        });
        Ok(())
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        index_get_next_key(ctx, "xsk_map_get_next_key", FILE, map, key, next_key)
    }

    /// `xsk_map_mem_usage()`: `struct_size(m, xsk_map, max_entries)`.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + map.max_entries as u64 * PTR_SIZE
    }
}
