//! kernel/bpf/bloom_filter.c: BPF_MAP_TYPE_BLOOM_FILTER.
//!
//! A bit array and `nr_hash_funcs` hashes (jhash/jhash2 seeded with `hash_seed + i`). From the
//! syscall, UPDATE sets a value's bits and LOOKUP reads a value *from* user space and answers 0
//! if all its bits are set (false positives are possible, false negatives are not). With
//! BPF_F_ZERO_SEED the seed is 0, so the model sets the kernel's very bits, false positives
//! included.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::hashtab::bpf_map_flags_access_ok;
use crate::jhash::{jhash, jhash2};
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr};
use std::collections::HashSet;

const FILE: &str = "kernel/bpf/bloom_filter.c";

/// `BLOOM_CREATE_FLAG_MASK`.
const BLOOM_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_ZERO_SEED | BPF_F_ACCESS_MASK;

/// `bloom_map_alloc_check()`.
pub fn bloom_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "bloom_map_alloc_check";
    ctx.enter(F, FILE, String::new);
    let kmax = ctx.profile().kmalloc_max_size;
    check!(ctx, F, attr.value_size as u64 > kmax => Errno::E2BIG,
        "value_size <= KMALLOC_MAX_SIZE", "value_size={} KMALLOC_MAX_SIZE={kmax}", attr.value_size);
    Ok(())
}

/// `bloom_map_alloc()`.
pub fn bloom_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "bloom_map_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.key_size != 0 || attr.value_size == 0 || attr.max_entries == 0
            || attr.map_flags & !BLOOM_CREATE_FLAG_MASK != 0
            || !bpf_map_flags_access_ok(attr.map_flags)
            || attr.map_extra & !0xf != 0 => Errno::EINVAL,
        "key_size == 0, value_size > 0, max_entries > 0, flags within NUMA_NODE, ZERO_SEED and \
         the access flags, map_extra (the hash count) at most 15",
        "key_size={} value_size={} max_entries={} map_flags={:#x} map_extra={:#x}",
        attr.key_size, attr.value_size, attr.max_entries, attr.map_flags, attr.map_extra);
    let nr_hash_funcs = if attr.map_extra == 0 {
        5
    } else {
        attr.map_extra as u32
    };
    // nr_bits = max_entries * nr_hash_funcs / ln(2), computed as (n * k / 5) * 7.
    let bits = (attr.max_entries as u64 * nr_hash_funcs as u64)
        .checked_div(5)
        .map(|b| b * 7);
    let overflow = (attr.max_entries as u64)
        .checked_mul(nr_hash_funcs as u64)
        .is_none_or(|p| p > u32::MAX as u64)
        || bits.is_none_or(|b| b > u32::MAX as u64 || b > 1 << 31);
    let bitset_mask: u32 = if overflow {
        u32::MAX
    } else {
        let nr_bits = bits.unwrap_or(0);
        let nr_bits = if nr_bits <= 64 {
            64
        } else {
            nr_bits.next_power_of_two()
        };
        (nr_bits - 1) as u32
    };
    let hash_seed = if attr.has(BPF_F_ZERO_SEED) {
        0
    } else {
        ctx.kernel.get_random_u32()
    };
    ctx.note(F, FILE, "the bit array and hash functions", || {
        format!(
            "bits={} nr_hash_funcs={nr_hash_funcs} hash_seed={hash_seed:#x}",
            bitset_mask as u64 + 1
        )
    });
    let desc = MapDesc::from_attr(attr);
    Ok((
        desc,
        Box::new(Bloom {
            bitset_mask,
            hash_seed,
            nr_hash_funcs,
            bits: HashSet::new(),
            struct_size: ctx.profile().sizes.bpf_bloom_filter,
        }),
    ))
}

/// `struct bpf_bloom_filter`. Only the set bits are stored.
struct Bloom {
    bitset_mask: u32,
    hash_seed: u32,
    nr_hash_funcs: u32,
    bits: HashSet<u32>,
    /// `sizeof(struct bpf_bloom_filter)` of the profiled kernel.
    struct_size: u64,
}

impl Bloom {
    /// `hash()`: jhash2 over words when the value is a multiple of 4 bytes.
    fn hash(&self, value: &[u8], index: u32) -> u32 {
        let seed = self.hash_seed.wrapping_add(index);
        let h = if value.len().is_multiple_of(4) {
            let words: Vec<u32> = value
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            jhash2(&words, seed)
        } else {
            jhash(value, seed)
        };
        h & self.bitset_mask
    }
}

impl BpfMapOps for Bloom {
    /// The syscall's LOOKUP: `bloom_map_peek_elem` on a value read from user space.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bloom_map_peek_elem";
        let missing = (0..self.nr_hash_funcs).find(|i| !self.bits.contains(&self.hash(value, *i)));
        let seen = || match missing {
            Some(i) => format!("bit of hash {i} is clear"),
            None => format!("the bits of all {} hashes are set", self.nr_hash_funcs),
        };
        check!(ctx, F, missing.is_some() => Errno::ENOENT,
            "every hash function's bit is set (maybe present; never a false negative)",
            "{}", seen());
        Ok(())
    }

    /// The syscall's UPDATE: `bloom_map_push_elem`.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bloom_map_push_elem";
        check!(ctx, F, flags != BPF_ANY => Errno::EINVAL, "flags are BPF_ANY", "flags={flags:#x}");
        for i in 0..self.nr_hash_funcs {
            let h = self.hash(value, i);
            self.bits.insert(h);
        }
        Ok(())
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, _key: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "bloom_map_delete_elem",
            FILE,
            "a bloom filter cannot forget a value",
            Errno::EOPNOTSUPP,
            String::new,
        ))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        _key: Option<&[u8]>,
        _next_key: &mut [u8],
    ) -> Result<(), Errno> {
        Err(ctx.fail(
            "bloom_map_get_next_key",
            FILE,
            "a bloom filter has no keys to walk",
            Errno::EOPNOTSUPP,
            String::new,
        ))
    }

    /// `bloom_map_mem_usage()`.
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        let bytes = (self.bitset_mask as u64 + 1).div_ceil(8);
        self.struct_size + bytes.div_ceil(8) * 8
    }
}
