//! kernel/bpf/hashtab.c: BPF_MAP_TYPE_HASH, PERCPU_HASH, LRU_HASH, LRU_PERCPU_HASH,
//! HASH_OF_MAPS, and 7.2's RHASH (at the end of the file).
//!
//! The table is kept the way the kernel lays it out, because the layout is visible from user
//! space: `n_buckets = roundup_pow_of_two(max_entries)`, a key lands in bucket
//! `htab_map_hash(key) & (n_buckets - 1)`, and a new element goes to the head of its bucket.
//! BPF_MAP_GET_NEXT_KEY walks buckets in ascending order and each bucket head first, so with
//! BPF_F_ZERO_SEED (hash seed 0) the model's walk is the kernel's walk. Only non-empty buckets
//! are stored, so memory follows the contents, not `max_entries`.
//!
//! An LRU map never runs full: a new element takes a node from the LRU (bpf_lru_list.rs),
//! which may first evict the element of an old node. The kernel takes that node before it
//! looks at the key, so even an update that then fails with EEXIST or ENOENT can evict.

mod buckets;

use crate::bpf_lru_list::BpfLru;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::jhash::jhash;
use crate::map::{round_up, BatchOps, BpfMap, BpfMapOps, HtabStep, MapDesc, PercpuLayout};
use crate::map_in_map::{bpf_map_fd_get_ptr, InnerMapMeta};
use crate::uaccess::copy_bytes;
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr, MapType, NUMA_NO_NODE};
use buckets::{Buckets, NIL};
use std::collections::BTreeMap;
use std::sync::Arc;

const FILE: &str = "kernel/bpf/hashtab.c";

/// `HTAB_CREATE_FLAG_MASK`.
const HTAB_CREATE_FLAG_MASK: u32 =
    BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU | BPF_F_NUMA_NODE | BPF_F_ACCESS_MASK | BPF_F_ZERO_SEED;

/// `HASHTAB_MAP_LOCK_COUNT`: per-CPU lock counters that 6.12 and 6.18 still count in memlock.
const HASHTAB_MAP_LOCK_COUNT: u64 = 8;

/// `sizeof(struct bucket)`.
const SIZEOF_BUCKET: u64 = 16;

/// `bpf_map_flags_access_ok()` (include/linux/bpf.h): not both *_PROG flags.
pub fn bpf_map_flags_access_ok(flags: u32) -> bool {
    flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)
}

fn is_percpu(t: MapType) -> bool {
    t == MapType::PERCPU_HASH || t == MapType::LRU_PERCPU_HASH
}

fn is_lru(t: MapType) -> bool {
    t == MapType::LRU_HASH || t == MapType::LRU_PERCPU_HASH
}

/// `htab_map_alloc_check()`: the attribute rules of every hash flavour.
pub fn htab_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "htab_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    let t = attr.map_type();
    let percpu = is_percpu(t);
    let lru = is_lru(t);
    let percpu_lru = attr.has(BPF_F_NO_COMMON_LRU);
    let prealloc = !attr.has(BPF_F_NO_PREALLOC);
    let zero_seed = attr.has(BPF_F_ZERO_SEED);
    let numa_node = attr.numa_node();
    let sys_admin = ctx.cred().capable(crate::kernel::cap::CAP_SYS_ADMIN);

    check!(ctx, F, zero_seed && !sys_admin => Errno::EPERM,
        "BPF_F_ZERO_SEED needs CAP_SYS_ADMIN", "zero_seed={zero_seed} cap_sys_admin={sys_admin}");
    check!(ctx, F, attr.map_flags & !HTAB_CREATE_FLAG_MASK != 0 || !bpf_map_flags_access_ok(attr.map_flags)
        => Errno::EINVAL,
        "map_flags within HTAB_CREATE_FLAG_MASK and not both RDONLY_PROG and WRONLY_PROG",
        "map_flags={:#x} unknown={:#x}", attr.map_flags, attr.map_flags & !HTAB_CREATE_FLAG_MASK);
    check!(ctx, F, !lru && percpu_lru => Errno::EINVAL,
        "BPF_F_NO_COMMON_LRU only on LRU maps", "lru={lru} no_common_lru={percpu_lru}");
    check!(ctx, F, lru && !prealloc => Errno::ENOTSUPP,
        "LRU maps cannot be BPF_F_NO_PREALLOC", "lru={lru} prealloc={prealloc}");
    check!(ctx, F, numa_node != NUMA_NO_NODE && (percpu || percpu_lru) => Errno::EINVAL,
        "no NUMA node for per-CPU maps or per-CPU LRU lists",
        "numa_node={numa_node} percpu={percpu} no_common_lru={percpu_lru}");
    check!(ctx, F, attr.max_entries == 0 || attr.key_size == 0 || attr.value_size == 0 => Errno::EINVAL,
        "max_entries, key_size and value_size are non-zero",
        "max_entries={} key_size={} value_size={}", attr.max_entries, attr.key_size, attr.value_size);
    let limit = ctx.profile().kmalloc_max_size - ctx.profile().htab_elem_size as u64;
    let kv = attr.key_size as u64 + attr.value_size as u64;
    check!(ctx, F, kv >= limit => Errno::E2BIG,
        "key_size + value_size < KMALLOC_MAX_SIZE - sizeof(struct htab_elem)",
        "key_size + value_size = {kv}, limit {limit}");
    let rounded = round_up(attr.value_size as u64, 8);
    let unit = ctx.profile().pcpu_min_unit_size as u64;
    check!(ctx, F, percpu && rounded > unit => Errno::E2BIG,
        "a per-CPU value fits PCPU_MIN_UNIT_SIZE",
        "round_up(value_size, 8) = {rounded}, limit {unit}");
    Ok(())
}

/// `htab_map_alloc()`: sizes the table. Returns the description and the storage.
pub fn htab_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    htab_map_alloc_with(ctx, attr, None)
}

/// `htab_map_alloc()` with the inner-map template of a HASH_OF_MAPS, if any.
fn htab_map_alloc_with(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
    inner_meta: Option<InnerMapMeta>,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "htab_map_alloc";
    ctx.enter(F, FILE, String::new);
    let mut desc = MapDesc::from_attr(attr);
    desc.inner_meta = inner_meta;
    let t = attr.map_type();
    let ncpus = ctx.profile().num_possible_cpus;
    if attr.has(BPF_F_NO_COMMON_LRU) {
        // Each CPU's LRU list gets the same number of elements.
        let up = (attr.max_entries as u64).div_ceil(ncpus as u64) * ncpus as u64;
        desc.max_entries = if up > u32::MAX as u64 {
            attr.max_entries / ncpus * ncpus
        } else {
            up as u32
        };
        ctx.note(
            F,
            FILE,
            "NO_COMMON_LRU rounds max_entries to a multiple of the CPUs",
            || format!("{} -> {}", attr.max_entries, desc.max_entries),
        );
    }
    check!(ctx, F, desc.max_entries as u64 > 1u64 << 31 => Errno::E2BIG,
        "max_entries <= 2^31 (so n_buckets cannot overflow)", "max_entries={}", desc.max_entries);
    let n_buckets = (desc.max_entries as u64).next_power_of_two();
    check!(ctx, F, n_buckets > u32::MAX as u64 / SIZEOF_BUCKET => Errno::E2BIG,
        "n_buckets * sizeof(struct bucket) fits in u32",
        "n_buckets = roundup_pow_of_two({}) = {n_buckets}", desc.max_entries);
    let hashrnd = if attr.has(BPF_F_ZERO_SEED) {
        0
    } else {
        ctx.kernel.get_random_u32()
    };
    ctx.note(
        F,
        FILE,
        "the hash seed: 0 with BPF_F_ZERO_SEED, else random",
        || format!("n_buckets={n_buckets} hashrnd={hashrnd:#x}"),
    );
    let layout = PercpuLayout {
        slot: round_up(desc.value_size as u64, 8) as usize,
        value_size: desc.value_size as usize,
        ncpus: ncpus as usize,
        cpu_flags: ctx.profile().percpu_cpu_flags,
    };
    // prealloc_init(): an LRU map's elements all start on its free lists.
    let scales = ctx.profile().lru_target_free_scales;
    let lru = is_lru(t).then(|| {
        BpfLru::new(
            attr.has(BPF_F_NO_COMMON_LRU),
            desc.max_entries,
            ncpus,
            scales,
        )
    });
    let htab = Htab {
        lru,
        of_maps: desc.inner_meta.clone(),
        in_place_of_maps: ctx.profile().htab_of_maps_in_place,
        n_buckets: n_buckets as u32,
        hashrnd,
        percpu: is_percpu(t).then_some(layout),
        prealloc: !attr.has(BPF_F_NO_PREALLOC),
        ncpus: ncpus as usize,
        buckets: Buckets::new(
            n_buckets as u32,
            desc.key_size as usize,
            if is_percpu(t) {
                layout.elem_len()
            } else {
                desc.value_size as usize
            },
            (!attr.has(BPF_F_NO_PREALLOC)).then_some(desc.max_entries),
        ),
        pending_inner: None,
        elem_size: ctx.profile().htab_elem_size as u64
            + round_up(desc.key_size as u64, 8)
            + if is_percpu(t) {
                8
            } else {
                round_up(desc.value_size as u64, 8)
            },
        struct_usage: ctx.profile().sizes.bpf_htab
            + if ctx.profile().htab_mem_counts_lock_counters {
                4 * ncpus as u64 * HASHTAB_MAP_LOCK_COUNT
            } else {
                0
            },
    };
    Ok((desc, Box::new(htab)))
}

/// `struct bpf_htab` for every hash flavour.
struct Htab {
    /// LRU_HASH and LRU_PERCPU_HASH: `htab->lru`.
    lru: Option<BpfLru>,
    /// HASH_OF_MAPS: the inner-map template.
    of_maps: Option<InnerMapMeta>,
    /// 7.2: an existing key's inner map is swapped in place, and no spare elements exist.
    in_place_of_maps: bool,
    n_buckets: u32,
    hashrnd: u32,
    /// How a per-CPU element maps to user space; `None` for a plain hash.
    percpu: Option<PercpuLayout>,
    prealloc: bool,
    ncpus: usize,
    /// `htab->buckets` and the elements on them (their number is `htab->count`).
    buckets: Buckets,
    /// The inner map an update of HASH_OF_MAPS is about to store.
    pending_inner: Option<Arc<BpfMap>>,
    /// `htab->elem_size`: the element header, the rounded key, and the value or its pointer.
    elem_size: u64,
    /// `sizeof(struct bpf_htab)` plus the lock counters where the profile counts them.
    struct_usage: u64,
}

impl Htab {
    /// `htab_map_hash()`: jhash2 over words when the key is a multiple of 4 bytes, jhash over
    /// bytes otherwise. On the little-endian machines the profiles describe, jhash2 of a key's
    /// words equals jhash of its bytes (a test in jhash.rs checks it), so the bytes are hashed
    /// as they are, without building the words.
    #[inline]
    fn hash(&self, key: &[u8]) -> u32 {
        jhash(key, self.hashrnd)
    }

    fn bucket_of(&self, hash: u32) -> u32 {
        hash & (self.n_buckets - 1)
    }

    /// `lookup_elem_raw()`: (hash, bucket, the element's slot if the key is there).
    fn find(&self, key: &[u8]) -> (u32, u32, Option<usize>) {
        let hash = self.hash(key);
        let b = self.bucket_of(hash);
        (hash, b, self.buckets.find(b, hash, key))
    }

    /// `check_flags()`: NOEXIST on an existing key, EXIST on a missing one.
    fn check_flags(ctx: &mut Ctx, exists: bool, flags: u64) -> Result<(), Errno> {
        const F: &str = "check_flags";
        let f = flags & !BPF_F_LOCK;
        check!(ctx, F, exists && f == BPF_NOEXIST => Errno::EEXIST,
            "BPF_NOEXIST needs a key that is not there", "flags={flags:#x} key_present={exists}");
        check!(ctx, F, !exists && f == BPF_EXIST => Errno::ENOENT,
            "BPF_EXIST needs a key that is there", "flags={flags:#x} key_present={exists}");
        Ok(())
    }

    /// `alloc_htab_elem()` for a new key: E2BIG once every element is in use (the new one is
    /// counted when it is linked). A replacement never fails here: a preallocated map swaps in
    /// a per-CPU spare element, and the others may allocate because the old element is about
    /// to be freed.
    fn alloc_new(&self, ctx: &mut Ctx, map: &MapDesc) -> Result<(), Errno> {
        const F: &str = "alloc_htab_elem";
        let count = self.buckets.len();
        let full = count >= map.max_entries as usize;
        let rule = if self.prealloc {
            "a preallocated element is free for a new key"
        } else {
            "is_map_full(): fewer than max_entries elements for a new key"
        };
        check!(ctx, F, full => Errno::E2BIG, rule, "count={count} max_entries={}", map.max_entries);
        Ok(())
    }

    /// A new element at the head of bucket `b` holding `value` (a plain hash's bytes).
    fn link_new(&mut self, b: u32, hash: u32, key: &[u8], value: &[u8], node: u32) -> usize {
        let e = self.buckets.push_head(b, hash, key, node);
        self.set_value(e, value);
        e
    }

    /// Overwrites a plain hash element's value.
    fn set_value(&mut self, e: usize, value: &[u8]) {
        let v = self.buckets.value_mut(e);
        let n = v.len().min(value.len());
        v[..n].copy_from_slice(&value[..n]);
    }
}

impl BpfMapOps for Htab {
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), Errno> {
        let f = if self.percpu.is_some() {
            "bpf_percpu_hash_copy"
        } else {
            "htab_map_lookup_elem"
        };
        let (_, _, e) = self.find(key);
        let Some(e) = e else {
            return Err(
                ctx.fail(f, FILE, "the key is in the table", Errno::ENOENT, || {
                    "no such key".into()
                }),
            );
        };
        // A per-CPU value is copied whole, rounded slots included; a plain one is value_size;
        // HASH_OF_MAPS gives the inner map's id (bpf_fd_htab_map_lookup_elem).
        match (self.buckets.inner(e), self.percpu) {
            (Some(inner), _) => value.copy_from_slice(&inner.id().to_le_bytes()),
            (None, Some(layout)) => layout.load(self.buckets.value(e), value, flags),
            (None, None) => copy_bytes(value, &self.buckets.value(e)[..value.len()]),
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
        if self.lru.is_some() {
            return match self.percpu {
                Some(layout) => self.lru_percpu_update(ctx, key, value, flags, layout),
                None => self.lru_update(ctx, key, value, flags),
            };
        }
        if let Some(layout) = self.percpu {
            // __htab_percpu_map_update_elem(): update in place when present.
            const F: &str = "__htab_percpu_map_update_elem";
            if layout.cpu_flags {
                // htab_map_check_update_flags(onallcpus = true), 7.2.
                check!(ctx, F, flags & BPF_F_LOCK != 0 || flags as u32 as u64 > BPF_F_ALL_CPUS => Errno::EINVAL,
                    "no BPF_F_LOCK, and the low 32 bits of flags at most BPF_F_ALL_CPUS", "flags={flags:#x}");
            } else {
                check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
                    "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
            }
            let (hash, b, e) = self.find(key);
            Htab::check_flags(ctx, e.is_some(), flags)?;
            match e {
                // pcpu_copy_value() in place.
                Some(e) => layout.store(self.buckets.value_mut(e), value, flags),
                None => {
                    self.alloc_new(ctx, map)?;
                    // pcpu_init_value(): fresh per-CPU memory is zeroed, then written.
                    let e = self.buckets.push_head(b, hash, key, NIL);
                    layout.store(self.buckets.value_mut(e), value, flags);
                }
            }
            return Ok(());
        }
        if let Some(meta) = &self.of_maps {
            // bpf_fd_htab_map_update_elem(): the value fd is resolved before any flag check.
            let ufd = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            let meta = meta.clone();
            self.pending_inner = Some(bpf_map_fd_get_ptr(ctx, &meta, ufd)?);
        }
        const F: &str = "htab_map_update_elem";
        check!(ctx, F, (flags & !BPF_F_LOCK) > BPF_EXIST => Errno::EINVAL,
            "flags (without BPF_F_LOCK) are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, flags & BPF_F_LOCK != 0 && !map.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={flags:#x} has_spin_lock={}", map.has_spin_lock);
        let (hash, b, old) = self.find(key);
        Htab::check_flags(ctx, old.is_some(), flags)?;
        let inner = self.pending_inner.take();
        match old {
            Some(old) if inner.is_some() && self.in_place_of_maps => {
                // 7.2's htab_map_update_elem_in_place(): swap the inner map, keep the place.
                self.buckets.set_inner(old, inner);
                return Ok(());
            }
            Some(old) => {
                // The new element goes to the bucket head and the old one is unlinked, so a
                // replaced key moves to the front of its bucket.
                self.set_value(old, value);
                self.buckets.set_inner(old, inner);
                self.buckets.move_to_head(old);
                return Ok(());
            }
            None => self.alloc_new(ctx, map)?,
        }
        let e = self.link_new(b, hash, key, value, NIL);
        self.buckets.set_inner(e, inner);
        Ok(())
    }

    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "htab_map_delete_elem";
        let (_, _, e) = self.find(key);
        let Some(e) = e else {
            return Err(
                ctx.fail(F, FILE, "the key is in the table", Errno::ENOENT, || {
                    "no such key".into()
                }),
            );
        };
        let node = self.buckets.node(e);
        self.buckets.remove(e);
        self.lru_push_free(node);
        Ok(())
    }

    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        const F: &str = "htab_map_get_next_key";
        // A NULL or missing key starts over at bucket 0.
        let mut from = 0u32;
        let mut next = None;
        if let Some(key) = key {
            let (_, b, e) = self.find(key);
            match e {
                Some(e) => {
                    next = self.buckets.next(e);
                    if let Some(n) = next.filter(|&n| self.buckets.bucket(n) == b) {
                        // The next element of the same bucket (one older).
                        next_key.copy_from_slice(self.buckets.key(n));
                        ctx.note(F, FILE, "the next element of the same bucket", || {
                            format!("bucket {b}")
                        });
                        return Ok(());
                    }
                    from = b + 1;
                }
                None => ctx.note(
                    F,
                    FILE,
                    "a key that is not in the map restarts the walk",
                    String::new,
                ),
            }
        }
        if from == 0 {
            next = self.buckets.first_from(0);
        }
        match next {
            Some(head) => {
                next_key.copy_from_slice(self.buckets.key(head));
                let b = self.buckets.bucket(head);
                ctx.note(F, FILE, "the head of the next non-empty bucket", || {
                    format!("bucket {b}")
                });
                Ok(())
            }
            None => Err(ctx.fail(
                F,
                FILE,
                "a bucket after this one holds an element",
                Errno::ENOENT,
                || match from.checked_sub(1) {
                    Some(b) => format!("no element after bucket {b}"),
                    None => "the table is empty".to_string(),
                },
            )),
        }
    }

    fn map_lookup_and_delete_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        flags: u64,
    ) -> Option<Result<(), Errno>> {
        // HASH_OF_MAPS is not among the types the syscall's lookup-and-delete serves.
        if self.of_maps.is_some() {
            return None;
        }
        Some(self.lookup_and_delete(ctx, map, key, value, flags))
    }

    fn map_batch_ops(&self) -> BatchOps {
        BatchOps::HTAB
    }

    fn htab_batch_step(
        &mut self,
        from: u32,
        room: u32,
        delete: bool,
        value_len: usize,
        keys: &mut Vec<u8>,
        values: &mut Vec<u8>,
    ) -> Option<HtabStep> {
        // Empty buckets are skipped; past the last one the walk ends.
        let Some(head) = self.buckets.first_from(from) else {
            return Some(HtabStep::End {
                n_buckets: self.n_buckets,
            });
        };
        let b = self.buckets.bucket(head);
        let run = self.buckets.run(head);
        if run as u32 > room {
            // A bucket is taken whole or not at all.
            return Some(HtabStep::NoRoom { bucket: b });
        }
        for e in head..head + run {
            keys.extend_from_slice(self.buckets.key(e));
            match self.buckets.inner(e) {
                Some(inner) => values.extend_from_slice(&inner.id().to_le_bytes()),
                None => values.extend_from_slice(&self.buckets.value(e)[..value_len]),
            }
        }
        if delete {
            // The walk stacks the deleted elements (node_to_free) and frees them after the
            // bucket: the last one walked (the bucket's oldest) first.
            let nodes: Vec<u32> = (head..head + run).map(|e| self.buckets.node(e)).collect();
            self.buckets.remove_run(head, run);
            for node in nodes.into_iter().rev() {
                self.lru_push_free(node);
            }
        }
        Some(HtabStep::Taken {
            bucket: b,
            n: run as u32,
            n_buckets: self.n_buckets,
        })
    }

    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        mem_usage(self, map)
    }
}

impl Htab {
    /// `htab_lru_push_free()`: an LRU element's node goes back to the LRU.
    fn lru_push_free(&mut self, node: u32) {
        if let (Some(lru), true) = (self.lru.as_mut(), node != NIL) {
            lru.push_free(node);
        }
    }

    /// `prealloc_lru_pop()`: a node for a new element, from the calling CPU's side of the
    /// LRU. Elements the LRU evicts on the way leave the table (`htab_lru_map_delete_node`).
    fn prealloc_lru_pop(
        &mut self,
        ctx: &mut Ctx,
        f: &'static str,
        hash: u32,
    ) -> Result<u32, Errno> {
        let cpu = ctx.process.cpu();
        let n_buckets = self.n_buckets;
        let buckets = &mut self.buckets;
        let tracing = ctx.tracing();
        let mut evicted: Vec<Vec<u8>> = Vec::new();
        let lru = self.lru.as_mut().expect("an LRU map");
        let node = lru.pop_free(cpu, hash, &mut |id, h| {
            let b = h & (n_buckets - 1);
            let Some(head) = buckets.first_from(b).filter(|&e| buckets.bucket(e) == b) else {
                return false;
            };
            let Some(e) = (head..head + buckets.run(head)).find(|&e| buckets.node(e) == id) else {
                return false;
            };
            if tracing {
                evicted.push(buckets.key(e).to_vec());
            }
            buckets.remove(e);
            true
        });
        for key in evicted {
            ctx.note(
                "htab_lru_map_delete_node",
                FILE,
                "the LRU evicts the element of an old node to free it",
                || format!("key {}", crate::trace::hex(&key)),
            );
        }
        match node {
            Some(node) => Ok(node),
            None => Err(ctx.fail(
                f,
                FILE,
                "bpf_lru_pop_free() finds a free node",
                Errno::ENOMEM,
                || format!("cpu {cpu}: no free node and nothing to evict"),
            )),
        }
    }

    /// `htab_lru_map_update_elem()`: take a node first, then check the flags; a replaced key's
    /// new element is marked referenced and the old one's node is freed.
    fn lru_update(
        &mut self,
        ctx: &mut Ctx,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "htab_lru_map_update_elem";
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST (no BPF_F_LOCK)", "flags={flags:#x}");
        let hash = self.hash(key);
        let b = self.bucket_of(hash);
        let node = self.prealloc_lru_pop(ctx, F, hash)?;
        let (_, _, old) = self.find(key);
        if let Err(e) = Htab::check_flags(ctx, old.is_some(), flags) {
            self.lru_push_free(node);
            return Err(e);
        }
        match old {
            Some(old) => {
                // The new element (with the new node) replaces the old at the bucket's head,
                // marked referenced; the old element's node is freed.
                let old_node = self.buckets.node(old);
                self.buckets.set_node(old, node);
                self.set_value(old, value);
                self.buckets.move_to_head(old);
                self.lru.as_mut().expect("an LRU map").set_ref(node);
                self.lru_push_free(old_node);
            }
            None => {
                self.link_new(b, hash, key, value, node);
            }
        }
        Ok(())
    }

    /// `__htab_lru_percpu_map_update_elem()`: a node is taken unless flags are BPF_EXIST; an
    /// existing element is updated in place and marked referenced, and the node goes back.
    fn lru_percpu_update(
        &mut self,
        ctx: &mut Ctx,
        key: &[u8],
        value: &[u8],
        flags: u64,
        layout: PercpuLayout,
    ) -> Result<(), Errno> {
        const F: &str = "__htab_lru_percpu_map_update_elem";
        if layout.cpu_flags {
            // htab_map_check_update_flags(onallcpus = true), 7.2.
            check!(ctx, F, flags & BPF_F_LOCK != 0 || flags as u32 as u64 > BPF_F_ALL_CPUS => Errno::EINVAL,
                "no BPF_F_LOCK, and the low 32 bits of flags at most BPF_F_ALL_CPUS", "flags={flags:#x}");
        } else {
            check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
                "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        }
        let hash = self.hash(key);
        let b = self.bucket_of(hash);
        let node = if flags != BPF_EXIST {
            self.prealloc_lru_pop(ctx, F, hash)?
        } else {
            NIL
        };
        let (_, _, old) = self.find(key);
        if let Err(e) = Htab::check_flags(ctx, old.is_some(), flags) {
            self.lru_push_free(node);
            return Err(e);
        }
        match old {
            Some(e) => {
                let old_node = self.buckets.node(e);
                layout.store(self.buckets.value_mut(e), value, flags);
                if let (Some(lru), true) = (self.lru.as_mut(), old_node != NIL) {
                    lru.set_ref(old_node);
                }
                self.lru_push_free(node);
            }
            None => {
                let e = self.buckets.push_head(b, hash, key, node);
                layout.store(self.buckets.value_mut(e), value, flags);
            }
        }
        Ok(())
    }

    /// `__htab_map_lookup_and_delete_elem()`.
    fn lookup_and_delete(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "__htab_map_lookup_and_delete_elem";
        let (_, _, e) = self.find(key);
        let Some(e) = e else {
            return Err(
                ctx.fail(F, FILE, "the key is in the table", Errno::ENOENT, || {
                    "no such key".into()
                }),
            );
        };
        value.copy_from_slice(&self.buckets.value(e)[..value.len()]);
        let node = self.buckets.node(e);
        self.buckets.remove(e);
        self.lru_push_free(node);
        Ok(())
    }
}

/// `htab_map_mem_usage()`.
fn mem_usage(h: &Htab, map: &MapDesc) -> u64 {
    let ncpus = h.ncpus as u64;
    let value_size = round_up(map.value_size as u64, 8);
    let elem_size = h.elem_size;
    let mut usage = h.struct_usage + SIZEOF_BUCKET * h.n_buckets as u64;
    if h.prealloc {
        // A plain hash also preallocates one spare element per CPU for replacements
        // (htab_has_extra_elems); an LRU map evicts instead.
        let lru = h.lru.is_some();
        let extra = if lru || h.percpu.is_some() || (h.of_maps.is_some() && h.in_place_of_maps) {
            0
        } else {
            ncpus
        };
        let n = map.max_entries as u64 + extra;
        usage += elem_size * n;
        if h.percpu.is_some() {
            usage += value_size * ncpus * n;
        } else if !lru {
            usage += 8 * ncpus;
        }
    } else {
        // Elements come from bpf_mem_alloc, each with an llist node.
        let n = h.buckets.len() as u64;
        usage += (elem_size + 8) * n;
        if h.percpu.is_some() {
            usage += (8 + 8) * n + value_size * ncpus * n;
        }
    }
    usage
}

/// `fd_htab_map_alloc_check()`: HASH_OF_MAPS values are 4-byte fds; then the hash rules.
pub fn fd_htab_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "fd_htab_map_alloc_check";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.value_size != 4 => Errno::EINVAL,
        "value_size is 4 (the value is an fd)", "value_size={}", attr.value_size);
    htab_map_alloc_check(ctx, attr)
}

/// `htab_of_map_alloc()`: the inner-map template first, then the table.
pub fn htab_of_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("htab_of_map_alloc", FILE, String::new);
    let meta = crate::map_in_map::bpf_map_meta_alloc(ctx, attr.inner_map_fd)?;
    htab_map_alloc_with(ctx, attr, Some(meta))
}

// BPF_MAP_TYPE_RHASH (7.2): a hash map on the kernel's resizable `struct rhashtable`.
//
// Elements are always allocated on demand (NO_PREALLOC is required), an update replaces a
// value in place, and `max_entries` caps the element count. The table's hash seed is random
// per bucket table and the table resizes as it fills, so the kernel's walk order
// (`rhashtable_next_key`) cannot be predicted from user space; the model walks its keys in
// byte order, and scenarios compare walks of these maps unordered.

/// `rhtab_map_alloc_check()`: the resizable table's own rules, then the hash rules.
pub fn rhtab_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "rhtab_map_alloc_check";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, !attr.has(BPF_F_NO_PREALLOC) => Errno::EINVAL,
        "BPF_F_NO_PREALLOC is set (elements are allocated on demand)", "map_flags={:#x}", attr.map_flags);
    check!(ctx, F, attr.has(BPF_F_ZERO_SEED) => Errno::EINVAL,
        "no BPF_F_ZERO_SEED", "map_flags={:#x}", attr.map_flags);
    check!(ctx, F, attr.key_size > u16::MAX as u32 => Errno::E2BIG,
        "key_size <= 65535", "key_size={}", attr.key_size);
    let extra = attr.map_extra;
    check!(ctx, F, extra >> 32 != 0 => Errno::EINVAL,
        "map_extra (the initial size hint) fits in 32 bits", "map_extra={extra:#x}");
    check!(ctx, F, extra as u32 > u16::MAX as u32 => Errno::E2BIG,
        "the size hint in map_extra is at most 65535", "map_extra={extra}");
    check!(ctx, F, extra as u32 > attr.max_entries => Errno::EINVAL,
        "the size hint in map_extra is at most max_entries",
        "map_extra={extra} max_entries={}", attr.max_entries);
    htab_map_alloc_check(ctx, attr)
}

/// `rhtab_map_alloc()`.
pub fn rhtab_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "rhtab_map_alloc";
    ctx.enter(F, FILE, String::new);
    check!(ctx, F, attr.max_entries as u64 > 1 << 31 => Errno::E2BIG,
        "max_entries <= 2^31", "max_entries={}", attr.max_entries);
    let elem_size =
        RHTAB_ELEM_HEADER + round_up(attr.key_size as u64, 8) + round_up(attr.value_size as u64, 8);
    let r = Rhtab {
        elems: BTreeMap::new(),
        elem_size,
        struct_size: ctx.profile().sizes.bpf_rhtab,
    };
    Ok((MapDesc::from_attr(attr), Box::new(r)))
}

/// `sizeof(struct rhtab_elem)`: the `rhash_head` before the key.
const RHTAB_ELEM_HEADER: u64 = 8;

/// `struct bpf_rhtab`.
struct Rhtab {
    /// Key -> value (`value_size` bytes), in the model's walk order (key bytes).
    elems: BTreeMap<Vec<u8>, Vec<u8>>,
    /// `rhtab->elem_size`.
    elem_size: u64,
    struct_size: u64,
}

impl BpfMapOps for Rhtab {
    /// The generic read: `rhtab_map_lookup_elem`, ENOENT for a missing key.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        let Some(v) = self.elems.get(key) else {
            return Err(ctx.fail(
                "rhtab_map_lookup_elem",
                FILE,
                "the key is in the table",
                Errno::ENOENT,
                || "no such key".into(),
            ));
        };
        value.copy_from_slice(&v[..value.len()]);
        Ok(())
    }

    /// `rhtab_map_update_elem()`: an existing key is rewritten in place; a new one needs room.
    fn map_update_elem(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "rhtab_map_update_elem";
        check!(ctx, F, (flags & !BPF_F_LOCK) > BPF_EXIST => Errno::EINVAL,
            "flags (without BPF_F_LOCK) are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, flags & BPF_F_LOCK != 0 && !map.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={flags:#x} has_spin_lock={}", map.has_spin_lock);
        let value = &value[..map.value_size as usize];
        if let Some(old) = self.elems.get_mut(key) {
            // rhtab_map_update_existing().
            check!(ctx, "rhtab_map_update_existing", flags & BPF_NOEXIST != 0 => Errno::EEXIST,
                "BPF_NOEXIST needs a key that is not there", "flags={flags:#x} key_present=true");
            old.copy_from_slice(value);
            return Ok(());
        }
        check!(ctx, F, flags & BPF_EXIST != 0 => Errno::ENOENT,
            "BPF_EXIST needs a key that is there", "flags={flags:#x} key_present=false");
        let n = self.elems.len() as u64;
        check!(ctx, F, n >= map.max_entries as u64 => Errno::E2BIG,
            "fewer than max_entries elements for a new key", "nelems={n} max_entries={}", map.max_entries);
        self.elems.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    /// `rhtab_map_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, _map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        const F: &str = "rhtab_map_delete_elem";
        let found = self.elems.remove(key).is_some();
        check!(ctx, F, !found => Errno::ENOENT, "the key is in the table", "key_present={found}");
        Ok(())
    }

    /// `rhtab_map_get_next_key()`: the key after `key`; a missing (or NULL) key starts over at
    /// the first; ENOENT after the last or in an empty table.
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        const F: &str = "rhtab_map_get_next_key";
        use std::ops::Bound::{Excluded, Unbounded};
        let next = match key {
            Some(k) if self.elems.contains_key(k) => {
                self.elems.range::<[u8], _>((Excluded(k), Unbounded)).next()
            }
            _ => {
                ctx.note(
                    F,
                    FILE,
                    "a NULL or missing key starts at the first",
                    String::new,
                );
                self.elems.iter().next()
            }
        };
        let Some((k, _)) = next else {
            return Err(ctx.fail(F, FILE, "another key follows", Errno::ENOENT, || {
                format!("{} elements", self.elems.len())
            }));
        };
        next_key.copy_from_slice(k);
        Ok(())
    }

    /// `rhtab_map_lookup_and_delete_elem()`: only BPF_F_LOCK may be set (the syscall has
    /// already checked it), then the element is removed and its value returned.
    fn map_lookup_and_delete_elem(
        &mut self,
        ctx: &mut Ctx,
        _map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Option<Result<(), Errno>> {
        const F: &str = "rhtab_map_lookup_and_delete_elem";
        let Some(v) = self.elems.remove(key) else {
            return Some(Err(ctx.fail(
                F,
                FILE,
                "the key is in the table",
                Errno::ENOENT,
                || "no such key".into(),
            )));
        };
        value.copy_from_slice(&v[..value.len()]);
        Some(Ok(()))
    }

    /// `rhtab_map_mem_usage()`: the struct and one element per entry (bucket arrays are not
    /// counted). Measured on riscv64 7.2.11.
    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        self.struct_size + self.elem_size * self.elems.len() as u64
    }

    fn map_batch_ops(&self) -> BatchOps {
        BatchOps::RHTAB
    }
}
