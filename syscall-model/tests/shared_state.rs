//! The model's state is one value that many threads use at once, as processes share a kernel.

use std::sync::Arc;
use std::thread;
use syscall_model::uaccess::SimMemory;
use syscall_model::{Arch, Cred, Kernel, KernelProfile, Process};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn kernel_and_process_are_send_and_sync() {
    assert_send_sync::<Kernel>();
    assert_send_sync::<Process>();
    assert_send_sync::<syscall_model::map::BpfMap>();
}

/// Lays out an attr and its key/value buffers in simulated memory and calls bpf(2).
struct Caller {
    mem: SimMemory,
    next: u64,
}

impl Caller {
    fn new() -> Caller {
        Caller {
            mem: SimMemory::new(),
            next: 0x10000,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> u64 {
        let addr = self.next;
        self.mem.map(addr, 4096, true);
        self.mem.poke(addr, bytes);
        self.next += 4096;
        addr
    }

    fn create_hash(&mut self, p: &Process, max_entries: u32) -> i32 {
        let mut attr = vec![0u8; 80];
        attr[0..4].copy_from_slice(&1u32.to_le_bytes());
        attr[4..8].copy_from_slice(&4u32.to_le_bytes());
        attr[8..12].copy_from_slice(&8u32.to_le_bytes());
        attr[12..16].copy_from_slice(&max_entries.to_le_bytes());
        let a = self.put(&attr);
        p.bpf(0, a, 80, &self.mem).expect("map_create")
    }

    fn elem(
        &mut self,
        p: &Process,
        cmd: i32,
        fd: i32,
        key: u32,
        value: u64,
    ) -> Result<i32, syscall_model::Errno> {
        let k = self.put(&key.to_le_bytes());
        let v = self.put(&value.to_le_bytes());
        let mut attr = vec![0u8; 32];
        attr[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
        attr[8..16].copy_from_slice(&k.to_le_bytes());
        if cmd != 3 {
            attr[16..24].copy_from_slice(&v.to_le_bytes());
        }
        let a = self.put(&attr);
        p.bpf(cmd, a, 32, &self.mem)
    }
}

#[test]
fn threads_updating_one_map_never_exceed_max_entries() {
    let kernel = Kernel::new(KernelProfile::linux_6_18(Arch::X86_64, 2));
    let p = Arc::new(kernel.spawn(Cred::root()));
    let fd = Caller::new().create_hash(&p, 64);
    let handles: Vec<_> = (0..4u32)
        .map(|t| {
            let p = p.clone();
            thread::spawn(move || {
                let mut c = Caller::new();
                let mut ok = 0;
                for i in 0..200u32 {
                    let key = t * 1000 + i;
                    if c.elem(&p, 2, fd, key, key as u64).is_ok() {
                        ok += 1;
                    }
                    if i % 3 == 0 {
                        let _ = c.elem(&p, 3, fd, key, 0);
                    }
                }
                ok
            })
        })
        .collect();
    let inserted: u32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(
        inserted >= 64,
        "the map filled up: {inserted} updates succeeded"
    );
    // Walk the map: never more than max_entries keys.
    let file = p.fds().get(fd as u32).unwrap();
    let map = file.map().unwrap().clone();
    assert_eq!(map.desc.max_entries, 64);
    let mut c = Caller::new();
    let mut n = 0;
    for key in 0..4000u32 {
        if c.elem(&p, 1, fd, key, 0).is_ok() {
            n += 1;
        }
    }
    assert!(n <= 64, "{n} keys in a map of 64");
}
