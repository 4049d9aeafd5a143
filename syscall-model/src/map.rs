//! `struct bpf_map` and `struct bpf_map_ops` (include/linux/bpf.h).
//!
//! A map is its common description ([`MapDesc`], what `bpf_map_init_from_attr` fills), its
//! syscall-side state (frozen, the write-active counter, the id), and the per-type storage
//! behind the [`BpfMapOps`] trait, which plays the role of the kernel's ops table for the
//! element commands. The per-type allocation half of the ops table lives in
//! [`crate::bpf_types`].

use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::uapi::{map_flags, MapCreateAttr, MapType};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// The most elements a preallocated map (a hash map without BPF_F_NO_PREALLOC, an LRU map)
/// gets room for in one go, as the kernel allocates them all at creation (`prealloc_init`);
/// the model does it with the first element, so that a map that fails its creation or stays
/// empty costs nothing. A larger one grows as it fills, as a map without preallocation does.
/// (An index sized for 2^20 elements is 12 MiB; its huge pages fill as elements land at
/// random.)
pub(crate) const PREALLOC_MAX_ENTRIES: usize = 1 << 20;

/// How many elements a preallocated map of `max_entries` gets room for with its first:
/// all of them, up to [`PREALLOC_MAX_ENTRIES`]; none past it (it then grows as it fills).
pub(crate) fn prealloc_entries(max_entries: usize) -> usize {
    if max_entries <= PREALLOC_MAX_ENTRIES {
        max_entries
    } else {
        0
    }
}

/// The most bytes one preallocated area reserves.
const PREALLOC_MAX_BYTES: usize = 256 << 20;

/// Room for `n` more items at the end of `v`, reserved for a preallocated map's elements:
/// address space on huge pages, used as the map fills from the start of the area, so at most
/// one 2 MiB page is ahead of its elements, and a fault per 2 MiB instead of per 4 KiB.
/// Nothing past [`PREALLOC_MAX_BYTES`] or if the reservation fails: the vector then grows as
/// it goes.
pub(crate) fn prealloc_reserve<T>(v: &mut Vec<T>, n: usize) {
    let fits = n.saturating_mul(std::mem::size_of::<T>()) <= PREALLOC_MAX_BYTES;
    if fits && v.try_reserve_exact(n).is_ok() {
        let room = v.spare_capacity_mut();
        advise_huge_pages(room.as_ptr().cast(), std::mem::size_of_val(room));
    }
}

/// `madvise(MADV_HUGEPAGE)` for the whole 2 MiB pages of `[start, start + len)`, which must
/// lie inside one allocation the caller owns: a map's large areas, read at random.
pub(crate) fn advise_huge_pages(start: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let (from, to) = (start as usize, start as usize + len);
        let (first, last) = (from.next_multiple_of(HUGE), to / HUGE * HUGE);
        if last > first {
            // SAFETY: MADV_HUGEPAGE changes how the kernel backs pages, never what they hold,
            // so no range can make it unsound; callers pass whole pages inside an allocation
            // they own, so that it is their memory's backing that changes (and a range that
            // is not mapped only fails, ENOMEM, which is ignored).
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// The fields of `struct bpf_map` that every type shares and that never change after creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDesc {
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    /// After the type's own adjustments (NO_COMMON_LRU rounds it).
    pub max_entries: u32,
    /// The stored flags: BPF_F_RDONLY/WRONLY removed (`bpf_map_flags_retain_permanent`).
    pub map_flags: u32,
    pub map_extra: u64,
    pub numa_node: i32,
    pub name: [u8; 16],
    /// The value carries a `bpf_spin_lock` (only with BTF, which the model does not load yet).
    pub has_spin_lock: bool,
    /// Created with `excl_prog_hash`: only one program may use it.
    pub excl: bool,
    /// ARRAY_OF_MAPS and HASH_OF_MAPS: the template inner maps must match.
    pub inner_meta: Option<crate::map_in_map::InnerMapMeta>,
}

impl MapDesc {
    /// `bpf_map_init_from_attr()`.
    pub fn from_attr(attr: &MapCreateAttr) -> MapDesc {
        MapDesc {
            map_type: attr.map_type(),
            key_size: attr.key_size,
            value_size: attr.value_size,
            max_entries: attr.max_entries,
            map_flags: bpf_map_flags_retain_permanent(attr.map_flags),
            map_extra: attr.map_extra,
            numa_node: attr.numa_node(),
            name: [0; 16],
            has_spin_lock: false,
            excl: false,
            inner_meta: None,
        }
    }

    /// The map name up to its NUL.
    pub fn name_str(&self) -> String {
        let end = self.name.iter().position(|b| *b == 0).unwrap_or(16);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// `bpf_map_flags_retain_permanent()`: RDONLY and WRONLY describe the fd, not the map.
pub fn bpf_map_flags_retain_permanent(flags: u32) -> u32 {
    flags & !(map_flags::BPF_F_RDONLY | map_flags::BPF_F_WRONLY)
}

/// The element half of `struct bpf_map_ops`, as the syscall reaches it. Each map type
/// implements it over its own storage. `value` buffers are the syscall's value size
/// (`bpf_map_value_size`), keys are `key_size` bytes (none for keyless maps).
pub trait BpfMapOps: Send {
    /// The syscall read of one element: the branch of `bpf_map_copy_value()` for this type
    /// (`map_lookup_elem` + copy for most, `bpf_percpu_*_copy` for per-CPU maps).
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), Errno>;

    /// The branch of `bpf_map_update_value()` for this type.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno>;

    /// `map_delete_elem`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno>;

    /// Not a kernel op: a shortcut for `generic_map_lookup_batch`. After `key` (as
    /// `map_get_next_key` would walk), the last key of the run of keys whose lookup is ENOENT,
    /// if the next key starts such a run. Stepping through that run changes nothing but the
    /// walk's position (no copy, no error kept), so a batch may jump to its end at once: an
    /// ARRAY_OF_MAPS of 2^32 - 1 slots with two set is two steps, not four billion.
    fn map_last_absent_after(&self, _map: &MapDesc, _key: Option<&[u8]>) -> Option<Vec<u8>> {
        None
    }

    /// `map_get_next_key`; `key` is `None` for a NULL key pointer.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno>;

    /// `map_lookup_and_delete_elem`, for the types whose syscall path calls it.
    /// `None` means the type has no such op and the syscall falls back to ENOTSUPP.
    fn map_lookup_and_delete_elem(
        &mut self,
        _ctx: &mut Ctx,
        _map: &MapDesc,
        _key: &[u8],
        _value: &mut [u8],
        _flags: u64,
    ) -> Option<Result<(), Errno>> {
        None
    }

    /// `map_mem_usage`: the bytes fdinfo reports as memlock.
    fn map_mem_usage(&self, map: &MapDesc) -> u64;

    /// Which batch ops the type has (`map_lookup_batch` and friends); a missing one is
    /// ENOTSUPP from `bpf_map_do_batch`.
    fn map_batch_ops(&self) -> BatchOps {
        BatchOps::NONE
    }

    /// One step of `__htab_map_lookup_and_delete_batch`'s walk, for the hash types: the first
    /// non-empty bucket at or after `from`, taken whole (and deleted if asked) if it has at
    /// most `room` elements; its keys and values (`value_len` bytes each) are appended to
    /// `keys` and `values`, head first. `None` for types without buckets.
    fn htab_batch_step(
        &mut self,
        _from: u32,
        _room: u32,
        _delete: bool,
        _value_len: usize,
        _keys: &mut Vec<u8>,
        _values: &mut Vec<u8>,
    ) -> Option<HtabStep> {
        None
    }

    /// `map_get_hash` (6.18+): the SHA-256 of the map's values, for the types that have one
    /// (only ARRAY). `None`: the type has no such op.
    fn map_get_hash(&self, _map: &MapDesc) -> Option<[u8; 32]> {
        None
    }
}

/// The map-id allocator (`map_idr`): cyclic ids from 1 to INT_MAX.
#[derive(Default)]
pub struct MapIdr {
    next: u32,
    maps: BTreeMap<u32, Weak<BpfMap>>,
}

impl MapIdr {
    /// `idr_alloc_cyclic(&map_idr, map, 1, INT_MAX)`: the next free id after the last one
    /// handed out, wrapping to 1; ENOSPC when every id is taken.
    pub fn alloc(&mut self, map: &Arc<BpfMap>) -> Result<u32, Errno> {
        const MAX: u32 = i32::MAX as u32 - 1;
        let start = if self.next == 0 || self.next > MAX {
            1
        } else {
            self.next
        };
        let mut id = start;
        loop {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.maps.entry(id) {
                slot.insert(Arc::downgrade(map));
                self.next = id + 1;
                return Ok(id);
            }
            id = if id >= MAX { 1 } else { id + 1 };
            if id == start {
                return Err(Errno::ENOSPC);
            }
        }
    }

    pub fn remove(&mut self, id: u32) {
        self.maps.remove(&id);
    }

    /// The live map with this id.
    pub fn get(&self, id: u32) -> Option<Arc<BpfMap>> {
        self.maps.get(&id).and_then(Weak::upgrade)
    }

    /// The ids of the live maps, in order.
    pub fn ids(&self) -> Vec<u32> {
        self.maps
            .iter()
            .filter(|(_, w)| w.strong_count() > 0)
            .map(|(id, _)| *id)
            .collect()
    }
}

/// `struct bpf_map`: one map, shared by every fd that refers to it.
pub struct BpfMap {
    pub desc: MapDesc,
    id: AtomicU32,
    /// `map->frozen`: set by BPF_MAP_FREEZE, removes write access for every fd.
    pub frozen: AtomicBool,
    /// `map->writecnt`: writers in flight and writable mmaps; FREEZE fails EBUSY while non-zero.
    pub writecnt: AtomicI64,
    ops: Mutex<Box<dyn BpfMapOps>>,
    idr: Weak<Mutex<MapIdr>>,
}

impl BpfMap {
    pub fn new(desc: MapDesc, ops: Box<dyn BpfMapOps>, idr: &Arc<Mutex<MapIdr>>) -> BpfMap {
        BpfMap {
            desc,
            id: AtomicU32::new(0),
            frozen: AtomicBool::new(false),
            writecnt: AtomicI64::new(0),
            ops: Mutex::new(ops),
            idr: Arc::downgrade(idr),
        }
    }

    pub fn id(&self) -> u32 {
        self.id.load(Ordering::Relaxed)
    }

    pub(crate) fn set_id(&self, id: u32) {
        self.id.store(id, Ordering::Relaxed);
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// The type's storage, locked for one operation.
    pub fn ops(&self) -> MutexGuard<'_, Box<dyn BpfMapOps>> {
        self.ops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `bpf_map_memory_usage()`: memlock as fdinfo shows it.
    pub fn mem_usage(&self) -> u64 {
        self.ops().map_mem_usage(&self.desc)
    }
}

impl Drop for BpfMap {
    /// `bpf_map_put()` of the last reference: the id goes back to the idr.
    fn drop(&mut self) {
        let id = self.id();
        if id == 0 {
            return;
        }
        if let Some(idr) = self.idr.upgrade() {
            idr.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        }
    }
}

/// `bpf_map_value_size()`: the bytes one value takes in the syscall's buffers.
pub fn bpf_map_value_size(map: &MapDesc, num_possible_cpus: u32) -> usize {
    if map.map_type.is_percpu_value() {
        round_up(map.value_size as u64, 8) as usize * num_possible_cpus as usize
    } else if map.map_type.is_fd_map() {
        4
    } else {
        map.value_size as usize
    }
}

/// `round_up(x, y)` for a power-of-two `y`.
pub fn round_up(x: u64, y: u64) -> u64 {
    x.div_ceil(y) * y
}

/// How the per-CPU copy routines move one element between user space and the CPU slots:
/// `bpf_percpu_array_update`/`pcpu_copy_value` and `bpf_percpu_array_copy`/`bpf_percpu_hash_copy`.
#[derive(Clone, Copy, Debug)]
pub struct PercpuLayout {
    /// `round_up(value_size, 8)`.
    pub slot: usize,
    pub value_size: usize,
    pub ncpus: usize,
    /// 7.2 semantics: BPF_F_CPU/BPF_F_ALL_CPUS, and only `value_size` bytes per slot stored.
    pub cpu_flags: bool,
}

impl PercpuLayout {
    pub fn elem_len(&self) -> usize {
        self.slot * self.ncpus
    }

    /// Stores a user value into an element's slots.
    pub fn store(&self, slots: &mut [u8], value: &[u8], flags: u64) {
        use crate::uapi::elem_flags::{BPF_F_ALL_CPUS, BPF_F_CPU};
        if !self.cpu_flags {
            // 6.x: every CPU's whole rounded slot, padding included.
            slots.copy_from_slice(&value[..slots.len()]);
        } else if flags & BPF_F_CPU != 0 {
            let cpu = (flags >> 32) as usize;
            slots[cpu * self.slot..][..self.value_size].copy_from_slice(&value[..self.value_size]);
        } else {
            for cpu in 0..self.ncpus {
                let src = if flags & BPF_F_ALL_CPUS != 0 {
                    0
                } else {
                    cpu * self.slot
                };
                slots[cpu * self.slot..][..self.value_size]
                    .copy_from_slice(&value[src..][..self.value_size]);
            }
        }
    }

    /// Reads an element's slots out to user space: all of them, rounded, or with 7.2's
    /// BPF_F_CPU one CPU's `value_size` bytes.
    pub fn load(&self, slots: &[u8], out: &mut [u8], flags: u64) {
        use crate::uapi::elem_flags::BPF_F_CPU;
        if self.cpu_flags && flags & BPF_F_CPU != 0 {
            let cpu = (flags >> 32) as usize;
            out.copy_from_slice(&slots[cpu * self.slot..][..self.value_size]);
        } else {
            out.copy_from_slice(&slots[..out.len()]);
        }
    }
}

/// How a type implements each batch command (`struct bpf_map_ops` batch members).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchOps {
    pub lookup: BatchImpl,
    pub lookup_and_delete: BatchImpl,
    pub update: BatchImpl,
    pub delete: BatchImpl,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchImpl {
    /// No op: ENOTSUPP.
    None,
    /// `generic_map_*_batch` over the element ops.
    Generic,
    /// `htab_map_*_batch`: bucket-index cookies, whole buckets.
    Htab,
    /// `rhtab_map_*_batch` (7.2's RHASH): the cookie is the next key to return.
    Rhtab,
}

impl BatchOps {
    pub const NONE: BatchOps = BatchOps {
        lookup: BatchImpl::None,
        lookup_and_delete: BatchImpl::None,
        update: BatchImpl::None,
        delete: BatchImpl::None,
    };
    /// The hash family: htab lookup (and delete), generic update and delete.
    pub const HTAB: BatchOps = BatchOps {
        lookup: BatchImpl::Htab,
        lookup_and_delete: BatchImpl::Htab,
        update: BatchImpl::Generic,
        delete: BatchImpl::Generic,
    };
    /// ARRAY, PERCPU_ARRAY, ARRAY_OF_MAPS: generic lookup and update only.
    pub const ARRAY: BatchOps = BatchOps {
        lookup: BatchImpl::Generic,
        lookup_and_delete: BatchImpl::None,
        update: BatchImpl::Generic,
        delete: BatchImpl::None,
    };
    /// RHASH: rhtab lookup (and delete), generic update and delete.
    pub const RHTAB: BatchOps = BatchOps {
        lookup: BatchImpl::Rhtab,
        lookup_and_delete: BatchImpl::Rhtab,
        update: BatchImpl::Generic,
        delete: BatchImpl::Generic,
    };
    /// LPM_TRIE: generic lookup, update and delete.
    pub const TRIE: BatchOps = BatchOps {
        lookup: BatchImpl::Generic,
        lookup_and_delete: BatchImpl::None,
        update: BatchImpl::Generic,
        delete: BatchImpl::Generic,
    };
}

/// One step of a hash batch walk.
pub enum HtabStep {
    /// No element in any bucket from there on; `n_buckets` is where the walk ends.
    End { n_buckets: u32 },
    /// The bucket `bucket` has more elements than there is room for.
    NoRoom { bucket: u32 },
    /// The bucket was taken: `n` elements, their keys and values appended to the buffers.
    Taken { bucket: u32, n: u32, n_buckets: u32 },
}
