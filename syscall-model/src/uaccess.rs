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
        let last = (addr + len.max(1) - 1) / PAGE;
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
        let last = (addr + len.max(1) - 1) / PAGE;
        for p in first..=last {
            pages.remove(&p);
        }
    }

    /// Stores bytes regardless of the pages' write permission (the process filling its own
    /// buffers before a call). Unmapped bytes are skipped.
    pub fn poke(&self, addr: u64, data: &[u8]) {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        for (i, b) in data.iter().enumerate() {
            let a = addr.wrapping_add(i as u64);
            if let Some(p) = pages.get_mut(&(a / PAGE)) {
                p.data[(a % PAGE) as usize] = *b;
            }
        }
    }

    /// Reads bytes regardless of permissions; unmapped bytes read as `None`.
    pub fn peek(&self, addr: u64, len: usize) -> Vec<Option<u8>> {
        let pages = self.pages.read().unwrap_or_else(|e| e.into_inner());
        (0..len as u64)
            .map(|i| {
                let a = addr.wrapping_add(i);
                pages.get(&(a / PAGE)).map(|p| p.data[(a % PAGE) as usize])
            })
            .collect()
    }
}

impl UserMemory for SimMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), Fault> {
        let pages = self.pages.read().unwrap_or_else(|e| e.into_inner());
        for (i, out) in buf.iter_mut().enumerate() {
            let a = addr.checked_add(i as u64).ok_or(Fault { addr: u64::MAX })?;
            match pages.get(&(a / PAGE)) {
                Some(p) => *out = p.data[(a % PAGE) as usize],
                None => return Err(Fault { addr: a }),
            }
        }
        Ok(())
    }

    fn write(&self, addr: u64, data: &[u8]) -> Result<(), Fault> {
        let mut pages = self.pages.write().unwrap_or_else(|e| e.into_inner());
        for (i, b) in data.iter().enumerate() {
            let a = addr.checked_add(i as u64).ok_or(Fault { addr: u64::MAX })?;
            match pages.get_mut(&(a / PAGE)) {
                Some(p) if p.writable => p.data[(a % PAGE) as usize] = *b,
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
}
