//! kernel/bpf/arraymap.c: BPF_MAP_TYPE_ARRAY and BPF_MAP_TYPE_PERCPU_ARRAY.
//!
//! Every index below `max_entries` exists from creation on and reads as zeros until written.
//! The model keeps only the chunks that were written, so a large array costs memory in
//! proportion to its contents.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::hashtab::bpf_map_flags_access_ok;
use crate::map::{round_up, BatchOps, BpfMapOps, MapDesc, PercpuLayout};
use crate::uaccess::{copy_bytes, UserBytes};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr, MapType, NUMA_NO_NODE};
use std::collections::HashMap;

const FILE: &str = "kernel/bpf/arraymap.c";

/// `ARRAY_CREATE_FLAG_MASK`.
const ARRAY_CREATE_FLAG_MASK: u32 =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | BPF_F_ACCESS_MASK | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;

/// Bytes a stored chunk aims for: many small elements share one, a large element has its own.
const CHUNK_BYTES: usize = 4096;

/// log2 of the chunks one directory page covers.
const DIR_PAGE_BITS: u32 = 12;

/// The written chunks by number: a directory of pages of 4096 chunk slots (fewer for a small
/// array), a page made when a chunk in its range is first written. A lookup is two indexings,
/// no hashing; the directory reaches as far as the highest chunk written (8 bytes per 4096
/// chunks), so even an array the kernel refuses as too big costs nothing to describe.
struct Chunks {
    pages: Vec<Option<DirPage>>,
    /// Slots of a page: 4096, or fewer for an array of fewer chunks.
    page_len: usize,
}

/// The chunk slots of one page.
type DirPage = Box<[Option<Box<[u8]>>]>;

impl Chunks {
    /// The directory of an array of `n_chunks` chunks, none written: it grows as they are.
    fn new(n_chunks: u64) -> Chunks {
        Chunks {
            pages: Vec::new(),
            page_len: n_chunks.clamp(1, 1 << DIR_PAGE_BITS) as usize,
        }
    }

    fn split(c: u32) -> (usize, usize) {
        let c = c as usize;
        (c >> DIR_PAGE_BITS, c & ((1 << DIR_PAGE_BITS) - 1))
    }

    fn get(&self, c: u32) -> Option<&[u8]> {
        let (p, i) = Chunks::split(c);
        self.pages.get(p)?.as_ref()?.get(i)?.as_deref()
    }

    /// Chunk `c`, made by `make` if it was never written.
    fn get_or_insert_with(&mut self, c: u32, make: impl FnOnce() -> Box<[u8]>) -> &mut [u8] {
        let (p, i) = Chunks::split(c);
        if self.pages.len() <= p {
            self.pages.resize_with(p + 1, || None);
        }
        let len = self.page_len.max(i + 1);
        let page = self.pages[p].get_or_insert_with(|| (0..len).map(|_| None).collect());
        page[i].get_or_insert_with(make)
    }
}

/// `array_map_alloc_check()`: shared by every array flavour.
pub fn array_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "array_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    let t = attr.map_type();
    let percpu = t == MapType::PERCPU_ARRAY;
    let numa_node = attr.numa_node();
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4 || attr.value_size == 0
            || attr.map_flags & !ARRAY_CREATE_FLAG_MASK != 0
            || !bpf_map_flags_access_ok(attr.map_flags)
            || (percpu && numa_node != NUMA_NO_NODE) => Errno::EINVAL,
        "max_entries > 0, key_size == 4, value_size > 0, flags within ARRAY_CREATE_FLAG_MASK, \
         not both *_PROG flags, no NUMA node for PERCPU_ARRAY",
        "max_entries={} key_size={} value_size={} map_flags={:#x} numa_node={}",
        attr.max_entries, attr.key_size, attr.value_size, attr.map_flags, numa_node);
    check!(ctx, F, t != MapType::ARRAY && attr.map_flags & (BPF_F_MMAPABLE | BPF_F_INNER_MAP) != 0
        => Errno::EINVAL,
        "BPF_F_MMAPABLE and BPF_F_INNER_MAP only on BPF_MAP_TYPE_ARRAY", "map_flags={:#x}", attr.map_flags);
    check!(ctx, F, t != MapType::PERF_EVENT_ARRAY && attr.map_flags & BPF_F_PRESERVE_ELEMS != 0
        => Errno::EINVAL,
        "BPF_F_PRESERVE_ELEMS only on BPF_MAP_TYPE_PERF_EVENT_ARRAY", "map_flags={:#x}", attr.map_flags);
    check!(ctx, F, attr.value_size > i32::MAX as u32 => Errno::E2BIG,
        "value_size <= INT_MAX (round_up must not overflow)", "value_size={}", attr.value_size);
    let rounded = round_up(attr.value_size as u64, 8);
    let unit = ctx.profile().pcpu_min_unit_size as u64;
    check!(ctx, F, percpu && rounded > unit => Errno::E2BIG,
        "a per-CPU value fits PCPU_MIN_UNIT_SIZE", "round_up(value_size, 8) = {rounded}, limit {unit}");
    Ok(())
}

/// `array_map_alloc()`.
pub fn array_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "array_map_alloc";
    ctx.enter(F, FILE, String::new);
    let desc = MapDesc::from_attr(attr);
    // Without CAP_PERFMON (bpf_bypass_spec_v1) the storage is rounded up to a power of two
    // against speculation; the reported max_entries stays as given.
    let bypass_spec_v1 = ctx.cred().perfmon_capable();
    let index_mask: u64 = (attr.max_entries as u64).next_power_of_two() - 1;
    if !bypass_spec_v1 {
        let rounded = (index_mask + 1) as u32 as u64;
        check!(ctx, F, rounded < attr.max_entries as u64 => Errno::E2BIG,
            "the power-of-two storage size fits in u32",
            "roundup_pow_of_two({}) = {rounded} in u32", attr.max_entries);
    }
    let percpu = attr.map_type() == MapType::PERCPU_ARRAY;
    let slot = round_up(attr.value_size as u64, 8) as usize;
    let ncpus = ctx.profile().num_possible_cpus as usize;
    let layout = PercpuLayout {
        slot,
        value_size: attr.value_size as usize,
        ncpus,
        cpu_flags: ctx.profile().percpu_cpu_flags,
    };
    let elem_len = if percpu {
        slot * ncpus
    } else {
        attr.value_size as usize
    };
    let chunk_bits = (CHUNK_BYTES / elem_len.max(1)).max(1).ilog2();
    let array = BpfArray {
        percpu: percpu.then_some(layout),
        elem_len,
        chunk_bits,
        chunks: Chunks::new((attr.max_entries as u64).div_ceil(1 << chunk_bits)),
        mem: ArrayMem {
            struct_size: ctx.profile().sizes.bpf_array,
            page_size: ctx.profile().page_size as u64,
            slot: slot as u64,
            ncpus: ncpus as u64,
        },
    };
    Ok((desc, Box::new(array)))
}

struct ArrayMem {
    struct_size: u64,
    page_size: u64,
    slot: u64,
    ncpus: u64,
}

/// `struct bpf_array` for ARRAY and PERCPU_ARRAY.
struct BpfArray {
    /// How a PERCPU_ARRAY element maps to user space; `None` for a plain array.
    percpu: Option<PercpuLayout>,
    /// Bytes of one element as the syscall sees it: `value_size`, or one rounded slot per CPU.
    elem_len: usize,
    /// log2 of the elements per stored chunk (a power of two, so an index splits into chunk
    /// and slot with a shift and a mask).
    chunk_bits: u32,
    /// Written chunks of `per_chunk` elements; everything else reads as zeros.
    chunks: Chunks,
    mem: ArrayMem,
}

impl BpfArray {
    fn index(key: &[u8]) -> u32 {
        key_index(key)
    }

    /// A copy of an element (on the stack for the usual sizes: a per-CPU lookup or update
    /// allocates nothing).
    fn read_elem(&self, index: u32) -> UserBytes {
        let mut out = UserBytes::zeroed(self.elem_len);
        self.read(index, &mut out);
        out
    }

    /// (chunk, element within it).
    fn split(&self, index: u32) -> (u32, usize) {
        let mask = (1u32 << self.chunk_bits) - 1;
        (index >> self.chunk_bits, (index & mask) as usize)
    }

    fn read(&self, index: u32, out: &mut [u8]) {
        let (c, i) = self.split(index);
        match self.chunks.get(c) {
            Some(chunk) => copy_bytes(out, &chunk[i * self.elem_len..][..out.len()]),
            None => out.fill(0),
        }
    }

    fn write(&mut self, index: u32, data: &[u8]) {
        let (c, i) = self.split(index);
        let len = self.elem_len;
        let per_chunk = 1usize << self.chunk_bits;
        let chunk = self
            .chunks
            .get_or_insert_with(c, || vec![0u8; len * per_chunk].into_boxed_slice());
        chunk[i * len..][..data.len()].copy_from_slice(data);
    }
}

impl BpfMapOps for BpfArray {
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), Errno> {
        let f = if self.percpu.is_some() {
            "bpf_percpu_array_copy"
        } else {
            "array_map_lookup_elem"
        };
        let index = BpfArray::index(key);
        check!(ctx, f, index >= map.max_entries => Errno::ENOENT,
            "index < max_entries", "index={index} max_entries={}", map.max_entries);
        match self.percpu {
            Some(layout) => layout.load(&self.read_elem(index), value, flags),
            None => self.read(index, value),
        }
        Ok(())
    }

    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        let index = BpfArray::index(key);
        if let Some(layout) = self.percpu {
            const F: &str = "bpf_percpu_array_update";
            if layout.cpu_flags {
                check!(ctx, F, flags & BPF_F_LOCK != 0 || flags as u32 as u64 > BPF_F_ALL_CPUS => Errno::EINVAL,
                    "no BPF_F_LOCK, and the low 32 bits of flags at most BPF_F_ALL_CPUS", "flags={flags:#x}");
            } else {
                check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
                    "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
            }
            check!(ctx, F, index >= map.max_entries => Errno::E2BIG,
                "index < max_entries (no element can be added)", "index={index} max_entries={}", map.max_entries);
            check!(ctx, F, flags == BPF_NOEXIST => Errno::EEXIST,
                "BPF_NOEXIST: every element of an array exists", "flags={flags:#x}");
            let mut slots = self.read_elem(index);
            layout.store(&mut slots, value, flags);
            self.write(index, &slots);
            return Ok(());
        }
        const F: &str = "array_map_update_elem";
        check!(ctx, F, (flags & !BPF_F_LOCK) > BPF_EXIST => Errno::EINVAL,
            "flags (without BPF_F_LOCK) are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, index >= map.max_entries => Errno::E2BIG,
            "index < max_entries (no element can be added)", "index={index} max_entries={}", map.max_entries);
        check!(ctx, F, flags & BPF_NOEXIST != 0 => Errno::EEXIST,
            "BPF_NOEXIST: every element of an array exists", "flags={flags:#x}");
        check!(ctx, F, flags & BPF_F_LOCK != 0 && !map.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={flags:#x} has_spin_lock={}", map.has_spin_lock);
        self.write(index, &value[..map.value_size as usize]);
        Ok(())
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, _key: &[u8]) -> Result<(), Errno> {
        Err(ctx.fail(
            "array_map_delete_elem",
            FILE,
            "array elements cannot be deleted",
            Errno::EINVAL,
            String::new,
        ))
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        array_get_next_key(ctx, map, key, next_key)
    }

    /// `array_map_get_hash()`: SHA-256 over every element's rounded slot, index 0 first.
    fn map_get_hash(&self, map: &MapDesc) -> Option<[u8; 32]> {
        use sha2::{Digest, Sha256};
        if self.percpu.is_some() {
            return None;
        }
        let slot = self.mem.slot as usize;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; slot];
        // Chunks never written are zeros: hashed from a zero buffer a stretch at a time, since
        // a big array is mostly that (the digest is the same as slot by slot).
        let zeros = vec![0u8; 64 * 1024];
        let mut index = 0u32;
        while index < map.max_entries {
            let c = self.split(index).0;
            let chunk_end = (c as u64 + 1) << self.chunk_bits;
            let end = chunk_end.min(map.max_entries as u64) as u32;
            if self.chunks.get(c).is_some() {
                for i in index..end {
                    buf.fill(0);
                    self.read(i, &mut buf[..self.elem_len]);
                    h.update(&buf);
                }
            } else {
                let mut left = (end - index) as u64 * slot as u64;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    h.update(&zeros[..n]);
                    left -= n as u64;
                }
            }
            index = end;
        }
        Some(h.finalize().into())
    }

    fn map_batch_ops(&self) -> BatchOps {
        BatchOps::ARRAY
    }

    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        // array_map_mem_usage(): from the declared max_entries, not the rounded storage.
        let m = &self.mem;
        let entries = map.max_entries as u64;
        if self.percpu.is_some() {
            m.struct_size + entries * 8 + entries * m.slot * m.ncpus
        } else if map.map_flags & BPF_F_MMAPABLE != 0 {
            let page_align = |x: u64| x.div_ceil(m.page_size) * m.page_size;
            page_align(m.struct_size) + page_align(entries * m.slot)
        } else {
            m.struct_size + entries * m.slot
        }
    }
}

/// The u32 index of a 4-byte key (`*(u32 *)key`), as every index-keyed map reads it: arrays,
/// fd arrays, devmap, cpumap, the socket maps, XSKMAP, INSN_ARRAY. A shorter key (never seen:
/// the syscall copies key_size bytes) reads as zero-extended.
pub(crate) fn key_index(key: &[u8]) -> u32 {
    match key {
        [a, b, c, d, ..] => u32::from_le_bytes([*a, *b, *c, *d]),
        short => short
            .iter()
            .rev()
            .fold(0, |v, byte| (v << 8) | u32::from(*byte)),
    }
}

/// `array_map_get_next_key()`: shared by every array flavour.
pub(crate) fn array_get_next_key(
    ctx: &mut Ctx,
    map: &MapDesc,
    key: Option<&[u8]>,
    next_key: &mut [u8],
) -> Result<(), Errno> {
    index_get_next_key(ctx, "array_map_get_next_key", FILE, map, key, next_key)
}

/// The walk of every map keyed by a u32 index, under the name of the kernel function that
/// repeats it (`array_map_get_next_key`, `dev_map_get_next_key`, `cpu_map_get_next_key`,
/// `sock_map_get_next_key`, `xsk_map_get_next_key`, `reuseport_array_get_next_key`): a NULL
/// key or an index past the end restarts at 0, the last index ends the walk, and every slot
/// counts, filled or not.
pub(crate) fn index_get_next_key(
    ctx: &mut Ctx,
    func: &'static str,
    file: &'static str,
    map: &MapDesc,
    key: Option<&[u8]>,
    next_key: &mut [u8],
) -> Result<(), Errno> {
    // A NULL key reads as index U32_MAX, which restarts at 0 like any index out of range.
    let index = key.map(BpfArray::index).unwrap_or(u32::MAX);
    if index >= map.max_entries {
        next_key.copy_from_slice(&0u32.to_le_bytes());
        ctx.note(
            func,
            file,
            "a NULL key or an index past the end restarts at 0",
            || format!("index={index}"),
        );
        return Ok(());
    }
    if index == map.max_entries - 1 {
        return Err(ctx.fail(
            func,
            file,
            "an index before the last one",
            Errno::ENOENT,
            || format!("index={index} is the last"),
        ));
    }
    next_key.copy_from_slice(&(index + 1).to_le_bytes());
    Ok(())
}

/// `fd_array_map_alloc_check()`: PROG_ARRAY, PERF_EVENT_ARRAY, CGROUP_ARRAY and
/// ARRAY_OF_MAPS store fds (a 4-byte value) and take no program access flags.
pub fn fd_array_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "fd_array_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    check!(ctx, F, attr.value_size != 4 => Errno::EINVAL,
        "value_size is 4 (the value is an fd)", "value_size={}", attr.value_size);
    check!(ctx, F, attr.map_flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 => Errno::EINVAL,
        "no BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG on fd maps", "map_flags={:#x}", attr.map_flags);
    array_map_alloc_check(ctx, attr)
}

/// `array_map_alloc()` for the fd arrays; `array_of_map_alloc()` first builds the inner-map
/// template from `inner_map_fd`.
pub fn fd_array_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    let t = attr.map_type();
    let inner_meta = if t == MapType::ARRAY_OF_MAPS {
        ctx.enter("array_of_map_alloc", FILE, String::new);
        Some(crate::map_in_map::bpf_map_meta_alloc(
            ctx,
            attr.inner_map_fd,
        )?)
    } else {
        None
    };
    // array_map_alloc(): only the speculation rounding can fail here.
    let (mut desc, _) = array_map_alloc(ctx, attr)?;
    desc.inner_meta = inner_meta;
    let kind = match t {
        MapType::PROG_ARRAY => FdKind::Prog,
        MapType::PERF_EVENT_ARRAY => FdKind::PerfEvent,
        MapType::CGROUP_ARRAY => FdKind::Cgroup,
        _ => FdKind::Map,
    };
    let mem = ArrayMem {
        struct_size: ctx.profile().sizes.bpf_array,
        page_size: ctx.profile().page_size as u64,
        slot: 8,
        ncpus: ctx.profile().num_possible_cpus as u64,
    };
    Ok((
        desc,
        Box::new(FdArray {
            kind,
            slots: HashMap::new(),
            mem,
        }),
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FdKind {
    Prog,
    PerfEvent,
    Cgroup,
    Map,
}

/// An fd array: each slot holds the object an fd referred to (the model only ever stores
/// maps; programs, perf events and cgroups do not exist in it).
struct FdArray {
    kind: FdKind,
    slots: HashMap<u32, std::sync::Arc<crate::map::BpfMap>>,
    mem: ArrayMem,
}

impl FdArray {
    /// `map_fd_get_ptr`: the object behind the value fd, by the array's kind.
    fn get_ptr(
        &self,
        ctx: &mut Ctx,
        map: &MapDesc,
        ufd: u32,
    ) -> Result<std::sync::Arc<crate::map::BpfMap>, Errno> {
        let file = ctx.process.fds().get(ufd);
        let (func, file_c, what) = match self.kind {
            FdKind::Prog => ("bpf_prog_get", "kernel/bpf/syscall.c", "a bpf program"),
            FdKind::PerfEvent => ("perf_event_get", "kernel/events/core.c", "a perf event"),
            FdKind::Cgroup => (
                "cgroup_v1v2_get_from_fd",
                "kernel/cgroup/cgroup.c",
                "a cgroup directory",
            ),
            FdKind::Map => {
                let meta = map
                    .inner_meta
                    .as_ref()
                    .expect("ARRAY_OF_MAPS has a template");
                return crate::map_in_map::bpf_map_fd_get_ptr(ctx, meta, ufd);
            }
        };
        let Some(file) = file else {
            return Err(
                ctx.fail(func, file_c, "the value fd is open", Errno::EBADF, || {
                    format!("fd {} is not open", ufd as i32)
                }),
            );
        };
        // A program fd that is something else is EINVAL; perf_event_get and the cgroup lookup
        // answer EBADF for a file of the wrong kind.
        let e = if self.kind == FdKind::Prog {
            Errno::EINVAL
        } else {
            Errno::EBADF
        };
        Err(ctx.fail(
            func,
            file_c,
            "the value fd is the right kind of object",
            e,
            || format!("fd {} is {}, not {what}", ufd as i32, file.describe()),
        ))
    }
}

impl BpfMapOps for FdArray {
    /// The walk is `index_get_next_key`'s; an unset slot's lookup is ENOENT.
    fn map_last_absent_after(&self, map: &MapDesc, key: Option<&[u8]>) -> Option<Vec<u8>> {
        let index = key.map(BpfArray::index).unwrap_or(u32::MAX);
        let next = if index >= map.max_entries {
            0
        } else {
            index.checked_add(1).filter(|&n| n < map.max_entries)?
        };
        if self.slots.contains_key(&next) {
            return None;
        }
        let present = self
            .slots
            .keys()
            .copied()
            .filter(|&i| i > next && i < map.max_entries)
            .min();
        let last = present.map_or(map.max_entries - 1, |p| p - 1);
        Some(last.to_le_bytes().to_vec())
    }

    /// `bpf_fd_array_map_lookup_elem()`: the stored object's id.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bpf_fd_array_map_lookup_elem";
        check!(ctx, F, matches!(self.kind, FdKind::PerfEvent | FdKind::Cgroup) => Errno::ENOTSUPP,
            "the type has map_fd_sys_lookup_elem (prog and map arrays do)", "{:?}", map.map_type);
        let index = BpfArray::index(key);
        let obj = (index < map.max_entries)
            .then(|| self.slots.get(&index))
            .flatten();
        let Some(obj) = obj else {
            return Err(ctx.fail(
                F,
                FILE,
                "the index is in range and its slot is set",
                Errno::ENOENT,
                || format!("index={index} max_entries={}", map.max_entries),
            ));
        };
        value.copy_from_slice(&obj.id().to_le_bytes());
        Ok(())
    }

    /// `bpf_fd_array_map_update_elem()`.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "bpf_fd_array_map_update_elem";
        check!(ctx, F, flags != BPF_ANY => Errno::EINVAL, "flags are BPF_ANY", "flags={flags:#x}");
        let index = BpfArray::index(key);
        check!(ctx, F, index >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={index} max_entries={}", map.max_entries);
        let ufd = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        let obj = self.get_ptr(ctx, map, ufd)?;
        self.slots.insert(index, obj);
        Ok(())
    }

    /// `fd_array_map_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "__fd_array_map_delete_elem";
        let index = BpfArray::index(key);
        check!(ctx, F, index >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={index} max_entries={}", map.max_entries);
        let old = self.slots.remove(&index);
        check!(ctx, F, old.is_none() => Errno::ENOENT, "the slot is set", "slot={index} set={}", old.is_some());
        Ok(())
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        array_get_next_key(ctx, map, key, next_key)
    }

    fn map_batch_ops(&self) -> BatchOps {
        if self.kind == FdKind::Map {
            BatchOps::ARRAY
        } else {
            BatchOps::NONE
        }
    }

    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        self.mem.struct_size + map.max_entries as u64 * self.mem.slot
    }
}
