//! One element command in a loop, for a profiler: the model alone, no harness around it.
//!
//! `hot_loop [MAP_TYPE [ENTRIES [ROUNDS [CMD]]]]` (defaults: 2 (ARRAY), 1000, 20000, all)
//! fills a map of ENTRIES 4-byte keys (for an LPM trie, /32 prefixes of 4-byte addresses)
//! and 8-byte values, timing the inserts once, then times, in ns per call, a lookup on a
//! closed fd (the fixed cost up to fdget), BPF_MAP_UPDATE_ELEM (CMD 2) and
//! BPF_MAP_LOOKUP_ELEM (CMD 1) over every key ROUNDS times; CMD 0 times the closed-fd lookup
//! alone. For example:
//!
//! ```text
//! cargo build --profile perf --example hot_loop
//! perf record --call-graph dwarf target/perf/examples/hot_loop 1 1000000 5 1
//! ```
use std::time::Instant;
use syscall_model::uaccess::SimMemory;
use syscall_model::{Cred, Kernel, KernelProfile};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u32| -> u32 {
        match args.get(i).map(|s| s.parse()) {
            None => default,
            Some(Ok(v)) => v,
            Some(Err(e)) => panic!("argument {i} ({:?}): {e}", args[i]),
        }
    };
    let (map_type, n, rounds) = (arg(1, 2), arg(2, 1000), arg(3, 20000));
    let only = args.get(4).map(|_| arg(4, 0) as i32);
    let k = Kernel::new(KernelProfile::linux_6_18(syscall_model::Arch::X86_64, 2));
    let p = k.spawn(Cred::root());
    let mem = SimMemory::new();
    let base = 0x10_0000u64;
    // BPF_MAP_TYPE_LPM_TRIE keys start with the prefix length, and it needs BPF_F_NO_PREALLOC.
    let lpm = map_type == 11;
    let key_size: u32 = if lpm { 8 } else { 4 };
    mem.map(base, 4096 + n as u64 * (32 + key_size as u64) + 4096, true);
    let mut a = [0u8; 72];
    a[0..4].copy_from_slice(&map_type.to_le_bytes());
    a[4..8].copy_from_slice(&key_size.to_le_bytes());
    a[8..12].copy_from_slice(&8u32.to_le_bytes());
    a[12..16].copy_from_slice(&n.to_le_bytes());
    a[16..20].copy_from_slice(&u32::from(lpm).to_le_bytes());
    mem.poke(base, &a);
    let fd = p.bpf(0, base, 72, &mem).expect("BPF_MAP_CREATE") as u32;
    let keys = base + 4096;
    let val = keys + n as u64 * key_size as u64;
    let attrs = val + 64;
    for i in 0..n {
        let key = keys + i as u64 * key_size as u64;
        if lpm {
            mem.poke(key, &32u32.to_le_bytes());
            mem.poke(key + 4, &i.to_be_bytes());
        } else {
            mem.poke(key, &i.to_le_bytes());
        }
        let mut at = [0u8; 32];
        at[0..4].copy_from_slice(&fd.to_le_bytes());
        at[8..16].copy_from_slice(&key.to_le_bytes());
        at[16..24].copy_from_slice(&val.to_le_bytes());
        mem.poke(attrs + i as u64 * 32, &at);
    }
    // Filling the map: each update inserts a new key.
    let t = Instant::now();
    for i in 0..n {
        p.bpf(2, attrs + i as u64 * 32, 32, &mem)
            .expect("filling the map");
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("insert: {ns:.1} ns (once)");
    // The fixed cost up to the fd: a lookup on fd 999 (EBADF after the attr copy and checks).
    let bad = (attrs + n as u64 * 32).next_multiple_of(4096) + 4096;
    let mut at = [0u8; 32];
    at[0..4].copy_from_slice(&999u32.to_le_bytes());
    mem.map(bad, 32, true);
    mem.poke(bad, &at);
    let t = Instant::now();
    let reps = if only == Some(0) {
        rounds * n
    } else {
        rounds * n / 10
    };
    for _ in 0..reps {
        let _ = p.bpf(1, bad, 32, &mem);
    }
    let ns = t.elapsed().as_nanos() as f64 / reps as f64;
    println!("ebadf: {ns:.1} ns");
    for (name, cmd) in [("update", 2), ("lookup", 1)] {
        if only.is_some_and(|o| o != cmd) {
            continue;
        }
        let t = Instant::now();
        for _ in 0..rounds {
            for i in 0..n {
                let _ = p.bpf(cmd, attrs + i as u64 * 32, 32, &mem);
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / (rounds as f64 * n as f64);
        println!("{name}: {ns:.1} ns");
    }
}
