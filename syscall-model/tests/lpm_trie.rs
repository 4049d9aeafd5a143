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
    /// Key data bytes: 4 (IPv4) or 16 (IPv6).
    bytes: usize,
}

const ATTR: u64 = 0x10_0000;
const KEY: u64 = 0x10_1000;
const VALUE: u64 = 0x10_2000;
const NEXT: u64 = 0x10_3000;

/// An address is kept as a u128 whose top `8 * bytes` bits are the key data.
type Addr = u128;

impl Trie {
    fn new(bytes: usize, max_entries: u32) -> Trie {
        let k = Kernel::new(KernelProfile::linux_6_18(Arch::X86_64, 2));
        let p = k.spawn(Cred::root());
        let mem = SimMemory::new();
        mem.map(ATTR, 4 * 4096, true);
        let mut a = [0u8; 72];
        a[0..4].copy_from_slice(&11u32.to_le_bytes()); // BPF_MAP_TYPE_LPM_TRIE
        a[4..8].copy_from_slice(&(4 + bytes as u32).to_le_bytes()); // prefixlen + data
        a[8..12].copy_from_slice(&8u32.to_le_bytes());
        a[12..16].copy_from_slice(&max_entries.to_le_bytes());
        a[16..20].copy_from_slice(&1u32.to_le_bytes()); // BPF_F_NO_PREALLOC
        mem.poke(ATTR, &a);
        let fd = p.bpf(BPF_MAP_CREATE, ATTR, 72, &mem).expect("an LPM trie") as u32;
        Trie { p, mem, fd, bytes }
    }

    fn bits(&self) -> u32 {
        self.bytes as u32 * 8
    }

    fn call(&self, cmd: i32, plen: u32, addr: Addr, value: u64) -> Result<(), Errno> {
        self.mem.poke(KEY, &plen.to_le_bytes());
        self.mem.poke(KEY + 4, &addr.to_be_bytes()[..self.bytes]);
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

    /// The value found, or None on ENOENT (any other error fails the test).
    fn lookup(&self, plen: u32, addr: Addr) -> Option<u64> {
        match self.call(BPF_MAP_LOOKUP_ELEM, plen, addr, 0) {
            Ok(()) => {
                let v = self.mem.peek_or_zero(VALUE, 8);
                Some(u64::from_le_bytes(v.try_into().expect("8 bytes")))
            }
            Err(Errno::ENOENT) => None,
            Err(e) => panic!("lookup {addr:#x}/{plen}: {e:?}"),
        }
    }

    /// Every key GET_NEXT_KEY walks through, from the start (at most `limit` of them, so a
    /// walk that went round in circles fails instead of hanging).
    fn walk(&self, limit: usize) -> Vec<(u32, Addr)> {
        let mut keys = Vec::new();
        let mut key = 0u64;
        while keys.len() <= limit {
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
            let k = self.mem.peek_or_zero(NEXT, 4 + self.bytes);
            let plen = u32::from_le_bytes(k[0..4].try_into().expect("4 bytes"));
            let mut addr = [0u8; 16];
            addr[..self.bytes].copy_from_slice(&k[4..]);
            keys.push((plen, Addr::from_be_bytes(addr)));
            self.mem.poke(KEY, &k);
            key = KEY;
        }
        panic!("GET_NEXT_KEY walked more than {limit} keys");
    }
}

/// The first `plen` bits of `addr`.
fn masked(plen: u32, addr: Addr) -> Addr {
    if plen == 0 {
        0
    } else {
        addr & (Addr::MAX << (128 - plen))
    }
}

/// The longest stored prefix covering `addr`/`plen` (its length and value), by scanning
/// them all.
fn brute_force(stored: &BTreeMap<(u32, Addr), u64>, plen: u32, addr: Addr) -> Option<(u32, u64)> {
    stored
        .iter()
        .filter(|((p, a), _)| *p <= plen && masked(*p, addr) == *a)
        .max_by_key(|((p, _), _)| *p)
        .map(|((p, _), v)| (*p, *v))
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

    /// A prefix length of a `bits`-bit key, biased towards the long ones routing tables
    /// hold (/16-/32 of IPv4, /32-/64 of IPv6), with a few of any length.
    fn plen(&mut self, bits: u32) -> u32 {
        let common = bits.min(64);
        match self.next() % 8 {
            0 => (self.next() % u64::from(bits + 1)) as u32,
            1..=3 => common * 3 / 4,
            _ => common / 2 + (self.next() % u64::from(common / 2 + 1)) as u32,
        }
    }

    /// An address of `bits` bits under one of a few first bytes, so prefixes nest and share
    /// long runs of bits.
    fn addr(&mut self, bits: u32) -> Addr {
        let first = Addr::from([10u8, 172, 192][(self.next() % 3) as usize]) << 120;
        let rest = (Addr::from(self.next()) << 64 | Addr::from(self.next())) >> 8;
        masked(bits, first | rest)
    }
}

/// Rounds of updates (new prefixes and replacements) and deletes, each followed by lookups
/// compared with a brute-force scan and a walk; then every prefix is deleted and the trie
/// is used again from empty.
fn check_against_a_scan(bytes: usize, seed: u64) {
    let trie = Trie::new(bytes, 4096);
    let bits = trie.bits();
    let mut stored = BTreeMap::new();
    let mut rng = Rng(seed);
    // Lookups answered by a long prefix, and by a short one or none.
    let (mut deep, mut shallow) = (0, 0);
    for round in 0..6u64 {
        for i in 0..600u64 {
            let (plen, addr) = (rng.plen(bits), rng.addr(bits));
            let value = round * 1_000_000 + i;
            trie.call(BPF_MAP_UPDATE_ELEM, plen, addr, value)
                .expect("room for every prefix");
            stored.insert((plen, masked(plen, addr)), value);
        }
        let keys: Vec<(u32, Addr)> = stored.keys().copied().collect();
        for (j, &(plen, addr)) in keys.iter().enumerate() {
            if j % 3 == round as usize % 3 {
                assert_eq!(trie.call(BPF_MAP_DELETE_ELEM, plen, addr, 0), Ok(()));
                stored.remove(&(plen, addr));
            }
        }
        // A delete of a prefix that is not stored is ENOENT, whatever covers it.
        let (plen, addr) = (rng.plen(bits), rng.addr(bits));
        if !stored.contains_key(&(plen, masked(plen, addr))) {
            assert_eq!(
                trie.call(BPF_MAP_DELETE_ELEM, plen, addr, 0),
                Err(Errno::ENOENT)
            );
        }
        let keys: Vec<(u32, Addr)> = stored.keys().copied().collect();
        for _ in 0..3000 {
            // Half the addresses at random, half under a stored prefix (random past it).
            let mut addr = rng.addr(bits);
            if rng.next().is_multiple_of(2) {
                let (p, a) = keys[(rng.next() % keys.len() as u64) as usize];
                addr = a | (addr & !masked(p, Addr::MAX));
            }
            let plen = if rng.next().is_multiple_of(4) {
                rng.plen(bits)
            } else {
                bits
            };
            let want = brute_force(&stored, plen, addr);
            match want {
                Some((p, _)) if p >= bits.min(64) / 2 => deep += 1,
                _ => shallow += 1,
            }
            assert_eq!(
                trie.lookup(plen, addr),
                want.map(|(_, v)| v),
                "{bytes}-byte keys, round {round}: lookup {addr:#x}/{plen} among {} prefixes",
                stored.len()
            );
        }
        // Every stored prefix is walked once, more specific ones before those covering them.
        let walked = trie.walk(stored.len());
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
    // Both kinds were asked about, so the comparison had something to say.
    assert!(
        deep > 1000 && shallow > 1000,
        "deep {deep}, shallow {shallow}"
    );
    // Empty again, then used again.
    for &(plen, addr) in stored.keys() {
        assert_eq!(trie.call(BPF_MAP_DELETE_ELEM, plen, addr, 0), Ok(()));
    }
    assert_eq!(trie.walk(0), Vec::new());
    assert_eq!(trie.lookup(bits, rng.addr(bits)), None);
    let addr = rng.addr(bits);
    trie.call(BPF_MAP_UPDATE_ELEM, 8, addr, 7)
        .expect("a prefix");
    trie.call(BPF_MAP_UPDATE_ELEM, bits, addr, 9)
        .expect("a prefix");
    assert_eq!(trie.lookup(bits, addr), Some(9));
    assert_eq!(trie.lookup(bits, addr ^ 1 << (128 - bits)), Some(7));
    // A node keeps the whole key it was made from, bits past its prefix included.
    assert_eq!(trie.walk(2), vec![(bits, addr), (8, addr)]);
}

#[test]
fn ipv4_lookups_find_the_longest_stored_prefix_as_a_scan_of_all_prefixes_does() {
    check_against_a_scan(4, 0x5eed_1e55_0f72_19a3);
}

#[test]
fn ipv6_lookups_find_the_longest_stored_prefix_as_a_scan_of_all_prefixes_does() {
    check_against_a_scan(16, 0x0123_4567_89ab_cdef);
}
