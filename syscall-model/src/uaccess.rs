//! User memory: what `copy_from_user` and `copy_to_user` reach.
//!
//! The model never dereferences a pointer of its own; every user pointer in an attr goes
//! through a [`UserMemory`]. [`SimMemory`] is a page-granular simulated address space in which
//! address 0 and anything not mapped fault, so EFAULT for a NULL, unmapped or read-only pointer
//! comes out of the same rule the kernel applies.

use std::collections::BTreeMap;
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

const PAGE: u64 = 4096;

struct Page {
    data: Box<[u8]>,
    writable: bool,
}

/// A simulated address space made of 4 KiB pages.
#[derive(Default)]
pub struct SimMemory {
    pages: RwLock<BTreeMap<u64, Page>>,
}

impl SimMemory {
    pub fn new() -> SimMemory {
        SimMemory::default()
    }

    /// Maps the pages covering `[addr, addr + len)`, zero-filled. Page 0 can never be mapped,
    /// so NULL always faults.
    pub fn map(&self, addr: u64, len: u64, writable: bool) {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        let first = addr / PAGE;
        let last = addr.saturating_add(len.max(1) - 1) / PAGE;
        for p in first.max(1)..=last {
            pages.insert(
                p,
                Page {
                    data: vec![0; PAGE as usize].into_boxed_slice(),
                    writable,
                },
            );
        }
    }

    /// Removes the pages covering `[addr, addr + len)`.
    pub fn unmap(&self, addr: u64, len: u64) {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        let first = addr / PAGE;
        let last = addr.saturating_add(len.max(1) - 1) / PAGE;
        for p in first..=last {
            pages.remove(&p);
        }
    }

    /// Stores bytes regardless of the pages' write permission (the process filling its own
    /// buffers before a call). Unmapped bytes are skipped.
    pub fn poke(&self, addr: u64, data: &[u8]) {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        for (off, a, n) in chunks(addr, data.len()) {
            if let Some(p) = pages.get_mut(&(a / PAGE)) {
                let at = (a % PAGE) as usize;
                p.data[at..at + n].copy_from_slice(&data[off..off + n]);
            }
        }
    }

    /// Reads bytes regardless of permissions; unmapped bytes read as 0.
    pub fn peek_or_zero(&self, addr: u64, len: usize) -> Vec<u8> {
        let pages = self.pages.read().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![0u8; len];
        for (off, a, n) in chunks(addr, len) {
            if let Some(p) = pages.get(&(a / PAGE)) {
                let at = (a % PAGE) as usize;
                out[off..off + n].copy_from_slice(&p.data[at..at + n]);
            }
        }
        out
    }

    /// Reads bytes regardless of permissions; unmapped bytes read as `None`.
    pub fn peek(&self, addr: u64, len: usize) -> Vec<Option<u8>> {
        let pages = self.pages.read().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::with_capacity(len);
        for (_, a, n) in chunks(addr, len) {
            match pages.get(&(a / PAGE)) {
                Some(p) => {
                    let at = (a % PAGE) as usize;
                    out.extend(p.data[at..at + n].iter().map(|b| Some(*b)));
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
        let pages = self.pages.read().unwrap_or_else(|e| e.into_inner());
        for (off, _, n) in chunks(addr, buf.len()) {
            let a = at(addr, off)?;
            let p = pages.get(&(a / PAGE)).ok_or(Fault { addr: a })?;
            let from = (a % PAGE) as usize;
            buf[off..off + n].copy_from_slice(&p.data[from..from + n]);
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        for (off, _, n) in chunks(addr, data.len()) {
            let a = at(addr, off)?;
            match pages.get_mut(&(a / PAGE)) {
                Some(p) if p.writable => {
                    let to = (a % PAGE) as usize;
                    p.data[to..to + n].copy_from_slice(&data[off..off + n]);
                }
                _ => return Err(Fault { addr: a }),
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
}
