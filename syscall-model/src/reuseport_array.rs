//! kernel/bpf/reuseport_array.c: BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, an array of SO_REUSEPORT
//! sockets for `SK_REUSEPORT` programs.
//!
//! The file is the same in 6.12 and 7.2, and 6.18.44 behaves alike. Creation is the array
//! rules (`array_map_alloc_check`) after a value size of 4 or 8 bytes; unlike the fd arrays,
//! the program access flags are accepted. From user space a value is a socket fd; a lookup
//! answers the socket's cookie, which only fits an 8-byte value (ENOSPC otherwise).
//!
//! The model has no sockets (see [`crate::socket`]), so no slot is ever filled and an update
//! ends at the socket lookup (EBADF or ENOTSOCK). After it, per the source (not modelled, not
//! checked on a kernel), `reuseport_array_update_check`, run once without and once under
//! `reuseport_lock`, answers in order: EEXIST for NOEXIST on a full slot, ENOENT for EXIST on
//! an empty one, ENOTSUPP unless the socket is TCP or UDP, IPv4 or IPv6, stream or datagram,
//! EINVAL unless it is RCU-freed, hashed (bound, or listening for TCP) and in a reuseport group
//! (`sk_reuseport_cb`, which net/core/sock_reuseport.c's `reuseport_alloc` sets up on the
//! bind/hash path of a SO_REUSEPORT socket or when a reuseport program is attached), and EBUSY
//! if its `sk_user_data` is taken (it is already in a reuseport array).

use crate::arraymap::array_map_alloc_check;
use crate::arraymap::index_get_next_key;
use crate::arraymap::key_index as index;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::socket::sockfd_lookup;
use crate::uapi::{elem_flags::BPF_EXIST, MapCreateAttr};

const FILE: &str = "kernel/bpf/reuseport_array.c";

/// `sizeof(struct sock *)`: one slot.
const PTR_SIZE: u64 = 8;

/// `reuseport_array_alloc_check()`.
pub fn reuseport_array_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "reuseport_array_alloc_check";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.value_size != 4 && attr.value_size != 8 => Errno::EINVAL,
        "value_size is 4 or 8 (a socket fd)", "value_size={}", attr.value_size);
    array_map_alloc_check(ctx, attr)
}

/// `reuseport_array_alloc()`: nothing left to check but the allocation itself.
pub fn reuseport_array_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("reuseport_array_alloc", FILE, String::new);
    let array = ReuseportArray {
        struct_size: ctx.profile().sizes.bpf_map,
    };
    Ok((MapDesc::from_attr(attr), Box::new(array)))
}

/// `struct reuseport_array`: the map and one socket pointer per slot, all empty in the model.
struct ReuseportArray {
    /// `sizeof(struct reuseport_array)`, which is `sizeof(struct bpf_map)`.
    struct_size: u64,
}

impl BpfMapOps for ReuseportArray {
    /// `bpf_fd_reuseport_array_lookup_elem()`: the cookie of the socket in the slot.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bpf_fd_reuseport_array_lookup_elem";
        check!(ctx, F, map.value_size != 8 => Errno::ENOSPC,
            "value_size is 8 (the answer is a u64 socket cookie)", "value_size={}", map.value_size);
        let i = index(key);
        Err(ctx.fail(
            F,
            FILE,
            "the index is below max_entries and its slot holds a socket",
            Errno::ENOENT,
            || format!("index={i} max_entries={}: no socket", map.max_entries),
        ))
    }

    /// `bpf_fd_reuseport_array_update_elem()`, up to the socket.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bpf_fd_reuseport_array_update_elem";
        let i = index(key);
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, i >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        // An 8-byte value must fit an int; a 4-byte one is an int already (a negative fd is
        // simply not open).
        let fd = if map.value_size == 8 {
            let fd64 = u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]));
            check!(ctx, F, fd64 > i32::MAX as u64 => Errno::EINVAL,
                "an 8-byte socket fd is at most S32_MAX", "fd value {fd64:#x}");
            fd64 as u32
        } else {
            u32::from_le_bytes(value[..4].try_into().unwrap_or([0; 4]))
        };
        let sock = sockfd_lookup(ctx, fd)?;
        match sock {}
    }

    /// `reuseport_array_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "reuseport_array_delete_elem";
        let i = index(key);
        check!(ctx, F, i >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        Err(
            ctx.fail(F, FILE, "the slot holds a socket", Errno::ENOENT, || {
                format!("slot {i} is empty")
            }),
        )
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        index_get_next_key(
            ctx,
            "reuseport_array_get_next_key",
            FILE,
            map,
            key,
            next_key,
        )
    }

    /// `reuseport_array_mem_usage()`: `struct_size(array, ptrs, max_entries)`.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + map.max_entries as u64 * PTR_SIZE
    }
}
