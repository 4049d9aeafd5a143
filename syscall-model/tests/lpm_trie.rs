//! BPF_MAP_TYPE_LPM_TRIE against a brute-force longest-prefix match: random IPv4-sized
//! prefixes go in and out, and every lookup must find what a scan of the stored prefixes
//! finds. The scenarios compare the trie with real kernels on small tries; this checks deep
//! ones, thousands of nodes, where the walk and the node slab do most of their work.

use std::collections::BTreeMap;
use syscall_model::uaccess::SimMemory;
use syscall_model::{Arch, Cred, Errno, Kernel, KernelProfile, Process};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_GET_NEXT_KEY: i32 = 4;

/// One attr page, one key page and one value page, reused by every call.
struct Trie {
    p: Process,
    mem: SimMemory,
    fd: u32,
}

const ATTR: u64 = 0x10_0000;
const KEY: u64 = 0x10_1000;
const VALUE: u64 = 0x10_2000;
const NEXT: u64 = 0x10_3000;

impl Trie {
    fn new(max_entries: u32) -> Trie {
        let k = Kernel::new(KernelProfile::linux_6_18(Arch::X86_64, 2));
        let p = k.spawn(Cred::root());
        let mem = SimMemory::new();
        mem.map(ATTR, 4 * 4096, true);
        let mut a = [0u8; 72];
        a[0..4].copy_from_slice(&11u32.to_le_bytes()); // BPF_MAP_TYPE_LPM_TRIE
        a[4..8].copy_from_slice(&8u32.to_le_bytes()); // prefixlen + 4 data bytes
        a[8..12].copy_from_slice(&8u32.to_le_bytes());
        a[12..16].copy_from_slice(&max_entries.to_le_bytes());
        a[16..20].copy_from_slice(&1u32.to_le_bytes()); // BPF_F_NO_PREALLOC
        mem.poke(ATTR, &a);
        let fd = p.bpf(BPF_MAP_CREATE, ATTR, 72, &mem).expect("an LPM trie") as u32;
        Trie { p, mem, fd }
    }

    fn call(&self, cmd: i32, plen: u32, addr: u32, value: u64) -> Result<(), Errno> {
        self.mem.poke(KEY, &plen.to_le_bytes());
        self.mem.poke(KEY + 4, &addr.to_be_bytes());
        self.mem.poke(VALUE, &value.to_le_bytes());
        let mut a = [0u8; 32];
        a[0..4].copy_from_slice(&self.fd.to_le_bytes());
        a[8..16].copy_from_slice(&KEY.to_le_bytes());
        if cmd != BPF_MAP_DELETE_ELEM {
            // DELETE's attr ends at the key: CHECK_ATTR wants the rest zero.
            a[16..24].copy_from_slice(&VALUE.to_le_bytes());
        }
        self.mem.poke(ATTR, &a);
        self.p.bpf(cmd, ATTR, 32, &self.mem).map(|_| ())
    }

    fn lookup(&self, plen: u32, addr: u32) -> Option<u64> {
        self.call(BPF_MAP_LOOKUP_ELEM, plen, addr, 0).ok()?;
        let v = self.mem.peek_or_zero(VALUE, 8);
        Some(u64::from_le_bytes(v.try_into().expect("8 bytes")))
    }

    /// Every key GET_NEXT_KEY walks through, from the start.
    fn walk(&self) -> Vec<(u32, u32)> {
        let mut keys = Vec::new();
        let mut key = 0u64;
        loop {
            let mut a = [0u8; 32];
            a[0..4].copy_from_slice(&self.fd.to_le_bytes());
            a[8..16].copy_from_slice(&key.to_le_bytes());
            a[16..24].copy_from_slice(&NEXT.to_le_bytes());
            self.mem.poke(ATTR, &a);
            if self
                .p
                .bpf(BPF_MAP_GET_NEXT_KEY, ATTR, 32, &self.mem)
                .is_err()
            {
                return keys;
            }
            let k = self.mem.peek_or_zero(NEXT, 8);
            let plen = u32::from_le_bytes(k[0..4].try_into().expect("4 bytes"));
            let addr = u32::from_be_bytes(k[4..8].try_into().expect("4 bytes"));
            keys.push((plen, addr));
            self.mem.poke(KEY, &k);
            key = KEY;
        }
    }
}

/// The first `plen` bits of `addr`.
fn masked(plen: u32, addr: u32) -> u32 {
    if plen == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - plen))
    }
}

/// The value of the longest stored prefix covering `addr`/`plen`, by scanning them all.
fn brute_force(stored: &BTreeMap<(u32, u32), u64>, plen: u32, addr: u32) -> Option<u64> {
    stored
        .iter()
        .filter(|((p, a), _)| *p <= plen && masked(*p, addr) == *a)
        .max_by_key(|((p, _), _)| *p)
        .map(|(_, v)| *v)
}

/// xorshift64*: a fixed stream, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A prefix length biased towards the long ones routing tables hold, with a few short.
    fn plen(&mut self) -> u32 {
        match self.next() % 8 {
            0 => (self.next() % 33) as u32,
            1..=3 => 24,
            _ => 16 + (self.next() % 17) as u32,
        }
    }

    /// An address in a few /8s, so prefixes nest and share long runs of bits.
    fn addr(&mut self) -> u32 {
        let top = [10u32, 172, 192][(self.next() % 3) as usize] << 24;
        top | (self.next() as u32 & 0x00ff_ffff)
    }
}

#[test]
fn lookups_find_the_longest_stored_prefix_as_a_scan_of_all_prefixes_does() {
    let trie = Trie::new(4096);
    let mut stored = BTreeMap::new();
    let mut rng = Rng(0x5eed_1e55_0f72_19a3);
    for round in 0..6 {
        // Updates (new prefixes and replacements), then deletes of about a third.
        for i in 0..600u64 {
            let (plen, addr) = (rng.plen(), rng.addr());
            let value = round * 1_000_000 + i;
            trie.call(BPF_MAP_UPDATE_ELEM, plen, addr, value)
                .expect("room for every prefix");
            stored.insert((plen, masked(plen, addr)), value);
        }
        let keys: Vec<(u32, u32)> = stored.keys().copied().collect();
        for (j, &(plen, addr)) in keys.iter().enumerate() {
            if j % 3 == round as usize % 3 {
                assert_eq!(trie.call(BPF_MAP_DELETE_ELEM, plen, addr, 0), Ok(()));
                stored.remove(&(plen, addr));
            }
        }
        // A delete of a prefix that is not stored is ENOENT, whatever covers it.
        let (plen, addr) = (rng.plen(), rng.addr());
        if !stored.contains_key(&(plen, masked(plen, addr))) {
            assert_eq!(
                trie.call(BPF_MAP_DELETE_ELEM, plen, addr, 0),
                Err(Errno::ENOENT)
            );
        }
        for _ in 0..3000 {
            let addr = rng.addr();
            let plen = if rng.next().is_multiple_of(4) {
                rng.plen()
            } else {
                32
            };
            assert_eq!(
                trie.lookup(plen, addr),
                brute_force(&stored, plen, addr),
                "round {round}: lookup {addr:#010x}/{plen} among {} prefixes",
                stored.len()
            );
        }
        // Every stored prefix is walked once, more specific ones before those covering them.
        let walked = trie.walk();
        assert_eq!(walked.len(), stored.len(), "round {round}");
        let mut seen = BTreeMap::new();
        for (i, &(plen, addr)) in walked.iter().enumerate() {
            assert!(
                stored.contains_key(&(plen, masked(plen, addr))),
                "{addr:#x}/{plen}"
            );
            assert!(
                seen.insert((plen, masked(plen, addr)), i).is_none(),
                "twice"
            );
        }
        for (&(p, a), &i) in &seen {
            for (&(q, b), &j) in &seen {
                if q > p && masked(p, b) == a {
                    assert!(
                        j < i,
                        "{b:#x}/{q} is walked before {a:#x}/{p}, which covers it"
                    );
                }
            }
        }
    }
}
