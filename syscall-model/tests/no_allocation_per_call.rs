//! Issue 8's "no allocation per call": once a map holds its elements, its element commands
//! (lookup, update of a present key, get_next_key) allocate nothing, and a preallocated map's
//! delete and re-insert allocate nothing either, as the kernel takes a preallocated map's
//! elements from its free list. A lookup batch allocates its few buffers once per call, as the
//! kernel does, never per element. Counted by this binary's allocator, per thread, so the
//! tests of the file can run at once.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use syscall_model::uaccess::SimMemory;
use syscall_model::{Arch, Cred, Kernel, KernelProfile, Process};

/// The system allocator, counting the allocations each thread makes.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // A thread being torn down has no counter left; it is not one the tests watch.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        count();
        System.realloc(p, l, new)
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Allocations this thread has made so far.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

const LOOKUP: i32 = 1;
const UPDATE: i32 = 2;
const DELETE: i32 = 3;
const GET_NEXT_KEY: i32 = 4;
const LOOKUP_BATCH: i32 = 24;

const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PERCPU_HASH: u32 = 5;
const PERCPU_ARRAY: u32 = 6;
const LRU_HASH: u32 = 9;
const LPM_TRIE: u32 = 11;
const NO_PREALLOC: u32 = 1;

/// Elements in every map.
const N: u32 = 64;
/// Its max_entries: room to spare, so an LRU map evicts none of them (and an array has
/// slots no one set).
const MAX_ENTRIES: u32 = 4 * N;
/// Where the attrs, keys and values live in the process's memory.
const BASE: u64 = 0x10_0000;
const ATTR: u64 = BASE;
const KEYS: u64 = BASE + 0x1000;
const VALUES: u64 = BASE + 0x2000;
const NEXT: u64 = BASE + 0x4000;
const BATCH_KEYS: u64 = BASE + 0x5000;
const BATCH_VALUES: u64 = BASE + 0x6000;
const OUT_BATCH: u64 = BASE + 0xc000;

/// One map of `map_type` with `N` elements, and what it takes to call it.
struct Map {
    p: Process,
    mem: SimMemory,
    fd: u32,
    key_size: u64,
}

impl Map {
    fn new(map_type: u32, flags: u32) -> Map {
        let k = Kernel::new(KernelProfile::linux_6_18(Arch::X86_64, 2));
        let p = k.spawn(Cred::root());
        let mem = SimMemory::new();
        mem.map(BASE, 0x10000, true);
        let key_size: u32 = if map_type == LPM_TRIE { 8 } else { 4 };
        let mut a = [0u8; 72];
        for (i, v) in [map_type, key_size, 8, MAX_ENTRIES, flags]
            .into_iter()
            .enumerate()
        {
            a[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
        }
        mem.poke(ATTR, &a);
        let fd = p.bpf(0, ATTR, 72, &mem).expect("BPF_MAP_CREATE") as u32;
        for i in 0..N {
            let at = KEYS + u64::from(i * key_size);
            if map_type == LPM_TRIE {
                // A /32 prefix of address i.
                mem.poke(at, &32u32.to_le_bytes());
                mem.poke(at + 4, &i.to_be_bytes());
            } else {
                mem.poke(at, &i.to_le_bytes());
            }
        }
        Map {
            p,
            mem,
            fd,
            key_size: key_size.into(),
        }
    }

    /// An element command on key `i`; its result.
    fn elem(&self, cmd: i32, i: u32) -> i32 {
        let mut a = [0u8; 32];
        a[0..4].copy_from_slice(&self.fd.to_le_bytes());
        a[8..16].copy_from_slice(&(KEYS + u64::from(i) * self.key_size).to_le_bytes());
        // BPF_MAP_DELETE_ELEM ends at the key: the rest of its attr must be zero.
        if cmd != DELETE {
            a[16..24].copy_from_slice(&VALUES.to_le_bytes());
        }
        self.mem.poke(ATTR, &a);
        self.p
            .bpf(cmd, ATTR, 32, &self.mem)
            .unwrap_or_else(|e| -e.0)
    }

    /// get_next_key from key `i` (from the start for None).
    fn next_key(&self, i: Option<u32>) -> i32 {
        let mut a = [0u8; 24];
        a[0..4].copy_from_slice(&self.fd.to_le_bytes());
        let key = i.map_or(0, |i| KEYS + u64::from(i) * self.key_size);
        a[8..16].copy_from_slice(&key.to_le_bytes());
        a[16..24].copy_from_slice(&NEXT.to_le_bytes());
        self.mem.poke(ATTR, &a);
        self.p
            .bpf(GET_NEXT_KEY, ATTR, 24, &self.mem)
            .unwrap_or_else(|e| -e.0)
    }

    /// One lookup batch from the start, asking for more than the map holds.
    fn lookup_batch(&self) -> i32 {
        let mut a = [0u8; 56];
        a[8..16].copy_from_slice(&OUT_BATCH.to_le_bytes());
        a[16..24].copy_from_slice(&BATCH_KEYS.to_le_bytes());
        a[24..32].copy_from_slice(&BATCH_VALUES.to_le_bytes());
        a[32..36].copy_from_slice(&(MAX_ENTRIES + 1).to_le_bytes());
        a[36..40].copy_from_slice(&self.fd.to_le_bytes());
        self.mem.poke(ATTR, &a);
        self.p
            .bpf(LOOKUP_BATCH, ATTR, 56, &self.mem)
            .unwrap_or_else(|e| -e.0)
    }

    /// Fills the map, then runs every element command twice (the first round may still grow
    /// scratch space and free lists) and returns what the second round's element commands
    /// allocated, and what its lookup batch did.
    fn allocations_of_warm_calls(&self, deletes: bool) -> (u64, u64) {
        for i in 0..N {
            assert_eq!(self.elem(UPDATE, i), 0, "filling key {i}");
        }
        let mut made = (0, 0);
        for _ in 0..2 {
            let before = allocations();
            for i in 0..N {
                assert_eq!(self.elem(LOOKUP, i), 0, "lookup of key {i}");
                assert_eq!(self.elem(UPDATE, i), 0, "update of key {i}");
                assert_eq!(self.next_key(Some(i)), self.next_key(Some(i)));
            }
            assert_eq!(self.next_key(None), 0, "get_next_key from the start");
            if deletes {
                for i in 0..N {
                    assert_eq!(self.elem(DELETE, i), 0, "delete of key {i}");
                    assert_eq!(self.elem(UPDATE, i), 0, "re-insert of key {i}");
                }
            }
            let elems = allocations() - before;
            let before = allocations();
            // Every element, then the end of the map: ENOENT with the whole count.
            assert_eq!(self.lookup_batch(), -2, "lookup_batch over the map");
            made = (elems, allocations() - before);
        }
        made
    }

    /// Nothing per element command; per lookup batch, at most the kernel's few buffers
    /// (`kvmalloc`ed once per call: a key, a key and value, or a bucket's keys and values),
    /// never one per element.
    fn assert_allocates_nothing_per_call(&self, deletes: bool) {
        let (elems, batch) = self.allocations_of_warm_calls(deletes);
        assert_eq!(elems, 0, "allocations by element commands on {N} keys");
        assert!(
            batch <= 3,
            "a lookup batch of {N} elements made {batch} allocations"
        );
    }
}

#[test]
fn a_preallocated_hash_allocates_nothing_per_element_command() {
    Map::new(HASH, 0).assert_allocates_nothing_per_call(true);
}

#[test]
fn a_percpu_hash_allocates_nothing_per_element_command() {
    Map::new(PERCPU_HASH, 0).assert_allocates_nothing_per_call(true);
}

#[test]
fn an_lru_hash_allocates_nothing_per_element_command() {
    Map::new(LRU_HASH, 0).assert_allocates_nothing_per_call(true);
}

/// Without preallocation the kernel allocates an element per insert, and so may the model;
/// reads and rewrites of present keys still allocate nothing.
#[test]
fn a_no_prealloc_hash_allocates_nothing_to_read_or_rewrite() {
    Map::new(HASH, NO_PREALLOC).assert_allocates_nothing_per_call(false);
}

#[test]
fn arrays_allocate_nothing_per_element_command() {
    for t in [ARRAY, PERCPU_ARRAY] {
        Map::new(t, 0).assert_allocates_nothing_per_call(false);
    }
}

/// A trie node is allocated per insert, as in the kernel; reads, rewrites, walks and batches
/// of a warm trie allocate nothing (its get_next_key keeps the path it walks).
#[test]
fn an_lpm_trie_allocates_nothing_to_read_walk_or_rewrite() {
    Map::new(LPM_TRIE, NO_PREALLOC).assert_allocates_nothing_per_call(false);
}
