//! kernel/bpf/devmap.c: BPF_MAP_TYPE_DEVMAP and BPF_MAP_TYPE_DEVMAP_HASH, the network devices
//! XDP programs redirect to.
//!
//! Both store a `struct bpf_devmap_val`: an ifindex and, with the 8-byte value, an XDP program
//! fd on the way in and that program's id on the way out. DEVMAP is an array indexed by the
//! key; DEVMAP_HASH is a hash table keyed by any u32, whose bucket is the key's low bits (no
//! seed), each bucket a list with the newest element first. An element holds a reference to
//! its device, so an update needs an ifindex that exists in the caller's network namespace
//! ([`Kernel::dev_get_by_index`](crate::kernel::Kernel::dev_get_by_index)); the model has no
//! programs, so an element never holds one and reads back program id 0.

use crate::arraymap::key_index as key_u32;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::{elem_flags::*, map_flags::*, MapCreateAttr, MapType};
use std::collections::{BTreeMap, HashMap};

const FILE: &str = "kernel/bpf/devmap.c";

/// `DEV_CREATE_FLAG_MASK`.
const DEV_CREATE_FLAG_MASK: u32 = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;

/// `offsetofend(struct bpf_devmap_val, ifindex)`: a value of just the ifindex.
const VAL_IFINDEX_ONLY: u32 = 4;
/// `offsetofend(struct bpf_devmap_val, bpf_prog.fd)`: the ifindex and a program.
const VAL_WITH_PROG: u32 = 8;

/// `sizeof(struct hlist_head)` and `sizeof(struct bpf_dtab_netdev *)`.
const PTR_SIZE: u64 = 8;

/// `dev_map_alloc_check()`: shared by DEVMAP and DEVMAP_HASH.
pub fn dev_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "dev_map_alloc_check";
    ctx.enter(F, FILE, || format!("map_type={:?}", attr.map_type()));
    let vs = attr.value_size;
    check!(ctx, F, attr.max_entries == 0 || attr.key_size != 4
            || (vs != VAL_IFINDEX_ONLY && vs != VAL_WITH_PROG)
            || attr.map_flags & !DEV_CREATE_FLAG_MASK != 0 => Errno::EINVAL,
        "max_entries > 0, key_size 4, value_size 4 (ifindex) or 8 (ifindex and program fd), \
         flags within NUMA_NODE, RDONLY and WRONLY",
        "max_entries={} key_size={} value_size={vs} map_flags={:#x}",
        attr.max_entries, attr.key_size, attr.map_flags);
    if attr.map_type() == MapType::DEVMAP_HASH {
        check!(ctx, F, attr.max_entries as u64 > 1 << 31 => Errno::EINVAL,
            "for DEVMAP_HASH, max_entries <= 2^31 (its power-of-two bucket count must fit)",
            "max_entries={}", attr.max_entries);
    }
    Ok(())
}

/// `dev_map_alloc()` and `dev_map_init_map()`.
pub fn dev_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "dev_map_init_map";
    ctx.enter("dev_map_alloc", FILE, String::new);
    let mut desc = MapDesc::from_attr(attr);
    // A program's lookup points straight into the element, so programs may only read it.
    desc.map_flags |= BPF_F_RDONLY_PROG;
    ctx.note(F, FILE, "map_flags |= BPF_F_RDONLY_PROG", || {
        format!("map_flags={:#x}", desc.map_flags)
    });
    let sizes = ctx.profile().sizes;
    let storage = if attr.map_type() == MapType::DEVMAP_HASH {
        let n_buckets = (attr.max_entries as u64).next_power_of_two() as u32;
        ctx.note(
            F,
            FILE,
            "n_buckets = roundup_pow_of_two(max_entries)",
            || format!("n_buckets={n_buckets}"),
        );
        Slots::Hash {
            n_buckets,
            buckets: BTreeMap::new(),
        }
    } else {
        Slots::Array(HashMap::new())
    };
    let dtab = BpfDtab {
        slots: storage,
        items: 0,
        dtab_size: sizes.bpf_dtab,
        netdev_size: sizes.bpf_dtab_netdev,
    };
    Ok((desc, Box::new(dtab)))
}

/// The part of `struct bpf_dtab_netdev` user space sees: `val`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct DevmapVal {
    ifindex: u32,
    /// `bpf_prog.id`: the model has no programs, so always 0.
    prog_id: u32,
}

impl DevmapVal {
    fn bytes(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.ifindex.to_le_bytes());
        b[4..].copy_from_slice(&self.prog_id.to_le_bytes());
        b
    }
}

enum Slots {
    /// DEVMAP: `netdev_map[max_entries]`; only the set slots are kept.
    Array(HashMap<u32, DevmapVal>),
    /// DEVMAP_HASH: `dev_index_head[n_buckets]`; the non-empty buckets by index, each list
    /// head first, as (key, value).
    Hash {
        n_buckets: u32,
        buckets: BTreeMap<u32, Vec<(u32, DevmapVal)>>,
    },
}

/// `struct bpf_dtab`.
struct BpfDtab {
    slots: Slots,
    /// `dtab->items`, which `dev_map_mem_usage` counts. DEVMAP counts it up for every update
    /// of an empty slot, even one that leaves the slot empty (ifindex 0).
    items: u32,
    dtab_size: u64,
    netdev_size: u64,
}

/// The user's value, zero-extended to `struct bpf_devmap_val` (ifindex, program fd).
fn user_val(value: &[u8]) -> (u32, i32) {
    let mut v = [0u8; 8];
    let n = value.len().min(8);
    v[..n].copy_from_slice(&value[..n]);
    (
        u32::from_le_bytes([v[0], v[1], v[2], v[3]]),
        i32::from_le_bytes([v[4], v[5], v[6], v[7]]),
    )
}

/// `__dev_map_alloc_node()`: the device by ifindex in the caller's namespace, then the
/// program if `prog_fd > 0`; any failure is EINVAL.
fn dev_map_alloc_node(ctx: &mut Ctx, ifindex: u32, prog_fd: i32) -> Result<DevmapVal, Errno> {
    const F: &str = "__dev_map_alloc_node";
    // dev_get_by_index() takes an int; the model's devices all have small positive indexes.
    let dev = ctx.kernel.dev_get_by_index(ifindex).map(|d| d.name.clone());
    check!(ctx, F, dev.is_none() => Errno::EINVAL,
        "dev_get_by_index(): the ifindex names a device of the caller's network namespace",
        "ifindex={} device={}", ifindex as i32, dev.as_deref().unwrap_or("none"));
    ctx.note(F, FILE, "dev_get_by_index()", || {
        format!("ifindex {ifindex} is {}", dev.unwrap_or_default())
    });
    if prog_fd > 0 {
        // bpf_prog_get_type_dev(fd, BPF_PROG_TYPE_XDP): whatever the lookup says, the
        // element is refused with EINVAL.
        let _ = crate::syscall::bpf_prog_get(ctx, F, prog_fd as u32);
        return Err(ctx.fail(
            F,
            FILE,
            "a program fd > 0 names an XDP program for devmaps",
            Errno::EINVAL,
            || format!("bpf_prog.fd={prog_fd}"),
        ));
    }
    Ok(DevmapVal {
        ifindex,
        prog_id: 0,
    })
}

impl BpfDtab {
    /// `__dev_map_update_elem()`: DEVMAP.
    fn array_update(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        i: u32,
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "__dev_map_update_elem";
        check!(ctx, F, flags > BPF_EXIST => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST", "flags={flags:#x}");
        check!(ctx, F, i >= map.max_entries => Errno::E2BIG,
            "index < max_entries", "index={i} max_entries={}", map.max_entries);
        check!(ctx, F, flags == BPF_NOEXIST => Errno::EEXIST,
            "not BPF_NOEXIST (every DEVMAP slot counts as existing)", "flags={flags:#x}");
        let (ifindex, prog_fd) = user_val(value);
        let dev = if ifindex == 0 {
            check!(ctx, F, prog_fd > 0 => Errno::EINVAL,
                "no program fd with ifindex 0 (which empties the slot)", "bpf_prog.fd={prog_fd}");
            None
        } else {
            Some(dev_map_alloc_node(ctx, ifindex, prog_fd)?)
        };
        let Slots::Array(slots) = &mut self.slots else {
            return Ok(());
        };
        let old = match dev {
            Some(d) => slots.insert(i, d),
            None => slots.remove(&i),
        };
        if old.is_none() {
            self.items = self.items.wrapping_add(1);
        }
        ctx.note(
            F,
            FILE,
            "xchg() the slot; an empty old slot counts an item",
            || format!("slot {i} = {dev:?}, items={}", self.items),
        );
        Ok(())
    }

    /// `__dev_map_hash_update_elem()`: DEVMAP_HASH.
    fn hash_update(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        idx: u32,
        value: &[u8],
        flags: u64,
    ) -> Result<(), Errno> {
        const F: &str = "__dev_map_hash_update_elem";
        let (ifindex, prog_fd) = user_val(value);
        check!(ctx, F, flags > BPF_EXIST || ifindex == 0 => Errno::EINVAL,
            "flags are BPF_ANY, BPF_NOEXIST or BPF_EXIST, and the ifindex is not 0",
            "flags={flags:#x} ifindex={ifindex}");
        let exists = self.hash_find(idx).is_some();
        check!(ctx, F, exists && flags & BPF_NOEXIST != 0 => Errno::EEXIST,
            "with BPF_NOEXIST, the key is not in the map",
            "key={idx} present={exists} flags={flags:#x}");
        let dev = dev_map_alloc_node(ctx, ifindex, prog_fd)?;
        if !exists {
            check!(ctx, F, self.items >= map.max_entries => Errno::E2BIG,
                "fewer than max_entries elements for a new key (checked after the device)",
                "items={} max_entries={}", self.items, map.max_entries);
            self.items += 1;
        }
        let Slots::Hash { n_buckets, buckets } = &mut self.slots else {
            return Ok(());
        };
        let b = idx & (*n_buckets - 1);
        let list = buckets.entry(b).or_default();
        list.retain(|(k, _)| *k != idx);
        list.insert(0, (idx, dev));
        ctx.note(
            F,
            FILE,
            "hlist_add_head_rcu(): the new element heads bucket key & (n_buckets - 1)",
            || format!("key {idx} -> bucket {b}"),
        );
        Ok(())
    }

    /// `__dev_map_hash_lookup_elem()`: the bucket and position of a key.
    fn hash_find(&self, idx: u32) -> Option<(u32, usize)> {
        let Slots::Hash { n_buckets, buckets } = &self.slots else {
            return None;
        };
        let b = idx & (*n_buckets - 1);
        let pos = buckets.get(&b)?.iter().position(|(k, _)| *k == idx)?;
        Some((b, pos))
    }

    fn lookup(&self, map: &MapDesc, key: u32) -> Option<DevmapVal> {
        match &self.slots {
            // __dev_map_lookup_elem(): NULL past max_entries or for an empty slot.
            Slots::Array(slots) if key < map.max_entries => slots.get(&key).copied(),
            Slots::Array(_) => None,
            Slots::Hash { buckets, .. } => {
                let (b, pos) = self.hash_find(key)?;
                buckets.get(&b).map(|l| l[pos].1)
            }
        }
    }
}

impl BpfMapOps for BpfDtab {
    /// `dev_map_lookup_elem()` / `dev_map_hash_lookup_elem()` through the syscall's
    /// `bpf_map_copy_value()`: `value_size` bytes of `val` (ifindex, program id), or ENOENT.
    fn map_lookup_elem_sys(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: &[u8],
        value: &mut [u8],
        _flags: u64,
    ) -> Result<(), Errno> {
        let k = key_u32(key);
        let v = self.lookup(map, k);
        let Some(v) = v else {
            return Err(if map.map_type == MapType::DEVMAP_HASH {
                ctx.fail(
                    "dev_map_hash_lookup_elem",
                    FILE,
                    "the key is in the map",
                    Errno::ENOENT,
                    || format!("key {k}"),
                )
            } else {
                ctx.fail(
                    "dev_map_lookup_elem",
                    FILE,
                    "index < max_entries and the slot holds a device",
                    Errno::ENOENT,
                    || {
                        let why = if k < map.max_entries {
                            "slot empty"
                        } else {
                            "out of range"
                        };
                        format!("index={k} max_entries={}: {why}", map.max_entries)
                    },
                )
            });
        };
        let n = value.len().min(8);
        value[..n].copy_from_slice(&v.bytes()[..n]);
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
        let k = key_u32(key);
        if map.map_type == MapType::DEVMAP_HASH {
            self.hash_update(ctx, map, k, value, flags)
        } else {
            self.array_update(ctx, map, k, value, flags)
        }
    }

    /// `dev_map_delete_elem()` / `dev_map_hash_delete_elem()`.
    fn map_delete_elem(&mut self, ctx: &mut Ctx, map: &MapDesc, key: &[u8]) -> Result<(), Errno> {
        let k = key_u32(key);
        if map.map_type != MapType::DEVMAP_HASH {
            const F: &str = "dev_map_delete_elem";
            check!(ctx, F, k >= map.max_entries => Errno::EINVAL,
                "index < max_entries (an empty slot deletes fine)", "index={k} max_entries={}", map.max_entries);
            if let Slots::Array(slots) = &mut self.slots {
                if slots.remove(&k).is_some() {
                    self.items = self.items.wrapping_sub(1);
                }
            }
            return Ok(());
        }
        const F: &str = "dev_map_hash_delete_elem";
        let found = self.hash_find(k);
        check!(ctx, F, found.is_none() => Errno::ENOENT, "the key is in the map", "key={k} present={}", found.is_some());
        if let (Some((b, pos)), Slots::Hash { buckets, .. }) = (found, &mut self.slots) {
            if let Some(list) = buckets.get_mut(&b) {
                list.remove(pos);
                if list.is_empty() {
                    buckets.remove(&b);
                }
            }
            self.items -= 1;
        }
        Ok(())
    }

    /// `dev_map_get_next_key()` (the array walk) / `dev_map_hash_get_next_key()` (the bucket
    /// walk).
    fn map_get_next_key(
        &mut self,
        ctx: &mut Ctx,
        map: &MapDesc,
        key: Option<&[u8]>,
        next_key: &mut [u8],
    ) -> Result<(), Errno> {
        let Slots::Hash { n_buckets, buckets } = &self.slots else {
            return crate::arraymap::index_get_next_key(
                ctx,
                "dev_map_get_next_key",
                FILE,
                map,
                key,
                next_key,
            );
        };
        const F: &str = "dev_map_hash_get_next_key";
        // After a key that is in the map: the next in its bucket, else the first of a later
        // bucket. A NULL or missing key starts from bucket 0.
        let mut from = 0u32;
        if let Some(k) = key.map(key_u32) {
            if let Some((b, pos)) = self.hash_find(k) {
                if let Some((next, _)) = buckets.get(&b).and_then(|l| l.get(pos + 1)) {
                    next_key.copy_from_slice(&next.to_le_bytes());
                    return Ok(());
                }
                from = b + 1;
            } else {
                ctx.note(
                    F,
                    FILE,
                    "a key not in the map restarts at the first bucket",
                    || format!("key {k}"),
                );
            }
        }
        let next = if from < *n_buckets {
            buckets.range(from..).next().map(|(_, l)| l[0].0)
        } else {
            None
        };
        check!(ctx, F, next.is_none() => Errno::ENOENT,
            "a non-empty bucket follows", "from bucket {from} of {n_buckets}: {}",
            next.map_or_else(|| "none".to_string(), |k| format!("next key {k}")));
        next_key.copy_from_slice(&next.unwrap_or(0).to_le_bytes());
        Ok(())
    }

    /// `dev_map_mem_usage()`: the table, the slot array or bucket heads, and `items`
    /// elements.
    fn map_mem_usage(&self, map: &MapDesc) -> u64 {
        let heads = match &self.slots {
            Slots::Hash { n_buckets, .. } => *n_buckets as u64,
            Slots::Array(_) => map.max_entries as u64,
        };
        // atomic_read() of the counter: an int.
        let items = self.items as i32 as i64 as u64;
        self.dtab_size + heads * PTR_SIZE + items.wrapping_mul(self.netdev_size)
    }
}
