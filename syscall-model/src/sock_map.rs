//! net/core/sock_map.c: BPF_MAP_TYPE_SOCKMAP (an array of sockets, `struct bpf_stab`) and
//! BPF_MAP_TYPE_SOCKHASH (a hash table of sockets, `struct bpf_shtab`).
//!
//! net/ is not in the local kernel cache: the rules were read from the torvalds/linux copies
//! of the search index (commits 0076cad and a44770f, both before 6.10; the `map_mem_usage`
//! ops from the patch that added them) and every modelled call was checked against
//! 6.12.107 (riscv64), 6.18.44 (x86_64) and 7.2.11 (riscv64), which agree. The struct sizes
//! behind memlock were measured on all three (the programs in `struct sk_psock_progs` come
//! with their links since 6.10, which the older copies do not show).
//!
//! From user space a value is a socket fd (4 or 8 bytes, as the map was created), and a lookup
//! answers the socket's cookie, which only fits an 8-byte value: with a 4-byte value every
//! lookup is ENOSPC, before the key is even looked at.
//!
//! The model has no sockets (see [`crate::socket`]), so no slot is ever filled: lookups and
//! deletes find nothing, a SOCKHASH walk is empty from the start, and an update ends at the
//! socket lookup (EBADF or ENOTSOCK). What the kernel checks after a socket was found is not
//! modelled and was not checked on a kernel; per the source, in its order,
//! `sock_map_update_elem_sys` goes on with:
//! - EINVAL if `sock->sk` is NULL; EOPNOTSUPP if the protocol has no `psock_update_sk_prot`
//!   (no sockmap support); EOPNOTSUPP if a TCP socket is neither established nor
//!   listening, or a unix stream socket not connected;
//! - SOCKMAP (`sock_map_update_common`): EINVAL if flags > BPF_EXIST, E2BIG if the index is
//!   past the end, then the psock link (EBUSY if the socket has conflicting programs), EEXIST
//!   for NOEXIST on a full slot, ENOENT for EXIST on an empty one;
//! - SOCKHASH (`sock_hash_update_common`): EINVAL if flags > BPF_EXIST, the psock link,
//!   EEXIST/ENOENT as above, E2BIG when a new key would pass max_entries.
//!
//! A stored socket also leaves the map by itself when it is closed (`sock_map_close`), and its
//! cookie is a global counter; both would need sockets in the fd table and in scenarios.

use crate::arraymap::key_index as index;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::socket::sockfd_lookup;
use crate::uapi::{map_flags::*, MapCreateAttr};

const FILE: &str = "net/core/sock_map.c";

/// `SOCK_CREATE_FLAG_MASK`: a NUMA node and the fd access flags, nothing else.
const SOCK_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;

/// `MAX_BPF_STACK`: the largest SOCKHASH key.
const MAX_BPF_STACK: u32 = 512;

/// `sizeof(struct bpf_shtab_bucket)`: an hlist head and a raw spinlock, padded to 16 bytes on
/// both 64-bit machines (no spinlock debugging in any profiled config).
const SHTAB_BUCKET_SIZE: u64 = 16;

/// `sizeof(struct bpf_stab) - sizeof(struct bpf_map)`: the `sks` pointer, `struct
/// sk_psock_progs` (four programs and, since 6.10, four links: 64 bytes) and the lock, padded.
const STAB_TAIL: u64 = 8 + 64 + 8;

/// `sizeof(struct bpf_shtab) - sizeof(struct bpf_map)`: the bucket pointer, `buckets_num` and
/// `elem_size`, the programs, and the element count, padded.
const SHTAB_TAIL: u64 = 8 + 8 + 64 + 8;

/// `sizeof(struct sock *)`.
const PTR_SIZE: u64 = 8;

/// A socket value's fd: SOCKMAP, SOCKHASH and REUSEPORT_SOCKARRAY take 4 or 8 bytes.
fn value_fd(map: &MapDesc, value: &[u8]) -> u64 {
    if map.value_size == 8 {
        u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]))
    } else {
        u32::from_le_bytes(value[..4].try_into().unwrap_or([0; 4])) as u64
    }
}

/// `sock_map_alloc()`.
pub fn sock_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "sock_map_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4
            || (attr.value_size != 4 && attr.value_size != 8)
            || attr.map_flags & !SOCK_CREATE_FLAG_MASK != 0 => Errno::EINVAL,
        "max_entries > 0, key_size == 4, value_size 4 or 8 (a socket fd), flags within \
         NUMA_NODE, RDONLY and WRONLY",
        "max_entries={} key_size={} value_size={} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags);
    let stab = BpfStab {
        struct_size: ctx.profile().sizes.bpf_map + STAB_TAIL,
    };
    Ok((MapDesc::from_attr(attr), Box::new(stab)))
}

/// `struct bpf_stab`: `max_entries` socket slots, all empty in the model.
struct BpfStab {
    /// `sizeof(struct bpf_stab)` of the profiled kernel.
    struct_size: u64,
}

/// `sock_map_update_elem_sys()`: the syscall's update for both types, up to the socket.
fn sock_map_update_elem_sys(ctx: &mut Ctx, map: &MapDesc, value: &[u8]) -> Result<(), Errno> {
    const F: &str = "sock_map_update_elem_sys";
    ctx.enter(F, FILE, || format!("{:?}", map.map_type));
    let ufd = value_fd(map, value);
    check!(ctx, F, ufd > i32::MAX as u64 => Errno::EINVAL,
        "the socket fd is at most S32_MAX (all 4 or 8 value bytes count)", "fd value {ufd:#x}");
    let sock = sockfd_lookup(ctx, ufd as u32)?;
    match sock {}
}

impl BpfMapOps for BpfStab {
    /// `sock_map_lookup_sys()`: the cookie of the socket in the slot.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "sock_map_lookup_sys";
        check!(ctx, F, map.value_size != 8 => Errno::ENOSPC,
            "value_size is 8 (the answer is a u64 socket cookie)", "value_size={}", map.value_size);
        let i = index(key);
        Err(ctx.fail(
            "__sock_map_lookup_elem",
            FILE,
            "the index is below max_entries and its slot holds a socket",
            Errno::ENOENT,
            || format!("index={i} max_entries={}: no socket", map.max_entries),
        ))
    }

    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        _key: &[u8],
        value: &[u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        sock_map_update_elem_sys(ctx, map, value)
    }

    /// `sock_map_delete_elem()`: out of range and empty are both EINVAL.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "sock_map_delete_elem";
        let i = index(key);
        check!(ctx, F, i >= map.max_entries => Errno::EINVAL,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        Err(ctx.fail(
            "__sock_map_delete",
            FILE,
            "the slot holds a socket",
            Errno::EINVAL,
            || format!("slot {i} is empty"),
        ))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        crate::arraymap::index_get_next_key(ctx, "sock_map_get_next_key", FILE, map, key, next_key)
    }

    /// `sock_map_mem_usage()`: the struct and one pointer per slot.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + map.max_entries as u64 * PTR_SIZE
    }
}

/// `sock_hash_alloc()`.
pub fn sock_hash_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "sock_hash_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.max_entries == 0 || attr.key_size == 0
            || (attr.value_size != 4 && attr.value_size != 8)
            || attr.map_flags & !SOCK_CREATE_FLAG_MASK != 0 => Errno::EINVAL,
        "max_entries > 0, key_size > 0, value_size 4 or 8 (a socket fd), flags within \
         NUMA_NODE, RDONLY and WRONLY",
        "max_entries={} key_size={} value_size={} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags);
    check!(ctx, F, attr.key_size > MAX_BPF_STACK => Errno::E2BIG,
        "key_size <= MAX_BPF_STACK (512)", "key_size={}", attr.key_size);
    // roundup_pow_of_two() works in unsigned long: past 2^31 it is 2^32, which the u32 field
    // truncates to 0.
    let buckets_num = (attr.max_entries as u64).next_power_of_two() as u32;
    check!(ctx, F, buckets_num == 0
            || buckets_num as u64 > u32::MAX as u64 / SHTAB_BUCKET_SIZE => Errno::EINVAL,
        "the bucket array (max_entries rounded up to a power of two, 16 bytes a bucket) fits \
         in 4 GiB",
        "buckets_num={buckets_num} (max_entries={})", attr.max_entries);
    let htab = BpfShtab {
        buckets_num,
        struct_size: ctx.profile().sizes.bpf_map + SHTAB_TAIL,
    };
    Ok((MapDesc::from_attr(attr), Box::new(htab)))
}

/// `struct bpf_shtab`: buckets of (key, socket) elements, all empty in the model.
struct BpfShtab {
    buckets_num: u32,
    /// `sizeof(struct bpf_shtab)` of the profiled kernel.
    struct_size: u64,
}

impl BpfMapOps for BpfShtab {
    /// `sock_hash_lookup_sys()`.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "sock_hash_lookup_sys";
        check!(ctx, F, map.value_size != 8 => Errno::ENOSPC,
            "value_size is 8 (the answer is a u64 socket cookie)", "value_size={}", map.value_size);
        Err(ctx.fail(
            "__sock_hash_lookup_elem",
            FILE,
            "the key is in the table",
            Errno::ENOENT,
            || format!("key {}: no socket", crate::trace::hex(key)),
        ))
    }

    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        _key: &[u8],
        value: &[u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        sock_map_update_elem_sys(ctx, map, value)
    }

    /// `sock_hash_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "sock_hash_delete_elem",
            FILE,
            "the key is in the table",
            Errno::ENOENT,
            || format!("key {}: no socket", crate::trace::hex(key)),
        ))
    }

    /// `sock_hash_get_next_key()`: an unknown key restarts the walk at the first bucket, and
    /// with no element in any bucket the walk ends at once.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: Option<&[u8]>,
        _next_key: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "sock_hash_get_next_key",
            FILE,
            "a bucket from there on holds an element",
            Errno::ENOENT,
            || format!("{} buckets, all empty", self.buckets_num),
        ))
    }

    /// `sock_hash_mem_usage()`: the struct and the buckets (elements would add their size).
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        self.struct_size + self.buckets_num as u64 * SHTAB_BUCKET_SIZE
    }
}
