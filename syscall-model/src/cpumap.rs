//! kernel/bpf/cpumap.c: BPF_MAP_TYPE_CPUMAP, the CPUs XDP programs redirect frames to.
//!
//! The key is a CPU number; the value a `struct bpf_cpumap_val`: the size of the CPU's frame
//! queue (`qsize`) and, with the 8-byte value, an XDP program fd on the way in and its id on
//! the way out. Setting a slot builds a queue and a kthread bound to that CPU, so the CPU must
//! be possible (the profile's `num_possible_cpus`, numbered from 0); qsize 0 empties the
//! slot. The model has no programs, so an element never holds one and reads back id 0.

use crate::arraymap::key_index as key_u32;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr};
use std::collections::HashMap;

const FILE: &str = "kernel/bpf/cpumap.c";

/// `offsetofend(struct bpf_cpumap_val, qsize)`: a value of just the queue size.
const VAL_QSIZE_ONLY: u32 = 4;
/// `offsetofend(struct bpf_cpumap_val, bpf_prog.fd)`: the queue size and a program.
const VAL_WITH_PROG: u32 = 8;

/// `cpu_map_update_elem`'s sanity limit on a queue's size.
const QSIZE_MAX: u32 = 16384;

/// `sizeof(struct bpf_cpu_map_entry *)`.
const PTR_SIZE: u64 = 8;

/// `cpu_map_alloc()` (CPUMAP has no alloc_check, so these run after the capability checks).
pub fn cpu_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "cpu_map_alloc";
    ctx.enter(F, FILE, String::new);
    let vs = attr.value_size;
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4
            || (vs != VAL_QSIZE_ONLY && vs != VAL_WITH_PROG)
            || attr.map_flags & !BPF_F_NUMA_NODE != 0 => Errno::EINVAL,
        "max_entries > 0, key_size 4, value_size 4 (qsize) or 8 (qsize and program fd), \
         no flag but NUMA_NODE (not even RDONLY or WRONLY)",
        "max_entries={} key_size={} value_size={vs} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.map_flags);
    let nr_cpus = ctx.profile().nr_cpus;
    check!(ctx, F, attr.max_entries > nr_cpus => Errno::E2BIG,
        "max_entries <= NR_CPUS (the configured CPU limit, not the possible CPUs)",
        "max_entries={} NR_CPUS={nr_cpus}", attr.max_entries);
    let cmap = BpfCpuMap {
        entries: HashMap::new(),
        struct_size: ctx.profile().sizes.bpf_cpu_map,
    };
    Ok((MapDesc::from_attr(attr), Box::new(cmap)))
}

/// The part of `struct bpf_cpu_map_entry` user space sees: `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CpumapVal {
    qsize: u32,
    /// `bpf_prog.id`: the model has no programs, so always 0.
    prog_id: u32,
}

/// `struct bpf_cpu_map`: `cpu_map[max_entries]`; only the set slots are kept.
struct BpfCpuMap {
    entries: HashMap<u32, CpumapVal>,
    struct_size: u64,
}

/// `__cpu_map_entry_alloc()`: the queue, then the program if `prog_fd > 0`
/// (`__cpu_map_load_bpf_program`), then the kthread. Only the program can fail in the model.
fn cpu_map_entry_alloc(ctx: &mut Ctx, qsize: u32, prog_fd: i32) -> Result<CpumapVal, Errno> {
    const F: &str = "__cpu_map_load_bpf_program";
    if prog_fd > 0 {
        // bpf_prog_get_type(fd, BPF_PROG_TYPE_XDP): the model has no programs.
        return Err(crate::syscall::bpf_prog_get(ctx, F, prog_fd as u32));
    }
    Ok(CpumapVal { qsize, prog_id: 0 })
}

impl BpfMapOps for BpfCpuMap {
    /// `cpu_map_lookup_elem()` through `bpf_map_copy_value()`: `value_size` bytes of `value`
    /// (qsize, program id), or ENOENT.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "cpu_map_lookup_elem";
        let cpu = key_u32(key);
        let v = if cpu < map.max_entries {
            self.entries.get(&cpu).copied()
        } else {
            None
        };
        check!(ctx, F, v.is_none() => Errno::ENOENT,
            "index < max_entries and the CPU has an entry",
            "cpu={cpu} max_entries={} has_entry={}", map.max_entries, v.is_some());
        let v = v.unwrap_or(CpumapVal {
            qsize: 0,
            prog_id: 0,
        });
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&v.qsize.to_le_bytes());
        b[4..].copy_from_slice(&v.prog_id.to_le_bytes());
        let n = value.len().min(8);
        value[..n].copy_from_slice(&b[..n]);
        Ok(())
    }

    /// `cpu_map_update_elem()`.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "cpu_map_update_elem";
        let cpu = key_u32(key);
        let mut v = [0u8; 8];
        let n = value.len().min(8);
        v[..n].copy_from_slice(&value[..n]);
        let qsize = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
        let prog_fd = i32::from_le_bytes([v[4], v[5], v[6], v[7]]);
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, cpu >= map.max_entries => Errno::E2BIG,
            "the CPU < max_entries", "cpu={cpu} max_entries={}", map.max_entries);
        check!(ctx, F, flags == BPF_NOEXIST => Errno::EEXIST,
            "not BPF_NOEXIST (every CPUMAP slot counts as existing)", "flags={flags:#x}");
        check!(ctx, F, qsize > QSIZE_MAX => Errno::EOVERFLOW,
            "qsize <= 16384", "qsize={qsize}");
        let possible = ctx.profile().num_possible_cpus;
        check!(ctx, F, cpu >= possible => Errno::ENODEV,
            "the CPU is a possible CPU (checked before qsize 0 empties the slot)",
            "cpu={cpu} num_possible_cpus={possible}");
        if qsize == 0 {
            ctx.note(F, FILE, "qsize 0 empties the slot, like a delete", || {
                format!("cpu {cpu}")
            });
            self.entries.remove(&cpu);
            return Ok(());
        }
        match cpu_map_entry_alloc(ctx, qsize, prog_fd) {
            Ok(e) => {
                self.entries.insert(cpu, e);
                Ok(())
            }
            Err(e) if ctx.profile().cpumap_update_returns_alloc_errno => Err(e),
            Err(_) => Err(ctx.fail(
                F,
                FILE,
                "__cpu_map_entry_alloc() builds the entry (before 7.2 any failure is ENOMEM)",
                Errno::ENOMEM,
                || format!("cpu {cpu}"),
            )),
        }
    }

    /// `cpu_map_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "cpu_map_delete_elem";
        let cpu = key_u32(key);
        check!(ctx, F, cpu >= map.max_entries => Errno::EINVAL,
            "the CPU < max_entries (an empty slot deletes fine)", "cpu={cpu} max_entries={}", map.max_entries);
        self.entries.remove(&cpu);
        Ok(())
    }

    /// `cpu_map_get_next_key()`: every index, set or not.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        crate::arraymap::index_get_next_key(ctx, "cpu_map_get_next_key", FILE, map, key, next_key)
    }

    /// `cpu_map_mem_usage()`: the map and its pointer array; the entries are not counted.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.struct_size + map.max_entries as u64 * PTR_SIZE
    }
}
