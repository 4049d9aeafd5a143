//! User memory: what `copy_from_user` and `copy_to_user` reach.
//!
//! The model never dereferences a pointer of its own; every user pointer in an attr goes
//! through a [`UserMemory`]. [`SimMemory`] is a page-granular simulated address space in which
//! address 0 and anything not mapped fault, so EFAULT for a NULL, unmapped or read-only pointer
//! comes out of the same rule the kernel applies.

use crate::index_hash::IndexBuild;
use std::collections::HashMap;
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
    pages: RwLock<HashMap<u64, Page, IndexBuild>>,
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
