//! kernel/bpf/bpf_insn_array.c (7.2): BPF_MAP_TYPE_INSN_ARRAY, an array of
//! `struct bpf_insn_array_value { u32 orig_off, xlated_off, jitted_off, pad }` that a program
//! load fills with where each listed instruction ended up (a jump table for the program).
//!
//! From user space it behaves like a fixed array of `max_entries` zeroed values: an update may
//! only set `orig_off` (the other offsets are the kernel's to write, so they must be 0, and the
//! padding is ignored), nothing can be deleted, and the keys walk like an array's. The map is
//! created with BPF_F_RDONLY_PROG added to its flags: programs may not write it.

use crate::arraymap::array_get_next_key;
use crate::arraymap::key_index as index;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr};
use std::collections::HashMap;

const FILE: &str = "kernel/bpf/bpf_insn_array.c";

/// `sizeof(struct bpf_insn_array_value)`.
const VALUE_SIZE: u32 = 16;

/// `insn_array_alloc_check()`.
pub fn insn_array_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "insn_array_alloc_check";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4 || attr.value_size != VALUE_SIZE
            || attr.map_flags != 0 => Errno::EINVAL,
        "max_entries > 0, key_size 4, value_size 16 (struct bpf_insn_array_value) and no map_flags",
        "max_entries={} key_size={} value_size={} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags);
    Ok(())
}

/// `insn_array_alloc()`.
pub fn insn_array_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "insn_array_alloc";
    ctx.enter(F, FILE, String::new);
    let mut desc = MapDesc::from_attr(attr);
    desc.map_flags |= BPF_F_RDONLY_PROG;
    ctx.note(
        F,
        FILE,
        "programs may not write the map: BPF_F_RDONLY_PROG joins its flags",
        || format!("map_flags={:#x}", desc.map_flags),
    );
    Ok((
        desc,
        Box::new(InsnArray {
            orig_off: HashMap::new(),
            struct_size: ctx.profile().sizes.bpf_array,
        }),
    ))
}

/// `struct bpf_insn_array`: only the `orig_off` user space wrote (every other byte is 0 until
/// a program load fills the offsets, which the model never does).
struct InsnArray {
    orig_off: HashMap<u32, u32>,
    struct_size: u64,
}

impl BpfMapOps for InsnArray {
    /// `insn_array_lookup_elem()`: the whole 16-byte value of an index below max_entries.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "insn_array_lookup_elem";
        let i = index(key);
        check!(ctx, F, i >= map.max_entries => Errno::ENOENT,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        value.fill(0);
        let off = self.orig_off.get(&i).copied().unwrap_or(0);
        value[..4].copy_from_slice(&off.to_le_bytes());
        Ok(())
    }

    /// `insn_array_update_elem()`: sets `orig_off` only.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "insn_array_update_elem";
        let i = index(key);
        check!(ctx, F, i >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        check!(ctx, F, flags & BPF_NOEXIST != 0 => Errno::EEXIST,
            "no BPF_NOEXIST: every index exists", "flags={flags:#x}");
        let word =
            |o: usize| u32::from_le_bytes([value[o], value[o + 1], value[o + 2], value[o + 3]]);
        let (xlated, jitted) = (word(4), word(8));
        check!(ctx, F, xlated != 0 || jitted != 0 => Errno::EINVAL,
            "xlated_off and jitted_off are 0 (the kernel fills them)",
            "xlated_off={xlated} jitted_off={jitted}");
        self.orig_off.insert(i, word(0));
        Ok(())
    }

    /// `insn_array_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _m: &MapDesc, _k: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "insn_array_delete_elem",
            FILE,
            "an instruction array has no deletable elements",
            Errno::EINVAL,
            String::new,
        ))
    }

    /// `bpf_array_get_next_key()`, shared with the array maps.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        array_get_next_key(ctx, map, key, next_key)
    }

    /// `insn_array_mem_usage()`: the struct, then per entry a value and an instruction
    /// pointer. `struct bpf_insn_array` is a `bpf_map` and 16 bytes, as `struct bpf_array` is
    /// (304 bytes on riscv64 7.2.11, measured).
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + map.max_entries as u64 * (VALUE_SIZE as u64 + 8)
    }
}
