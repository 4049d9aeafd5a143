//! Many threads on one map at once, as the kernel's test_maps.c `test_map_parallel` runs
//! them: the same operations on the model (one `Process` shared by every thread) and on the
//! host kernel (threads of this process calling bpf(2)); the final contents must be the same.
//! Each thread owns a stripe of the keys, so the end state does not depend on the
//! interleaving; what the threads race on is the map itself (its buckets, count, free lists)
//! and one key every thread tries to create with BPF_NOEXIST, which exactly one must win.

mod common;

use common::skip_or_fail;
use std::collections::BTreeMap;
use std::sync::Arc;
use syscall_model::uaccess::SimMemory;
use syscall_model::{Cred, Kernel, Process};

const THREADS: u32 = 8;
const KEYS: u32 = 4096;
const CONTENDED: u32 = 1_000_000;

/// One side's bpf(2): a call with a 72-byte attr (keys and values inside it, at fixed
/// offsets, so one buffer serves every call of a thread).
trait Bpf: Sync {
    /// A thread's calls go through its own `Caller`.
    fn caller(&self) -> Box<dyn Caller + '_>;
}

trait Caller {
    /// `cmd` on map `fd` with `key`, `value` and `flags`; Ok(ret) or Err(errno).
    fn elem(&mut self, cmd: i32, fd: i32, key: u32, value: u64, flags: u64) -> Result<i64, i32>;
    fn create(&mut self, map_type: u32, map_flags: u32) -> i32;
    /// get_next_key from `key` (None: the first).
    fn next_key(&mut self, fd: i32, key: Option<u32>) -> Option<u32>;
    fn lookup(&mut self, fd: i32, key: u32) -> Option<u64>;
}

const KEY_OFF: u64 = 128;
const VALUE_OFF: u64 = 136;
const NEXT_OFF: u64 = 144;

/// The attr for an element call at `base`: fd, key pointer, value pointer (or next_key),
/// flags.
fn elem_attr(base: u64, fd: i32, with_value: bool, flags: u64) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[0..4].copy_from_slice(&(fd as u32).to_le_bytes());
    a[8..16].copy_from_slice(&(base + KEY_OFF).to_le_bytes());
    if with_value {
        a[16..24].copy_from_slice(&(base + VALUE_OFF).to_le_bytes());
    }
    a[24..32].copy_from_slice(&flags.to_le_bytes());
    a
}

fn create_attr(map_type: u32, map_flags: u32) -> [u8; 72] {
    let mut a = [0u8; 72];
    a[0..4].copy_from_slice(&map_type.to_le_bytes());
    a[4..8].copy_from_slice(&4u32.to_le_bytes());
    a[8..12].copy_from_slice(&8u32.to_le_bytes());
    a[12..16].copy_from_slice(&(KEYS * 2).to_le_bytes());
    a[16..20].copy_from_slice(&map_flags.to_le_bytes());
    a
}

struct ModelSide(Arc<Process>);

struct ModelCaller<'a> {
    p: &'a Process,
    mem: SimMemory,
}

const BASE: u64 = 0x10_0000;

impl Bpf for ModelSide {
    fn caller(&self) -> Box<dyn Caller + '_> {
        let mem = SimMemory::new();
        mem.map(BASE, 4096, true);
        Box::new(ModelCaller { p: &self.0, mem })
    }
}

impl ModelCaller<'_> {
    fn call(&mut self, cmd: i32, attr: &[u8]) -> Result<i64, i32> {
        self.mem.poke(BASE, attr);
        self.p
            .bpf(cmd, BASE, attr.len() as u32, &self.mem)
            .map(i64::from)
            .map_err(|e| e.0)
    }
}

impl Caller for ModelCaller<'_> {
    fn elem(&mut self, cmd: i32, fd: i32, key: u32, value: u64, flags: u64) -> Result<i64, i32> {
        self.mem.poke(BASE + KEY_OFF, &key.to_le_bytes());
        self.mem.poke(BASE + VALUE_OFF, &value.to_le_bytes());
        self.call(cmd, &elem_attr(BASE, fd, cmd != 3, flags))
    }
    fn create(&mut self, map_type: u32, map_flags: u32) -> i32 {
        self.call(0, &create_attr(map_type, map_flags))
            .expect("map_create on the model") as i32
    }
    fn next_key(&mut self, fd: i32, key: Option<u32>) -> Option<u32> {
        let mut a = elem_attr(BASE, fd, false, 0);
        match key {
            Some(k) => self.mem.poke(BASE + KEY_OFF, &k.to_le_bytes()),
            None => a[8..16].fill(0),
        }
        a[16..24].copy_from_slice(&(BASE + NEXT_OFF).to_le_bytes());
        self.call(4, &a).ok()?;
        let b = self.mem.peek_or_zero(BASE + NEXT_OFF, 4);
        Some(u32::from_le_bytes(b.try_into().ok()?))
    }
    fn lookup(&mut self, fd: i32, key: u32) -> Option<u64> {
        self.elem(1, fd, key, 0, 0).ok()?;
        let b = self.mem.peek_or_zero(BASE + VALUE_OFF, 8);
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

struct KernelSide;

struct KernelCaller {
    buf: Box<[u8; 256]>,
}

impl Bpf for KernelSide {
    fn caller(&self) -> Box<dyn Caller + '_> {
        Box::new(KernelCaller {
            buf: Box::new([0; 256]),
        })
    }
}

impl KernelCaller {
    fn base(&self) -> u64 {
        self.buf.as_ptr() as u64
    }
    fn call(&mut self, cmd: i32, attr: &[u8]) -> Result<i64, i32> {
        self.buf[..attr.len()].copy_from_slice(attr);
        // SAFETY: the attr and the key/value/next buffers it points to live in self.buf.
        let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, self.buf.as_ptr(), attr.len()) };
        if r < 0 {
            Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            Ok(r)
        }
    }
}

impl Caller for KernelCaller {
    fn elem(&mut self, cmd: i32, fd: i32, key: u32, value: u64, flags: u64) -> Result<i64, i32> {
        self.buf[KEY_OFF as usize..][..4].copy_from_slice(&key.to_le_bytes());
        self.buf[VALUE_OFF as usize..][..8].copy_from_slice(&value.to_le_bytes());
        let a = elem_attr(self.base(), fd, cmd != 3, flags);
        self.call(cmd, &a)
    }
    fn create(&mut self, map_type: u32, map_flags: u32) -> i32 {
        self.call(0, &create_attr(map_type, map_flags))
            .expect("map_create on the kernel") as i32
    }
    fn next_key(&mut self, fd: i32, key: Option<u32>) -> Option<u32> {
        let mut a = elem_attr(self.base(), fd, false, 0);
        match key {
            Some(k) => self.buf[KEY_OFF as usize..][..4].copy_from_slice(&k.to_le_bytes()),
            None => a[8..16].fill(0),
        }
        a[16..24].copy_from_slice(&(self.base() + NEXT_OFF).to_le_bytes());
        self.call(4, &a).ok()?;
        Some(u32::from_le_bytes(
            self.buf[NEXT_OFF as usize..][..4].try_into().ok()?,
        ))
    }
    fn lookup(&mut self, fd: i32, key: u32) -> Option<u64> {
        self.elem(1, fd, key, 0, 0).ok()?;
        Some(u64::from_le_bytes(
            self.buf[VALUE_OFF as usize..][..8].try_into().ok()?,
        ))
    }
}

/// What a run leaves: the map's contents, and how many threads won the contended key.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    contents: BTreeMap<u32, u64>,
    contended_winners: u32,
    errors: BTreeMap<(String, i32), u32>,
}

/// THREADS threads at once on one map: each creates its keys (NOEXIST), rewrites them
/// (EXIST), deletes every third, looks up its neighbour's keys, and tries to create the one
/// contended key.
fn run(side: &dyn Bpf, map_type: u32, map_flags: u32) -> Outcome {
    let fd = side.caller().create(map_type, map_flags);
    let is_array = map_type == 2;
    let results: Vec<(bool, Vec<(String, i32)>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    let mut c = side.caller();
                    let mut errs = Vec::new();
                    let mut note = |what: &str, r: Result<i64, i32>| {
                        if let Err(e) = r {
                            errs.push((what.to_string(), e));
                        }
                    };
                    let mine = (0..KEYS).filter(|k| k % THREADS == t);
                    for k in mine.clone() {
                        let flags = if is_array { 0 } else { 1 };
                        note("create", c.elem(2, fd, k, u64::from(k) * 3, flags));
                    }
                    for k in mine.clone() {
                        note("rewrite", c.elem(2, fd, k, u64::from(k) * 5, 2));
                        let other = (k + 1) % KEYS;
                        let _ = c.lookup(fd, other);
                    }
                    if !is_array {
                        for k in mine.filter(|k| k % 3 == 0) {
                            note("delete", c.elem(3, fd, k, 0, 0));
                        }
                    }
                    let won = !is_array && c.elem(2, fd, CONTENDED, 7, 1).is_ok();
                    (won, errs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let mut errors = BTreeMap::new();
    for (what, e) in results.iter().flat_map(|(_, e)| e.clone()) {
        *errors.entry((what, e)).or_insert(0) += 1;
    }
    let mut c = side.caller();
    let mut contents = BTreeMap::new();
    let mut key = None;
    while let Some(k) = c.next_key(fd, key) {
        if let Some(v) = c.lookup(fd, k) {
            contents.insert(k, v);
        }
        key = Some(k);
        if contents.len() > (KEYS * 2) as usize {
            break;
        }
    }
    Outcome {
        contents,
        contended_winners: results.iter().filter(|(w, _)| *w).count() as u32,
        errors,
    }
}

fn agree(name: &str, map_type: u32, map_flags: u32) {
    let kernel = Kernel::new(riscv_harness::runner::host_profile().expect("profile").0);
    let model = run(
        &ModelSide(Arc::new(kernel.spawn(Cred::root()))),
        map_type,
        map_flags,
    );
    // The expected end state, whoever runs it.
    // The expected end state, whoever runs it: an array also has its untouched zero slots.
    let expect: BTreeMap<u32, u64> = (0..KEYS)
        .filter(|k| map_type == 2 || k % 3 != 0)
        .map(|k| (k, u64::from(k) * 5))
        .chain((map_type != 2).then_some((CONTENDED, 7)))
        .chain(
            (map_type == 2)
                .then(|| (KEYS..KEYS * 2).map(|k| (k, 0)))
                .into_iter()
                .flatten(),
        )
        .collect();
    if let Some(d) = first_difference(&model.contents, &expect) {
        panic!("{name}: the model's end state is not the expected one: {d}");
    }
    assert_eq!(
        model.contended_winners,
        u32::from(map_type != 2),
        "{name}: NOEXIST winners"
    );
    if let Err(why) = riscv_harness::backend::kernel::bpf_available() {
        return skip_or_fail(&format!("parallel ({name}) on the kernel"), why);
    }
    let kernel = run(&KernelSide, map_type, map_flags);
    if let Some(d) = first_difference(&model.contents, &kernel.contents) {
        panic!("{name}: the model and the kernel end differently: {d}");
    }
    assert_eq!(
        (model.contended_winners, &model.errors),
        (kernel.contended_winners, &kernel.errors),
        "{name}: (NOEXIST winners, failed calls) on the model and the kernel"
    );
}

/// The first key where two end states differ, and the sizes, in one line.
fn first_difference(a: &BTreeMap<u32, u64>, b: &BTreeMap<u32, u64>) -> Option<String> {
    if a == b {
        return None;
    }
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    let k = keys.into_iter().find(|k| a.get(k) != b.get(k))?;
    Some(format!(
        "{} vs {} entries; first difference at key {k}: {:?} vs {:?}",
        a.len(),
        b.len(),
        a.get(k),
        b.get(k)
    ))
}

#[test]
fn threads_on_one_hash_end_as_on_the_kernel() {
    agree("hash", 1, 0);
}

#[test]
fn threads_on_one_no_prealloc_hash_end_as_on_the_kernel() {
    agree("hash, BPF_F_NO_PREALLOC", 1, 1);
}

#[test]
fn threads_on_one_array_end_as_on_the_kernel() {
    agree("array", 2, 0);
}
