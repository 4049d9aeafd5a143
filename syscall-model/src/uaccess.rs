//! User memory: what `copy_from_user` and `copy_to_user` reach.
//!
//! The model never dereferences a pointer of its own; every user pointer in an attr goes
//! through a [`UserMemory`]. [`SimMemory`] is a page-granular simulated address space in which
//! address 0 and anything not mapped fault, so EFAULT for a NULL, unmapped or read-only pointer
//! comes out of the same rule the kernel applies.

use crate::index_hash::IndexBuild;
use std::cell::Cell;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

/// A faulting user access: the first address that could not be read or written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub addr: u64,
}

/// The address space of the calling process.
pub trait UserMemory: Send + Sync {
    /// `copy_from_user`: fills `buf` from `addr`, or reports the first unreadable address.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault>;
    /// `copy_to_user`: writes `data` at `addr`. On a fault the bytes before the faulting address
    /// have been written, as the kernel's byte-exact fixup leaves them.
    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault>;
}

/// Bytes the kernel copies in from or out to user space: a key, a value, a word of an attr. Up
/// to [`UserBytes::INLINE`] of them live on the stack, so an element command of the usual sizes
/// allocates nothing for its copies.
pub struct UserBytes {
    len: usize,
    inline: [u8; UserBytes::INLINE],
    heap: Vec<u8>,
}

impl UserBytes {
    pub const INLINE: usize = 64;

    /// `len` zero bytes.
    #[inline]
    pub fn zeroed(len: usize) -> UserBytes {
        UserBytes {
            len,
            inline: [0; UserBytes::INLINE],
            heap: if len > UserBytes::INLINE {
                vec![0; len]
            } else {
                Vec::new()
            },
        }
    }

    /// Makes this `len` zero bytes, in place.
    #[inline]
    pub fn reset(&mut self, len: usize) {
        if len > UserBytes::INLINE {
            self.heap.clear();
            self.heap.resize(len, 0);
        } else {
            self.inline[..len].fill(0);
        }
        self.len = len;
    }

    pub fn into_vec(self) -> Vec<u8> {
        if self.len > UserBytes::INLINE {
            self.heap
        } else {
            self.inline[..self.len].to_vec()
        }
    }
}

impl std::ops::Deref for UserBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        if self.len > UserBytes::INLINE {
            &self.heap
        } else {
            &self.inline[..self.len]
        }
    }
}

impl std::ops::DerefMut for UserBytes {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        if self.len > UserBytes::INLINE {
            &mut self.heap
        } else {
            &mut self.inline[..self.len]
        }
    }
}

/// `dst.copy_from_slice(src)` for the equal-length slices of a value or key. Up to 16 bytes
/// go as two fixed-size copies that may overlap (a compiler turns a byte loop of unknown
/// length into a call to memcpy, which costs more than the copy); more go through memcpy.
#[inline]
pub(crate) fn copy_bytes(dst: &mut [u8], src: &[u8]) {
    let n = dst.len();
    if n != src.len() || n > 16 {
        dst.copy_from_slice(src);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n >= 2 {
        dst[..2].copy_from_slice(&src[..2]);
        dst[n - 2..].copy_from_slice(&src[n - 2..]);
    } else if n == 1 {
        dst[0] = src[0];
    }
}

const PAGE: u64 = 4096;
const WORDS: usize = PAGE as usize / 8;

/// One page frame. Its bytes are atomic words, so threads copying in and out of the same page
/// at once (as a program's threads and the kernel do) race as hardware does, never as
/// undefined behaviour. A page number keeps its frame for the life of the address space:
/// unmapping only clears `mapped`, and mapping again zeroes the frame. That is what lets each
/// thread cache page-number -> frame translations (see `TLB`) without ever invalidating them.
struct Frame {
    words: [AtomicU64; WORDS],
    mapped: AtomicBool,
    writable: AtomicBool,
}

impl Frame {
    fn new() -> Frame {
        Frame {
            words: [const { AtomicU64::new(0) }; WORDS],
            mapped: AtomicBool::new(false),
            writable: AtomicBool::new(false),
        }
    }

    /// Copies `buf.len()` bytes from page offset `at` (the range stays inside the page): the
    /// bytes before the first whole word, the whole words, the bytes after the last.
    #[inline(always)]
    fn load(&self, at: usize, buf: &mut [u8]) {
        let head = ((8 - at % 8) % 8).min(buf.len());
        let (first, rest) = buf.split_at_mut(head);
        if head > 0 {
            let w = self.words[at / 8].load(Ordering::Relaxed).to_ne_bytes();
            copy_bytes(first, &w[at % 8..at % 8 + head]);
        }
        let from = (at + head) / 8;
        let last = from + rest.len() / 8;
        let mut whole = rest.chunks_exact_mut(8);
        for (d, w) in whole.by_ref().zip(&self.words[from..]) {
            d.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
        }
        let tail = whole.into_remainder();
        if !tail.is_empty() {
            let w = self.words[last].load(Ordering::Relaxed).to_ne_bytes();
            copy_bytes(tail, &w[..tail.len()]);
        }
    }

    /// Copies `data` to page offset `at` (inside the page). Whole words are stored; the bytes
    /// of a word partly covered are merged in, leaving its other bytes as they are.
    #[inline(always)]
    fn store(&self, at: usize, data: &[u8]) {
        let head = ((8 - at % 8) % 8).min(data.len());
        let (first, rest) = data.split_at(head);
        if head > 0 {
            self.merge(at / 8, at % 8, first);
        }
        let from = (at + head) / 8;
        let whole = rest.chunks_exact(8);
        let tail = whole.remainder();
        for (s, w) in whole.zip(&self.words[from..]) {
            let mut b = [0u8; 8];
            b.copy_from_slice(s);
            w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
        }
        if !tail.is_empty() {
            self.merge(from + rest.len() / 8, 0, tail);
        }
    }

    /// Writes `part` into word `w` from byte `skip` on, atomically with the word's other bytes.
    fn merge(&self, w: usize, skip: usize, part: &[u8]) {
        let merge = |old: u64| {
            let mut b = old.to_ne_bytes();
            copy_bytes(&mut b[skip..skip + part.len()], part);
            Some(u64::from_ne_bytes(b))
        };
        // The closure always returns Some: the update cannot fail.
        let _ = self.words[w].fetch_update(Ordering::Relaxed, Ordering::Relaxed, merge);
    }

    fn clear(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }
}

/// A simulated address space made of 4 KiB pages. A page once mapped keeps its 4 KiB frame
/// until the address space is dropped, unmapped or not: map and unmap the same ranges (as the
/// harness and the fuzz targets do), not ever new ones.
pub struct SimMemory {
    /// Every page number ever mapped, with its frame (mapped or not now). Frames are boxed
    /// and never removed, so a frame's address is stable for the life of the address space.
    frames: RwLock<HashMap<u64, Box<Frame>, IndexBuild>>,
    /// Names this address space in the threads' TLBs; never reused.
    id: u64,
}

impl Default for SimMemory {
    fn default() -> SimMemory {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        SimMemory {
            frames: RwLock::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// Entries of each thread's TLB.
const TLB_ENTRIES: usize = 64;

/// One TLB entry: (address space id, page number, frame).
type TlbEntry = Cell<(u64, u64, *const Frame)>;

thread_local! {
    /// Each thread's cache of page translations, as a CPU's TLB: (address space, page number)
    /// -> frame. Entries never go stale while their address space lives, since a page number
    /// keeps its frame; ids are never reused, so an entry of an address space that is gone is
    /// never matched again.
    static TLB: [TlbEntry; TLB_ENTRIES] =
        const { [const { Cell::new((0, 0, std::ptr::null())) }; TLB_ENTRIES] };
}

impl SimMemory {
    pub fn new() -> SimMemory {
        SimMemory::default()
    }

    fn table(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u64, Box<Frame>, IndexBuild>> {
        self.frames.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The frame of page number `page`, if it was ever mapped, through this thread's TLB.
    #[inline(always)]
    fn frame(&self, page: u64) -> Option<&Frame> {
        let slot = (page as usize) % TLB_ENTRIES;
        let (id, p, frame) = TLB.with(|tlb| tlb[slot].get());
        if id == self.id && p == page {
            // SAFETY: the entry was filled from this address space's table (ids are unique),
            // whose boxed frames stay at their addresses and are only freed with the address
            // space itself, which `&self` keeps alive.
            return Some(unsafe { &*frame });
        }
        self.frame_miss(page, slot)
    }

    /// A TLB miss: the frame from the address space's table, remembered in `slot`. Out of line,
    /// so that the hit path of every copy stays short.
    #[cold]
    #[inline(never)]
    fn frame_miss(&self, page: u64, slot: usize) -> Option<&Frame> {
        let table = self.table();
        let frame: *const Frame = &**table.get(&page)?;
        TLB.with(|tlb| tlb[slot].set((self.id, page, frame)));
        // SAFETY: the frame is boxed in this address space's table, which never frees a frame
        // while `self` (and so the reference returned) lives.
        Some(unsafe { &*frame })
    }

    /// Maps the pages covering `[addr, addr + len)`, zero-filled. Page 0 can never be mapped,
    /// so NULL always faults.
    pub fn map(&self, addr: u64, len: u64, writable: bool) {
        let mut frames = self.frames.write().unwrap_or_else(|e| e.into_inner());
        let first = addr / PAGE;
        let last = addr.saturating_add(len.max(1) - 1) / PAGE;
        for p in first.max(1)..=last {
            let frame = match frames.entry(p) {
                Entry::Occupied(e) => {
                    e.get().clear();
                    e.into_mut()
                }
                Entry::Vacant(e) => e.insert(Box::new(Frame::new())),
            };
            frame.writable.store(writable, Ordering::Relaxed);
            frame.mapped.store(true, Ordering::Release);
        }
    }

    /// Removes the pages covering `[addr, addr + len)`.
    pub fn unmap(&self, addr: u64, len: u64) {
        let frames = self.table();
        let first = addr / PAGE;
        let last = addr.saturating_add(len.max(1) - 1) / PAGE;
        if last - first >= frames.len() as u64 {
            // A range wider than what was ever mapped: look at the frames, not the range.
            for (_, frame) in frames.iter().filter(|(p, _)| (first..=last).contains(*p)) {
                frame.mapped.store(false, Ordering::Release);
            }
            return;
        }
        for p in first..=last {
            if let Some(frame) = frames.get(&p) {
                frame.mapped.store(false, Ordering::Release);
            }
        }
    }

    /// The frame of page number `page` if it is mapped now (readable).
    #[inline(always)]
    fn mapped(&self, page: u64) -> Option<&Frame> {
        self.frame(page)
            .filter(|f| f.mapped.load(Ordering::Acquire))
    }

    /// The frame of page number `page` if it is mapped now and writable.
    #[inline(always)]
    fn writable(&self, page: u64) -> Option<&Frame> {
        self.mapped(page)
            .filter(|f| f.writable.load(Ordering::Relaxed))
    }

    /// Stores bytes regardless of the pages' write permission (the process filling its own
    /// buffers before a call). Unmapped bytes are skipped.
    pub fn poke(&self, addr: u64, data: &[u8]) {
        for (off, a, n) in chunks(addr, data.len()) {
            if let Some(f) = self.mapped(a / PAGE) {
                f.store((a % PAGE) as usize, &data[off..off + n]);
            }
        }
    }

    /// Reads bytes regardless of permissions; unmapped bytes read as 0.
    pub fn peek_or_zero(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        for (off, a, n) in chunks(addr, len) {
            if let Some(f) = self.mapped(a / PAGE) {
                f.load((a % PAGE) as usize, &mut out[off..off + n]);
            }
        }
        out
    }

    /// Reads bytes regardless of permissions; unmapped bytes read as `None`.
    pub fn peek(&self, addr: u64, len: usize) -> Vec<Option<u8>> {
        let mut out = Vec::with_capacity(len);
        for (_, a, n) in chunks(addr, len) {
            match self.mapped(a / PAGE) {
                Some(f) => {
                    let mut b = vec![0u8; n];
                    f.load((a % PAGE) as usize, &mut b);
                    out.extend(b.into_iter().map(Some));
                }
                None => out.extend(std::iter::repeat_n(None, n)),
            }
        }
        out
    }
}

/// Splits `[addr, addr + len)` at page boundaries: (offset into the buffer, address, length)
/// per piece. Addresses wrap past the top, as `peek` and `poke` have always treated them; the
/// copies below check for the wrap themselves.
fn chunks(addr: u64, len: usize) -> impl Iterator<Item = (usize, u64, usize)> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off >= len {
            return None;
        }
        let a = addr.wrapping_add(off as u64);
        let n = ((PAGE - a % PAGE) as usize).min(len - off);
        let piece = (off, a, n);
        off += n;
        Some(piece)
    })
}

/// The address a copy of `off` bytes past `addr` reaches, or the fault the kernel reports for
/// a range that wraps past the top of the address space.
fn at(addr: u64, off: usize) -> Result<u64, Fault> {
    addr.checked_add(off as u64).ok_or(Fault { addr: u64::MAX })
}

impl UserMemory for SimMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let off = (addr % PAGE) as usize;
        if off + buf.len() <= PAGE as usize && !buf.is_empty() {
            // Within one page: the common case, without splitting.
            let f = self.mapped(addr / PAGE).ok_or(Fault { addr })?;
            f.load(off, buf);
            return Ok(());
        }
        for (off, _, n) in chunks(addr, buf.len()) {
            let a = at(addr, off)?;
            let f = self.mapped(a / PAGE).ok_or(Fault { addr: a })?;
            f.load((a % PAGE) as usize, &mut buf[off..off + n]);
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let off = (addr % PAGE) as usize;
        if off + data.len() <= PAGE as usize && !data.is_empty() {
            // Within one page, as in read().
            let f = self.writable(addr / PAGE).ok_or(Fault { addr })?;
            f.store(off, data);
            return Ok(());
        }
        for (off, _, n) in chunks(addr, data.len()) {
            let a = at(addr, off)?;
            let f = self.writable(a / PAGE).ok_or(Fault { addr: a })?;
            f.store((a % PAGE) as usize, &data[off..off + n]);
        }
        Ok(())
    }
}

/// The address space of the process the model runs in: what an LD_PRELOAD library answering
/// a program's bpf(2) calls reads and writes. Every access goes through process_vm_readv(2) /
/// process_vm_writev(2) on the process itself, so an unmapped, PROT_NONE or read-only page is
/// an error the kernel reports, never a SIGSEGV, and the model turns it into EFAULT as the real
/// copy_from_user/copy_to_user would. Copies go a page at a time, so a fault is reported at the
/// first byte of the first page that failed and the bytes before it have been copied (the
/// kernel's byte-exact fixup stops at the same place: faults happen on whole pages).
#[cfg(target_os = "linux")]
#[derive(Default, Clone, Copy, Debug)]
pub struct ProcessMemory;

#[cfg(target_os = "linux")]
impl ProcessMemory {
    fn copy(addr: u64, local: *mut libc::c_void, len: usize, write: bool) -> bool {
        let local = libc::iovec {
            iov_base: local,
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: `local` covers a buffer of `len` bytes owned by the caller for the duration
        // of the call; the remote side is checked by the kernel, which reports a fault as an
        // error (EFAULT) or a short count instead of touching it from user space.
        let n = unsafe {
            let pid = libc::getpid();
            if write {
                libc::process_vm_writev(pid, &local, 1, &remote, 1, 0)
            } else {
                libc::process_vm_readv(pid, &local, 1, &remote, 1, 0)
            }
        };
        n == len as isize
    }
}

#[cfg(target_os = "linux")]
impl UserMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        for (off, _, n) in chunks(addr, buf.len()) {
            let a = at(addr, off)?;
            if !ProcessMemory::copy(a, buf[off..].as_mut_ptr().cast(), n, false) {
                return Err(Fault { addr: a });
            }
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        for (off, _, n) in chunks(addr, data.len()) {
            let a = at(addr, off)?;
            // process_vm_writev only reads the local buffer.
            let local = data[off..].as_ptr().cast_mut().cast();
            if !ProcessMemory::copy(a, local, n, true) {
                return Err(Fault { addr: a });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_unmapped_fault() {
        let m = SimMemory::new();
        m.map(0, 8192, true);
        let mut b = [0u8; 4];
        assert_eq!(m.read(0, &mut b), Err(Fault { addr: 0 }));
        assert!(m.read(4096, &mut b).is_ok());
        assert_eq!(m.read(8190, &mut b), Err(Fault { addr: 8192 }));
    }

    #[test]
    fn write_stops_at_the_fault_and_keeps_what_it_wrote() {
        let m = SimMemory::new();
        m.map(4096, 4096, true);
        assert_eq!(m.write(8190, &[1, 2, 3, 4]), Err(Fault { addr: 8192 }));
        assert_eq!(m.peek(8190, 3), vec![Some(1), Some(2), None]);
    }

    #[test]
    fn read_only_pages_refuse_writes() {
        let m = SimMemory::new();
        m.map(4096, 4096, false);
        assert!(m.write(4096, &[1]).is_err());
        m.poke(4096, &[9]);
        let mut b = [0u8; 1];
        m.read(4096, &mut b).unwrap();
        assert_eq!(b, [9]);
    }

    #[test]
    fn copies_cross_page_boundaries_byte_for_byte() {
        let m = SimMemory::new();
        m.map(4096, 3 * 4096, true);
        let data: Vec<u8> = (0..9000u32).map(|i| (i % 251) as u8).collect();
        m.write(4100, &data).unwrap();
        let mut back = vec![0u8; 9000];
        m.read(4100, &mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(m.peek(4098, 3), vec![Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn a_range_that_wraps_past_the_top_faults_at_the_top() {
        let m = SimMemory::new();
        let top = u64::MAX - 4095;
        m.map(top, 4096, true);
        let mut b = [0u8; 8];
        assert_eq!(m.read(u64::MAX - 3, &mut b), Err(Fault { addr: u64::MAX }));
        assert_eq!(m.write(u64::MAX - 3, &b), Err(Fault { addr: u64::MAX }));
        assert!(m.read(u64::MAX - 7, &mut b).is_ok());
    }

    /// Random maps, unmaps, reads and writes, some of them near the top of the address space,
    /// against a plain byte-per-address picture: the same bytes and the same fault addresses.
    #[test]
    fn copies_agree_with_a_byte_by_byte_address_space() {
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let pages = |addr: u64, len: u64| {
            let last = addr.saturating_add(len.max(1) - 1) / PAGE;
            addr / PAGE..=last
        };
        for round in 0..10 {
            let m = SimMemory::new();
            let mut want: HashMap<u64, (Vec<u8>, bool)> = HashMap::new();
            let base = if round % 2 == 0 {
                0x10000
            } else {
                u64::MAX - 8 * PAGE + 1
            };
            for _ in 0..2000 {
                let addr = base.wrapping_add(rnd() % (8 * PAGE));
                let len = match rnd() % 4 {
                    0 => (rnd() % 9) as usize,
                    1 => (rnd() % 70) as usize,
                    2 => (rnd() % 5000) as usize,
                    _ => 0,
                };
                let byte = |want: &HashMap<u64, (Vec<u8>, bool)>, i: usize| {
                    let a = addr.checked_add(i as u64).ok_or(Fault { addr: u64::MAX })?;
                    want.get(&(a / PAGE))
                        .map(|(b, w)| (a, b[(a % PAGE) as usize], *w))
                        .ok_or(Fault { addr: a })
                };
                match rnd() % 10 {
                    0 => {
                        let w = rnd() % 2 == 0;
                        m.map(addr, len as u64, w);
                        for p in pages(addr, len as u64) {
                            if p > 0 {
                                want.insert(p, (vec![0; PAGE as usize], w));
                            }
                        }
                    }
                    1 => {
                        m.unmap(addr, len as u64);
                        for p in pages(addr, len as u64) {
                            want.remove(&p);
                        }
                    }
                    2..=5 => {
                        let data: Vec<u8> = (0..len).map(|_| rnd() as u8).collect();
                        let mut expect = Ok(());
                        for (i, d) in data.iter().enumerate() {
                            match byte(&want, i) {
                                Ok((a, _, true)) => {
                                    let page = want.get_mut(&(a / PAGE)).expect("mapped");
                                    page.0[(a % PAGE) as usize] = *d;
                                }
                                Ok((a, _, false)) => {
                                    expect = Err(Fault { addr: a });
                                    break;
                                }
                                Err(f) => {
                                    expect = Err(f);
                                    break;
                                }
                            }
                        }
                        assert_eq!(m.write(addr, &data), expect, "write {addr:#x} +{len}");
                    }
                    _ => {
                        let mut buf = vec![0xaa; len];
                        let mut expect_buf = vec![0xaa; len];
                        let mut expect = Ok(());
                        for (i, e) in expect_buf.iter_mut().enumerate() {
                            match byte(&want, i) {
                                Ok((_, v, _)) => *e = v,
                                Err(f) => {
                                    expect = Err(f);
                                    break;
                                }
                            }
                        }
                        assert_eq!(m.read(addr, &mut buf), expect, "read {addr:#x} +{len}");
                        if expect.is_ok() {
                            assert_eq!(buf, expect_buf, "read {addr:#x} +{len}");
                        }
                    }
                }
            }
        }
    }

    /// A page of this process mapped with `prot`, between two PROT_NONE guard pages.
    #[cfg(target_os = "linux")]
    fn page_with(prot: i32) -> u64 {
        // SAFETY: a fresh anonymous mapping, then mprotect of pages inside it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                3 * 4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            let mid = (p as u64) + 4096;
            assert_eq!(
                libc::mprotect(
                    mid as *mut libc::c_void,
                    4096,
                    libc::PROT_READ | libc::PROT_WRITE
                ),
                0
            );
            std::ptr::write_bytes(mid as *mut u8, 7, 4096);
            assert_eq!(libc::mprotect(mid as *mut libc::c_void, 4096, prot), 0);
            mid
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_memory_reads_this_process_and_faults_instead_of_crashing() {
        let m = ProcessMemory;
        let page = page_with(libc::PROT_READ | libc::PROT_WRITE);
        let mut b = [0u8; 8];
        assert_eq!(m.read(page, &mut b), Ok(()));
        assert_eq!(b, [7; 8]);
        assert_eq!(m.read(0, &mut b), Err(Fault { addr: 0 }));
        // Past the page is a guard page: the fault is at its first byte.
        assert_eq!(
            m.read(page + 4092, &mut b),
            Err(Fault { addr: page + 4096 })
        );
        assert_eq!(m.read(page - 4, &mut b), Err(Fault { addr: page - 4 }));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_memory_writes_up_to_the_fault_and_refuses_read_only_pages() {
        let m = ProcessMemory;
        let page = page_with(libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(
            m.write(page + 4094, &[1, 2, 3, 4]),
            Err(Fault { addr: page + 4096 })
        );
        let mut b = [0u8; 2];
        m.read(page + 4094, &mut b).unwrap();
        assert_eq!(b, [1, 2]);
        let ro = page_with(libc::PROT_READ);
        assert_eq!(m.write(ro, &[1]), Err(Fault { addr: ro }));
        let mut c = [0u8; 1];
        m.read(ro, &mut c).unwrap();
        assert_eq!(c, [7]);
    }
}
