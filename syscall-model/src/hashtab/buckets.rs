//! `htab->buckets` and the elements on them, laid end to end.
//!
//! The kernel allocates `n_buckets` `struct bucket`s up front, each an hlist of `htab_elem`s
//! with the newest at its head, and walks them (get_next_key, the batches) bucket by bucket,
//! each head first. The model keeps that sequence itself, as an index sorted in walk order
//! with gaps (ordered linear probing), and the elements in a slab beside it:
//!
//! - each index entry is 8 bytes, the element's hash and its record in the slab. Bucket `b`
//!   has a home position, `b` scaled from `n_buckets` to the index's capacity, so homes keep
//!   the buckets' order; a bucket's entries sit together at or after its home, newest first,
//!   before the next bucket's, and no gap separates an entry from its home;
//! - a lookup reads entries from the home until the bucket ends (usually within one cache
//!   line) and compares the key of the record whose hash matches;
//! - the walk order is the index order, so the element after a key is the next entry;
//! - a record (`[node, 0 | key | value]`, 8-byte aligned) is one slot of the slab, taken in
//!   the order elements arrive (freed slots first), as the kernel hands out preallocated
//!   elements; it never moves while the element lives, except when the table shrinks;
//! - the index's capacity follows the element count (1.25x to 8x it), not `max_entries`, so
//!   a map of 2^24 entries holding ten costs ten elements' worth; except that a preallocated
//!   map of up to 2^20 entries, whose elements the kernel allocates at creation, gets an
//!   index for all of them and room in the slab with its first element, and keeps them
//!   while it lives. Both are zeroed or reserved memory, used as elements land; the index
//!   is on 2 MiB pages, so a few elements at random make all of it (12 MiB at 2^20) used.
//!
//! Positions in the index move as elements come and go: a position is good until the next
//! change.

use crate::map::{advise_huge_pages, prealloc_entries, prealloc_reserve, BpfMap};
use crate::uaccess::copy_bytes;
use std::sync::Arc;

/// No LRU node.
pub(super) const NIL: u32 = u32::MAX;

/// An unused index entry. No entry is zero: an entry holds its record's number plus one, so
/// an index can start as zeroed memory, which the OS hands out untouched (a preallocated
/// map's index costs pages only where elements land).
const EMPTY: u64 = 0;

/// The index entry of an element: its hash, and its record's number plus one (record numbers
/// stay below 2^31, the most elements a hash map can hold).
#[inline]
fn entry_of(hash: u32, rec: usize) -> u64 {
    u64::from(hash) | (rec as u64 + 1) << 32
}

/// The record number of a used entry.
#[inline]
fn rec_of(entry: u64) -> usize {
    ((entry >> 32) as usize).wrapping_sub(1)
}

/// The record header: the LRU node, and padding to keep the key 8-byte aligned.
const HEADER: usize = 8;

/// The smallest index capacity once an element is stored.
const MIN_CAP: usize = 8;

/// The index grows when it would be more than LOAD_NUM/LOAD_DEN full: with 8-byte entries an
/// ordered linear probe at 80% reads about three entries on a hit, and a miss stops at the
/// first entry of a later bucket, mostly within one cache line.
const LOAD_NUM: usize = 4;
const LOAD_DEN: usize = 5;

/// The next capacity: half as large again.
fn grown(cap: usize) -> usize {
    (cap + cap / 2).max(MIN_CAP)
}

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

/// `memcmp(a, b) == 0` for keys. Up to 16 bytes compare as two fixed-size loads from each
/// end, which may overlap: a libc call per compare of a 4-byte key would cost more than the
/// compare. Longer keys go a word at a time.
#[inline]
fn same_key(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let w8 = |s: &[u8], i: usize| u64::from_ne_bytes(s[i..i + 8].try_into().unwrap_or_default());
    let w4 = |s: &[u8], i: usize| u32::from_ne_bytes(s[i..i + 4].try_into().unwrap_or_default());
    match n {
        0 => true,
        1..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => w4(a, 0) == w4(b, 0) && w4(a, n - 4) == w4(b, n - 4),
        8..=16 => w8(a, 0) == w8(b, 0) && w8(a, n - 8) == w8(b, n - 8),
        _ => {
            let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
            let (ra, rb) = (wa.remainder(), wb.remainder());
            wa.zip(wb).all(|(x, y)| x == y) && ra.iter().zip(rb).all(|(x, y)| x == y)
        }
    }
}

/// An index of `len` empty entries, on transparent huge pages where it is large: a lookup
/// reads it at a random place, and with 4 KiB pages most reads would also miss the TLB. The
/// index is zeroed memory (EMPTY is 0), which a large allocation gets as untouched pages, so
/// the advice comes before the first write: pages faulted in small stay small until
/// khugepaged gets round to them, if ever. (Memory malloc hands back already faulted in may
/// stay small; the advice is harmless there.)
fn empty_index(len: usize) -> Vec<u64> {
    let index = vec![EMPTY; len];
    advise_huge_pages(index.as_ptr().cast(), len * 8);
    index
}

/// The capacity that holds `n` elements without growing.
fn cap_for(n: usize) -> usize {
    (n * LOAD_DEN).div_ceil(LOAD_NUM).max(MIN_CAP)
}

/// The buckets of one hash table and their elements.
pub(super) struct Buckets {
    /// log2 of `n_buckets`.
    n_buckets_bits: u32,
    key_size: usize,
    value_len: usize,
    /// Where the value starts in a record.
    value_at: usize,
    /// Bytes of one record.
    stride: usize,
    /// The capacity the homes are spread over (0 while empty, until a preallocated table's
    /// first element).
    cap: usize,
    /// A preallocated map's `max_entries`, as far as [`prealloc_entries`] gives room for
    /// them (0 for the others): its first element sizes the table for all of them, and the
    /// index never shrinks below that (see [`Buckets::floor`]).
    prealloc: usize,
    /// The index, in walk order: `hash | (record + 1) << 32`, or [`EMPTY`]. Its length is the
    /// capacity plus room past the end for the last buckets' entries.
    index: Vec<u64>,
    /// The slab of records.
    records: Vec<u8>,
    /// Record slots free for reuse.
    free: Vec<u32>,
    /// HASH_OF_MAPS: the inner map each record's element holds (kept alive by it); empty for
    /// the other types.
    inner: Vec<Option<Arc<BpfMap>>>,
    count: usize,
}

impl Buckets {
    /// `n_buckets` is a power of two; `value_len` is what a record stores: `value_size`, or
    /// one 8-byte slot per CPU. `prealloc` is the `max_entries` of a preallocated map, whose
    /// elements the kernel allocates at creation (`prealloc_init`): with the first element
    /// (so that a map that fails its creation, or stays empty, costs nothing) the index is
    /// sized for all of them and the slab's room reserved, and updates never regrow them.
    /// (As far as [`prealloc_entries`] goes; past the end of the index, crowded last buckets
    /// still add slots one at a time.)
    pub(super) fn new(
        n_buckets: u32,
        key_size: usize,
        value_len: usize,
        prealloc: Option<u32>,
    ) -> Buckets {
        let value_at = HEADER + round8(key_size);
        Buckets {
            n_buckets_bits: n_buckets.max(1).trailing_zeros(),
            key_size,
            value_len,
            value_at,
            stride: value_at + round8(value_len),
            cap: 0,
            prealloc: prealloc.map_or(0, |n| prealloc_entries(n as usize)),
            index: Vec::new(),
            records: Vec::new(),
            free: Vec::new(),
            inner: Vec::new(),
            count: 0,
        }
    }

    /// The capacity the index never shrinks below: a preallocated map's, for all its
    /// elements (0 for the others).
    fn floor(&self) -> usize {
        if self.prealloc > 0 {
            cap_for(self.prealloc)
        } else {
            0
        }
    }

    /// A preallocated table's room for all its elements, taken with the first (see `new`).
    fn preallocate(&mut self) {
        self.rebuild(self.floor(), false);
        prealloc_reserve(&mut self.records, self.prealloc.saturating_mul(self.stride));
    }

    /// The number of elements.
    pub(super) fn len(&self) -> usize {
        self.count
    }

    #[inline]
    fn entry(&self, i: usize) -> u64 {
        self.index.get(i).copied().unwrap_or(EMPTY)
    }

    #[inline]
    fn used(&self, i: usize) -> bool {
        self.entry(i) != EMPTY
    }

    /// The record of the element at position `i`.
    #[inline]
    fn rec(&self, i: usize) -> usize {
        rec_of(self.entry(i))
    }

    fn record(&self, i: usize) -> &[u8] {
        let r = self.rec(i);
        &self.records[r * self.stride..(r + 1) * self.stride]
    }

    fn record_mut(&mut self, i: usize) -> &mut [u8] {
        let (r, s) = (self.rec(i), self.stride);
        &mut self.records[r * s..(r + 1) * s]
    }

    #[inline]
    fn bucket_of_entry(&self, entry: u64) -> u32 {
        entry as u32 & ((1u64 << self.n_buckets_bits) - 1) as u32
    }

    /// The bucket of the element at position `i`.
    pub(super) fn bucket(&self, i: usize) -> u32 {
        self.bucket_of_entry(self.entry(i))
    }

    /// The element's LRU node, or [`NIL`].
    pub(super) fn node(&self, i: usize) -> u32 {
        let r = self.record(i);
        u32::from_ne_bytes([r[0], r[1], r[2], r[3]])
    }

    pub(super) fn set_node(&mut self, i: usize, node: u32) {
        self.record_mut(i)[..4].copy_from_slice(&node.to_ne_bytes());
    }

    pub(super) fn key(&self, i: usize) -> &[u8] {
        &self.record(i)[HEADER..HEADER + self.key_size]
    }

    pub(super) fn value(&self, i: usize) -> &[u8] {
        let at = self.value_at;
        &self.record(i)[at..at + self.value_len]
    }

    pub(super) fn value_mut(&mut self, i: usize) -> &mut [u8] {
        let (at, len) = (self.value_at, self.value_len);
        &mut self.record_mut(i)[at..at + len]
    }

    pub(super) fn inner(&self, i: usize) -> Option<&Arc<BpfMap>> {
        self.inner.get(self.rec(i)).and_then(Option::as_ref)
    }

    /// Sets the inner map of the element at position `i` (dropping the one it held).
    pub(super) fn set_inner(&mut self, i: usize, map: Option<Arc<BpfMap>>) {
        let r = self.rec(i);
        if map.is_some() && self.inner.len() <= r {
            self.inner.resize(r + 1, None);
        }
        if let Some(slot) = self.inner.get_mut(r) {
            *slot = map;
        }
    }

    /// The home position of bucket `b`: buckets spread over the capacity in order.
    #[inline]
    fn home(&self, b: u32) -> usize {
        ((u64::from(b) * self.cap as u64) >> self.n_buckets_bits) as usize
    }

    /// `lookup_elem_raw()`: the position of the element of bucket `b` with this hash and key.
    #[inline]
    pub(super) fn find(&self, b: u32, hash: u32, key: &[u8]) -> Option<usize> {
        let mut i = self.home(b);
        loop {
            let e = self.entry(i);
            if e == EMPTY {
                return None;
            }
            let eb = self.bucket_of_entry(e);
            if eb > b {
                return None;
            }
            if eb == b && e as u32 == hash && same_key(self.key(i), key) {
                return Some(i);
            }
            i += 1;
        }
    }

    /// The next element in walk order after position `i`: the next of its bucket, or the head
    /// of the next non-empty bucket.
    pub(super) fn next(&self, i: usize) -> Option<usize> {
        (i + 1..self.index.len()).find(|&j| self.used(j))
    }

    /// The head of the first non-empty bucket at or after bucket `from`.
    pub(super) fn first_from(&self, from: u32) -> Option<usize> {
        if self.count == 0 || u64::from(from) >> self.n_buckets_bits != 0 {
            return None;
        }
        // Entries of earlier buckets may sit past `from`'s home; none of a later one before.
        (self.home(from)..self.index.len()).find(|&j| self.used(j) && self.bucket(j) >= from)
    }

    /// The number of elements of the bucket whose head is at position `i`.
    pub(super) fn run(&self, i: usize) -> usize {
        let b = self.bucket(i);
        (i..self.index.len())
            .take_while(|&j| self.used(j) && self.bucket(j) == b)
            .count()
    }

    /// A new element at the head of bucket `b` (`hlist_nulls_add_head_rcu`), its value zeroed
    /// for the caller to fill. Returns its position.
    pub(super) fn push_head(&mut self, b: u32, hash: u32, key: &[u8], node: u32) -> usize {
        if self.cap == 0 && self.prealloc > 0 {
            // The first element of a preallocated table (which never shrinks back to 0).
            self.preallocate();
        } else if (self.count + 1) * LOAD_DEN > self.cap * LOAD_NUM {
            self.rebuild(grown(self.cap), false);
        }
        let s = self.stride;
        let rec = match self.free.pop() {
            Some(r) => {
                self.records[r as usize * s..][..s].fill(0);
                r as usize
            }
            None => {
                self.records.resize(self.records.len() + s, 0);
                self.records.len() / s - 1
            }
        };
        let r = &mut self.records[rec * s..(rec + 1) * s];
        r[..4].copy_from_slice(&node.to_ne_bytes());
        copy_bytes(&mut r[HEADER..HEADER + key.len()], key);
        let entry = entry_of(hash, rec);
        // The bucket's head position: past the entries of earlier buckets.
        let mut at = self.home(b);
        while self.used(at) && self.bucket(at) < b {
            at += 1;
        }
        // Everything from there to the next free position moves up one; past the end the
        // index grows by a slot (the last buckets' entries have nowhere else to go).
        let free = match (at..self.index.len()).find(|&j| !self.used(j)) {
            Some(free) => free,
            None => {
                self.index.push(EMPTY);
                self.index.len() - 1
            }
        };
        self.index.copy_within(at..free, at + 1);
        self.index[at] = entry;
        self.count += 1;
        at
    }

    /// Moves the element at position `i` to the head of its bucket (a replacement: the kernel
    /// links the new element at the head and unlinks the old). Returns its new position.
    pub(super) fn move_to_head(&mut self, i: usize) -> usize {
        let b = self.bucket(i);
        let mut head = i;
        while head > 0 && self.used(head - 1) && self.bucket(head - 1) == b {
            head -= 1;
        }
        self.index[head..=i].rotate_right(1);
        head
    }

    /// Takes the element at position `i` out (`hlist_nulls_del_rcu`); returns the inner map
    /// it held.
    pub(super) fn remove(&mut self, i: usize) -> Option<Arc<BpfMap>> {
        let inner = self.remove_one(i);
        self.settle();
        inner
    }

    /// Takes out the `n` elements from position `i` on (a whole bucket).
    pub(super) fn remove_run(&mut self, i: usize, n: usize) {
        for _ in 0..n {
            self.remove_one(i);
        }
        self.settle();
    }

    fn remove_one(&mut self, mut i: usize) -> Option<Arc<BpfMap>> {
        let rec = self.rec(i);
        let inner = self.inner.get_mut(rec).and_then(Option::take);
        self.free.push(rec as u32);
        // Entries after it that sit past their home move down to close the gap.
        while self.used(i + 1) && self.home(self.bucket(i + 1)) <= i {
            self.index[i] = self.index[i + 1];
            i += 1;
        }
        self.index[i] = EMPTY;
        self.count -= 1;
        inner
    }

    /// Gives memory back once the table is mostly empty.
    fn settle(&mut self) {
        if self.count == 0 && self.prealloc > 0 {
            // A preallocated map keeps what it was given; its index is all empty again.
            self.records.clear();
            self.free.clear();
            self.inner = Vec::new();
        } else if self.count == 0 {
            self.cap = 0;
            self.index = Vec::new();
            self.records = Vec::new();
            self.free = Vec::new();
            self.inner = Vec::new();
        } else if self.cap > MIN_CAP.max(self.floor()) && self.count * 8 < self.cap {
            self.rebuild((self.count * 2).max(MIN_CAP).max(self.floor()), true);
        }
    }

    /// Lays the index out again over a capacity of `cap`, in the same order; with `compact`,
    /// the records too, in walk order and without holes.
    fn rebuild(&mut self, cap: usize, compact: bool) {
        self.cap = cap;
        let mut index = empty_index(cap + cap / 8 + 8);
        let mut next = 0usize;
        for &e in self.index.iter().filter(|&&e| e != EMPTY) {
            let at = self.home(self.bucket_of_entry(e)).max(next);
            if at >= index.len() {
                // Crowded last buckets run past the end: the index grows, not the capacity
                // (a larger capacity would only spread the other buckets thinner).
                index.resize(at + 1, EMPTY);
            }
            index[at] = e;
            next = at + 1;
        }
        self.index = index;
        if compact {
            let s = self.stride;
            let mut records = Vec::with_capacity(self.count * s);
            let mut inner = Vec::new();
            for e in self.index.iter_mut().filter(|e| **e != EMPTY) {
                let old = rec_of(*e);
                let new = records.len() / s;
                records.extend_from_slice(&self.records[old * s..(old + 1) * s]);
                if let Some(m) = self.inner.get_mut(old).and_then(Option::take) {
                    inner.resize(new + 1, None);
                    inner[new] = Some(m);
                }
                *e = entry_of(*e as u32, new);
            }
            self.records = records;
            self.inner = inner;
            self.free = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::PREALLOC_MAX_ENTRIES;

    #[test]
    fn same_key_differs_at_any_byte_of_any_length() {
        for n in 0..=40usize {
            let a: Vec<u8> = (0..n).map(|i| i as u8 ^ 0xa5).collect();
            assert!(same_key(&a, &a.clone()), "len {n}");
            for i in 0..n {
                let mut b = a.clone();
                b[i] ^= 0x10;
                assert!(!same_key(&a, &b), "len {n}, byte {i}");
            }
            assert!(!same_key(&a, &a[..n.saturating_sub(1)]) || n == 0);
        }
    }

    /// Keys (their first byte) in walk order, with their buckets.
    fn walk(t: &Buckets) -> Vec<(u32, u8)> {
        let mut out = Vec::new();
        let mut i = t.first_from(0);
        while let Some(j) = i {
            out.push((t.bucket(j), t.key(j)[0]));
            i = t.next(j);
        }
        out
    }

    #[test]
    fn a_new_element_goes_to_the_head_of_its_bucket() {
        let mut t = Buckets::new(1024, 1, 8, None);
        for k in 1..=3u8 {
            let i = t.push_head(5, 5, &[k], NIL);
            t.value_mut(i)[0] = k * 10;
        }
        t.push_head(2, 2, &[9], NIL);
        assert_eq!(walk(&t), vec![(2, 9), (5, 3), (5, 2), (5, 1)]);
        let two = t.find(5, 5, &[2]).unwrap();
        assert_eq!(t.value(two)[0], 20);
        t.remove(two);
        assert_eq!(walk(&t), vec![(2, 9), (5, 3), (5, 1)]);
        let one = t.find(5, 5, &[1]).unwrap();
        t.move_to_head(one);
        assert_eq!(walk(&t), vec![(2, 9), (5, 1), (5, 3)]);
        assert_eq!(t.find(5, 5, &[2]), None);
    }

    #[test]
    fn the_walk_is_in_bucket_order_through_growth_and_shrinking() {
        let n: u32 = 1 << 20;
        let mut t = Buckets::new(n, 4, 8, None);
        let mut want = Vec::new();
        // Crowded buckets near the top end and clusters that overlap homes.
        for k in 0..5000u32 {
            let b = (k.wrapping_mul(2_654_435_761) >> 7) & (n - 1);
            let b = if k % 7 == 0 { n - 1 - (k % 3) } else { b };
            t.push_head(b, b, &k.to_le_bytes(), NIL);
            want.push((b, k));
        }
        // Bucket order; within a bucket, newest first.
        want.sort_by_key(|&(b, k)| (b, std::cmp::Reverse(k)));
        let got = || {
            let mut out = Vec::new();
            let mut i = t.first_from(0);
            while let Some(j) = i {
                out.push((
                    t.bucket(j),
                    u32::from_le_bytes(t.key(j).try_into().unwrap()),
                ));
                i = t.next(j);
            }
            out
        };
        assert_eq!(got(), want);
        for &(b, k) in &want {
            assert!(t.find(b, b, &k.to_le_bytes()).is_some(), "key {k}");
        }
        // Remove most: the capacity shrinks, the rest keep their order and stay findable.
        for &(b, k) in want.iter().filter(|(_, k)| k % 10 != 0) {
            let i = t.find(b, b, &k.to_le_bytes()).unwrap();
            t.remove(i);
        }
        want.retain(|(_, k)| k % 10 == 0);
        let got = {
            let mut out = Vec::new();
            let mut i = t.first_from(0);
            while let Some(j) = i {
                out.push((
                    t.bucket(j),
                    u32::from_le_bytes(t.key(j).try_into().unwrap()),
                ));
                i = t.next(j);
            }
            out
        };
        assert_eq!(got, want);
        assert!(
            t.index.len() < 5000,
            "capacity follows the count: {}",
            t.index.len()
        );
        assert!(
            t.records.len() <= 2 * want.len() * t.stride,
            "the records were compacted"
        );
        let (b, _) = want[want.len() / 2];
        let head = t.first_from(b).unwrap();
        assert_eq!(t.bucket(head), b);
        assert_eq!(t.first_from(n), None);
    }

    /// Random inserts, replacements and deletes against the plain picture (a list per
    /// bucket, newest first): same walk, same lookups, at every step.
    #[test]
    fn random_changes_keep_the_kernels_bucket_lists() {
        use std::collections::BTreeMap;
        // Each size grown as it goes and preallocated for the 700 keys at once.
        let sizes = [1u32, 8, 64, 1 << 12].into_iter();
        for (n_buckets, prealloc) in sizes.flat_map(|n| [(n, None), (n, Some(700))]) {
            let mut t = Buckets::new(n_buckets, 2, 4, prealloc);
            let mut lists: BTreeMap<u32, Vec<u16>> = BTreeMap::new();
            let mut x = 0x2545_f491_4f6c_dd1du64;
            for step in 0..6000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let key = (x % 700) as u16;
                // The hash: a spread of the key; the bucket, its low bits.
                let hash = u32::from(key).wrapping_mul(0x9e37_79b9).rotate_left(7);
                let b = hash & (n_buckets - 1);
                let found = t.find(b, hash, &key.to_le_bytes());
                let list = lists.entry(b).or_default();
                let pos = list.iter().position(|k| *k == key);
                assert_eq!(found.is_some(), pos.is_some(), "step {step}");
                match (found, (x >> 40) % 3) {
                    (Some(i), 0) => {
                        t.remove(i);
                        list.retain(|k| *k != key);
                    }
                    (Some(i), _) => {
                        let v = (step as u32).to_le_bytes();
                        let i = t.move_to_head(i);
                        t.value_mut(i).copy_from_slice(&v);
                        list.retain(|k| *k != key);
                        list.insert(0, key);
                    }
                    (None, _) => {
                        let i = t.push_head(b, hash, &key.to_le_bytes(), NIL);
                        t.value_mut(i).copy_from_slice(&(step as u32).to_le_bytes());
                        list.insert(0, key);
                    }
                }
                if step % 97 == 0 || step > 5900 {
                    assert_laid_out(&t);
                    let want: Vec<(u32, u16)> = lists
                        .iter()
                        .flat_map(|(b, l)| l.iter().map(move |k| (*b, *k)))
                        .collect();
                    let mut got = Vec::new();
                    let mut i = t.first_from(0);
                    while let Some(j) = i {
                        got.push((t.bucket(j), u16::from_le_bytes([t.key(j)[0], t.key(j)[1]])));
                        i = t.next(j);
                    }
                    assert_eq!(got, want, "n_buckets {n_buckets} {prealloc:?}, step {step}");
                }
            }
        }
    }

    /// Entries sit at or after their home, with no gap before them, in bucket order.
    fn assert_laid_out(t: &Buckets) {
        for j in (0..t.index.len()).filter(|&j| t.used(j)) {
            let home = t.home(t.bucket(j));
            assert!(home <= j, "entry {j} before its home {home}");
            assert!((home..j).all(|k| t.used(k)), "a gap between {home} and {j}");
            assert!(j == 0 || !t.used(j - 1) || t.bucket(j - 1) <= t.bucket(j));
        }
    }

    /// Keys crowded into the last buckets, whose entries run past the capacity's end: the
    /// layout holds under every change, and deleting them does not rebuild the index each time.
    #[test]
    fn crowded_last_buckets_stay_laid_out_and_cheap_to_empty() {
        let n: u32 = 1 << 20;
        let mut t = Buckets::new(n, 4, 8, None);
        for k in 0..2000u32 {
            let b = n - 1 - k % 3;
            t.push_head(b, b, &k.to_le_bytes(), NIL);
        }
        assert_laid_out(&t);
        let mut rebuilds = 0;
        for k in 0..1980u32 {
            let b = n - 1 - k % 3;
            let i = t.find(b, b, &k.to_le_bytes()).expect("stored");
            let before = t.index.as_ptr();
            t.remove(i);
            rebuilds += usize::from(t.index.as_ptr() != before);
            if k % 100 == 0 {
                assert_laid_out(&t);
            }
        }
        assert_laid_out(&t);
        assert!(rebuilds < 20, "{rebuilds} rebuilds for 1980 deletes");
        for k in 1980..2000u32 {
            let b = n - 1 - k % 3;
            assert!(t.find(b, b, &k.to_le_bytes()).is_some());
        }
    }

    /// prealloc_init(): a preallocated map's index and slab are sized for `max_entries` with
    /// its first element, so filling it never moves them, and emptying it keeps them.
    #[test]
    fn a_preallocated_table_is_sized_once() {
        let n = 5000u32;
        let mut t = Buckets::new(1 << 13, 4, 8, Some(n));
        // Nothing until the first element, which takes the room for all.
        assert!(t.index.is_empty() && t.records.capacity() == 0);
        let hash = |k: u32| k.wrapping_mul(0x9e37_79b9);
        t.push_head(hash(0) & 0x1fff, hash(0), &0u32.to_le_bytes(), NIL);
        let (index, records) = (t.index.as_ptr(), t.records.as_ptr());
        let len = t.index.len();
        for k in 1..n {
            t.push_head(hash(k) & 0x1fff, hash(k), &k.to_le_bytes(), NIL);
        }
        assert_laid_out(&t);
        assert_eq!(t.len(), n as usize);
        for k in 0..n {
            let i = t.find(hash(k) & 0x1fff, hash(k), &k.to_le_bytes()).unwrap();
            t.remove(i);
            if k % 1000 == 0 {
                assert_laid_out(&t);
            }
        }
        assert_eq!((t.index.as_ptr(), t.records.as_ptr()), (index, records));
        assert_eq!(t.index.len(), len);
        assert!(t.index.iter().all(|&e| e == EMPTY));
        // Used again from empty, in the same memory.
        let i = t.push_head(3, 3, &[1, 2, 3, 4], NIL);
        assert_eq!(t.find(3, 3, &[1, 2, 3, 4]), Some(i));
        assert_eq!(t.index.as_ptr(), index);
        // Past the limit, a map grows like any other.
        let mut big = Buckets::new(1 << 31, 4, 8, Some(PREALLOC_MAX_ENTRIES as u32 + 1));
        big.push_head(3, 3, &[1, 2, 3, 4], NIL);
        assert_eq!(big.cap, MIN_CAP);
    }

    #[test]
    fn an_emptied_table_holds_no_memory() {
        let mut t = Buckets::new(1 << 31, 4, 8, None);
        let i = t.push_head(7, 7, &[1, 2, 3, 4], NIL);
        let j = t.push_head(7, 7, &[5, 6, 7, 8], NIL);
        assert_eq!((i, j), (0, 0));
        assert_eq!(t.run(0), 2);
        t.remove_run(0, 2);
        assert!(t.records.is_empty());
        assert_eq!(t.first_from(0), None);
    }
}
