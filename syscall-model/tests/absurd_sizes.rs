//! Absurd sizes: max_entries near 2^32, values near their limits. The model gives the errno of
//! the kernel's size checks; a map that passes them but preallocates more than the modelled
//! machine has (`KernelProfile::mem_total`) is ENOMEM, as the kernel's `bpf_map_area_alloc`
//! would make it; and whatever it creates, the model allocates in proportion to what is
//! stored, never to max_entries (except that a preallocated hash map of up to 2^20 entries
//! gets its index and the room for all its elements with the first, as the kernel allocates
//! them at creation). These calls are never made on the host kernel: there they really
//! allocate, and the OOM killer has taken test runs down that way.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use syscall_model::uaccess::SimMemory;
use syscall_model::{Arch, Cred, Errno, Kernel, KernelProfile, Process};

/// The system allocator, keeping the high-water mark of live bytes.
struct Peak;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc_zeroed(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        System.dealloc(p, l)
    }
}

/// The tests measure the one allocator's counts, so they take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[global_allocator]
static A: Peak = Peak;

/// At most this much may be allocated while one absurd map is created and used.
const BUDGET: isize = 16 << 20;

const BASE: u64 = 0x10_0000;

/// A 6.18 kernel on a machine of `mem` bytes.
fn process_with(mem_total: u64) -> (Process, SimMemory) {
    let mut profile = KernelProfile::linux_6_18(Arch::X86_64, 2);
    profile.mem_total = mem_total;
    let k = Kernel::new(profile);
    let mem = SimMemory::new();
    mem.map(BASE, 1 << 16, true);
    (k.spawn(Cred::root()), mem)
}

fn process() -> (Process, SimMemory) {
    process_with(1 << 30)
}

fn create(
    p: &Process,
    mem: &SimMemory,
    t: u32,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
) -> Result<i32, Errno> {
    let mut a = [0u8; 72];
    for (i, v) in [t, key, value, max, flags].into_iter().enumerate() {
        a[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    mem.poke(BASE, &a);
    p.bpf(0, BASE, 72, mem)
}

/// Creates a map (and runs `then` on it) within the budget; the call's result.
fn within_budget(what: &str, f: impl FnOnce() -> Result<i32, Errno>) -> Result<i32, Errno> {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let r = f();
    let used = PEAK.load(Ordering::Relaxed) - before;
    assert!(used < BUDGET, "{what}: the model allocated {used} bytes");
    r
}

const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PERCPU_ARRAY: u32 = 6;
const LPM_TRIE: u32 = 11;
const QUEUE: u32 = 22;
const BLOOM_FILTER: u32 = 30;
const NO_PREALLOC: u32 = 1;

#[test]
fn size_checks_give_the_kernels_errno_without_allocating() {
    let (p, m) = process();
    // array_map_alloc_check(): value_size > INT_MAX, and a per-CPU value past
    // PCPU_MIN_UNIT_SIZE (32 KiB).
    let r = within_budget("array value 2^31", || {
        create(&p, &m, ARRAY, 4, 0x8000_0000, 1, 0)
    });
    assert_eq!(r, Err(Errno::E2BIG));
    let r = within_budget("percpu value 32769", || {
        create(&p, &m, PERCPU_ARRAY, 4, 32769, 1 << 20, 0)
    });
    assert_eq!(r, Err(Errno::E2BIG));
    // htab_map_alloc(): max_entries past 2^31, and n_buckets * sizeof(struct bucket) past u32.
    let r = within_budget("hash 2^31 + 1", || {
        create(&p, &m, HASH, 4, 8, 0x8000_0001, 0)
    });
    assert_eq!(r, Err(Errno::E2BIG));
    let r = within_budget("hash 2^28 + 1", || {
        create(&p, &m, HASH, 4, 8, 0x1000_0001, 0)
    });
    assert_eq!(r, Err(Errno::E2BIG));
}

#[test]
fn maps_that_preallocate_more_than_the_machine_has_are_enomem() {
    let (p, m) = process();
    // Each passes the size checks; each would make a kernel allocate far past 1 GiB up front.
    let cases = [
        ("array of 2^32 - 1 u64", ARRAY, 4, 8, u32::MAX, 0),
        ("array of 2^16 1 MiB values", ARRAY, 4, 1 << 20, 1 << 16, 0),
        ("preallocated hash of 2^27", HASH, 4, 8, 1 << 27, 0),
        ("queue of 2^24 64 KiB values", QUEUE, 0, 1 << 16, 1 << 24, 0),
    ];
    for (what, t, k, v, max, flags) in cases {
        let r = within_budget(what, || create(&p, &m, t, k, v, max, flags));
        assert_eq!(r, Err(Errno::ENOMEM), "{what}");
    }
}

#[test]
fn maps_that_pass_cost_the_model_what_they_store() {
    // Types that allocate per element (or a bit array) create at any size...
    let (p, m) = process();
    let cases = [
        // (A hash always allocates its buckets: 2^24 of them are 256 MiB.)
        (
            "hash of 2^24 big elements, no prealloc",
            HASH,
            512,
            1 << 20,
            1 << 24,
            NO_PREALLOC,
        ),
        (
            "LPM trie of 2^32 - 1",
            LPM_TRIE,
            8,
            8,
            u32::MAX,
            NO_PREALLOC,
        ),
        ("bloom filter of 2^32 - 1", BLOOM_FILTER, 0, 8, u32::MAX, 0),
    ];
    for (what, t, k, v, max, flags) in cases {
        let r = within_budget(what, || create(&p, &m, t, k, v, max, flags));
        assert!(r.is_ok(), "{what}: {r:?}");
    }
    // ...and on a machine with a terabyte, so do the preallocated ones, without the model
    // allocating them.
    let (p, m) = process_with(1 << 40);
    for (what, t, k, v, max) in [
        ("array of 2^32 - 1 u64", ARRAY, 4, 8, u32::MAX),
        ("preallocated hash of 2^27", HASH, 4, 8, 1 << 27),
        ("queue of 2^23 64 KiB values", QUEUE, 0, 1 << 16, 1 << 23),
    ] {
        let r = within_budget(what, || create(&p, &m, t, k, v, max, 0));
        assert!(r.is_ok(), "{what} on a 1 TiB machine: {r:?}");
    }
}

/// prealloc_init(): the kernel allocates a preallocated hash map's elements when it creates
/// the map, and so the model gives one of up to 2^20 entries its index and the room for all
/// its elements in one go, with the first (zeroed and reserved memory, used as elements
/// land): what max_entries elements take, once. A map that stays empty costs nothing, and
/// one of an entry more grows as it fills, like any other.
#[test]
fn a_preallocated_hash_gets_room_for_max_entries_with_its_first_element() {
    let (p, m) = process();
    let update = |fd: i32| {
        let (key, value) = (BASE + 0x1000, BASE + 0x2000);
        m.poke(key, &7u32.to_le_bytes());
        let mut a = [0u8; 32];
        a[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
        a[8..16].copy_from_slice(&key.to_le_bytes());
        a[16..24].copy_from_slice(&value.to_le_bytes());
        m.poke(BASE + 0x3000, &a);
        p.bpf(2, BASE + 0x3000, 32, &m)
    };
    let fd = within_budget("preallocated hash of 2^20, empty", || {
        create(&p, &m, HASH, 4, 8, 1 << 20, 0)
    })
    .expect("hash of 2^20");
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = LIVE.load(Ordering::Relaxed);
    assert_eq!(update(fd), Ok(0));
    let used = LIVE.load(Ordering::Relaxed) - before;
    drop(turn);
    // 2^20 records of 24 bytes (node, key, value), and an index of 8-byte slots for 1.25x
    // as many (what other tests allocate meanwhile moves this by far less than the margins).
    let records = 24 << 20;
    let index = 10 << 20;
    assert!(
        used >= records + index * 3 / 4 && used < records + 2 * index,
        "the model allocated {used} bytes"
    );
    p.close(fd).unwrap();
    let r = within_budget("preallocated hash of 2^20 + 1, one element", || {
        update(create(&p, &m, HASH, 4, 8, (1 << 20) + 1, 0)?)
    });
    assert_eq!(r, Ok(0));
}

#[test]
fn the_far_end_of_a_huge_array_is_written_without_the_rest() {
    let (p, m) = process_with(1 << 40);
    let fd = create(&p, &m, ARRAY, 4, 8, u32::MAX, 0).expect("array");
    let r = within_budget("update and lookup at index 2^32 - 2", || {
        let key = BASE + 0x1000;
        let value = BASE + 0x2000;
        m.poke(key, &(u32::MAX - 1).to_le_bytes());
        m.poke(value, &0x1122_3344_5566_7788u64.to_le_bytes());
        let mut a = [0u8; 32];
        a[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
        a[8..16].copy_from_slice(&key.to_le_bytes());
        a[16..24].copy_from_slice(&value.to_le_bytes());
        m.poke(BASE, &a);
        p.bpf(2, BASE, 32, &m)?;
        m.poke(value, &[0; 8]);
        p.bpf(1, BASE, 32, &m)
    });
    assert_eq!(r, Ok(0));
    assert_eq!(
        m.peek_or_zero(BASE + 0x2000, 8),
        0x1122_3344_5566_7788u64.to_le_bytes()
    );
}
