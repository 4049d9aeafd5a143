//! The byte format the coverage-guided fuzz target (`fuzz/`, cargo-fuzz) feeds the model, and
//! the function that runs one input. It lives here, not in the fuzz crate, so that stable
//! builds replay the kept corpus (`tests/fuzz_corpus.rs`) and `bpfmodel fuzz-seeds` can write
//! seeds from the scenario corpus in the same format.
//!
//! An input is
//! ```text
//! u8   profile: bits 0-1 pick 6.1, 6.12, 6.18 or 7.2; bit 2 runs as an unprivileged user
//! u8   n, then n pieces of user memory, each: u16 offset (in 8-byte units from [`BASE`]),
//!      u8 len, len bytes. [BASE, BASE + 64 KiB) is mapped read-write and zero elsewhere,
//!      the page after it read-only, and nothing else is mapped
//! then up to 64 calls, each:
//!   u8  cmd: bits 0-5 the command; bit 6 adds BPF_COMMON_ATTRS; bit 7 makes it -(cmd + 1)
//!   u16 size (the bpf(2) size argument, any value)
//!   u16 len, then len bytes: the attr, stored at ATTR (a page of its own, read-write; bytes
//!       past the page are dropped)
//! ```
//! Little-endian throughout; a short input just ends the calls. Nothing in it can make the
//! model allocate what the kernel would not: sizes come from the attr the model checks.

use crate::backend::model::BASE;
use syscall_model::kernel::{Cred, Kernel};
use syscall_model::profile::{Arch, KernelProfile};
use syscall_model::uaccess::SimMemory;

/// Where an input's attrs are put: the page before [`BASE`].
pub const ATTR: u64 = BASE - 4096;
/// The most user memory an input sets.
pub const MAX_REGION: usize = 64 * 1024;
/// The most calls one input makes.
pub const MAX_CALLS: usize = 64;
const BPF_COMMON_ATTRS: i32 = 1 << 16;

/// A seed input per scenario of `corpus`: its calls as the model backend made them under the
/// 6.18 profile, with the backend's memory at the end as the region (file name, bytes).
pub fn seeds_from_scenarios(corpus: &[crate::scenario::Scenario]) -> Vec<(String, Vec<u8>)> {
    let arch = Arch::native().unwrap_or(Arch::X86_64);
    let profile = KernelProfile::linux_6_18(arch, 2);
    let mut out = Vec::new();
    for s in corpus {
        let mut be = crate::backend::model::ModelBackend::new(profile.clone());
        let (_, stmts) = crate::exec::run_recorded(s, &mut be);
        let calls: Vec<Call> = stmts
            .iter()
            .flat_map(|st| &st.calls)
            .map(|c| Call {
                cmd: c.cmd,
                size: c.size,
                attr: c.attr.clone().unwrap_or_default(),
            })
            .collect();
        if calls.is_empty() {
            continue;
        }
        let region = be.memory().peek_or_zero(BASE, MAX_REGION);
        let name = s
            .path
            .with_extension("")
            .components()
            .rev()
            .take(2)
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("-");
        // Profile index 2 is 6.18 in the sorted list `run` picks from.
        out.push((name, encode(2, &region, &calls)));
    }
    out
}

/// One call of an input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub cmd: i32,
    pub size: u32,
    pub attr: Vec<u8>,
}

/// The pieces of `region` (memory from BASE) that are not zero, as an input stores them:
/// runs of at most 255 bytes starting at a multiple of 8, at most 255 of them.
fn pieces(region: &[u8]) -> Vec<(usize, &[u8])> {
    let region = &region[..region.len().min(MAX_REGION)];
    let mut out = Vec::new();
    let mut at = 0;
    while at < region.len() && out.len() < 255 {
        let Some(first) = region[at..].iter().position(|&b| b != 0) else {
            break;
        };
        let start = (at + first) / 8 * 8;
        let end = (start + 255).min(region.len());
        // Stop early at 8 zero bytes in a row, so pieces stay short.
        let mut stop = end;
        let mut zeros = 0;
        for (i, &b) in region[start..end].iter().enumerate() {
            zeros = if b == 0 { zeros + 1 } else { 0 };
            if zeros == 8 {
                stop = start + i + 1 - 8;
                break;
            }
        }
        let stop = stop.max(start + 1);
        out.push((start, &region[start..stop]));
        at = stop;
    }
    out
}

/// The input that sets the non-zero bytes of `region` at BASE and makes `calls` (cmds outside
/// the encodable range are folded into it; sizes and attrs are clipped to 16 bits).
pub fn encode(profile: u8, region: &[u8], calls: &[Call]) -> Vec<u8> {
    let mut out = vec![profile];
    let pieces = pieces(region);
    out.push(pieces.len() as u8);
    for (off, bytes) in pieces {
        out.extend_from_slice(&((off / 8) as u16).to_le_bytes());
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    for c in calls.iter().take(MAX_CALLS) {
        let mut b = if c.cmd < 0 {
            0x80 | ((-(c.cmd as i64) - 1) & 0x3f) as u8
        } else {
            (c.cmd & 0x3f) as u8
        };
        if c.cmd >= 0 && c.cmd & BPF_COMMON_ATTRS != 0 {
            b |= 0x40;
        }
        out.push(b);
        out.extend_from_slice(&(c.size.min(u16::MAX as u32) as u16).to_le_bytes());
        let attr = &c.attr[..c.attr.len().min(4096)];
        out.extend_from_slice(&(attr.len() as u16).to_le_bytes());
        out.extend_from_slice(attr);
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        let (&v, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(v)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from(self.u8()?) | u16::from(self.u8()?) << 8)
    }
}

/// The profile and calls of an input, and its memory image.
pub fn decode(data: &[u8]) -> (u8, Vec<u8>, Vec<Call>) {
    let mut r = Reader(data);
    let profile = r.u8().unwrap_or(0);
    let mut region = Vec::new();
    for _ in 0..r.u8().unwrap_or(0) {
        let (Some(off), Some(len)) = (r.u16(), r.u8()) else {
            break;
        };
        let off = off as usize * 8;
        let bytes = r.bytes(len as usize).unwrap_or_default();
        let end = (off + bytes.len()).min(MAX_REGION);
        if off < end {
            if region.len() < end {
                region.resize(end, 0);
            }
            region[off..end].copy_from_slice(&bytes[..end - off]);
        }
    }
    let mut calls = Vec::new();
    while calls.len() < MAX_CALLS {
        let (Some(c), Some(size), Some(len)) = (r.u8(), r.u16(), r.u16()) else {
            break;
        };
        let mut cmd = (c & 0x3f) as i32;
        if c & 0x80 != 0 {
            cmd = -cmd - 1;
        } else if c & 0x40 != 0 {
            cmd |= BPF_COMMON_ATTRS;
        }
        let mut attr = r.bytes(len as usize).unwrap_or_default().to_vec();
        attr.truncate(4096);
        calls.push(Call {
            cmd,
            size: size as u32,
            attr,
        });
    }
    (profile, region, calls)
}

/// Runs one input on a fresh model; returns the results. Must never panic, hang or allocate
/// without bound, whatever `data` is: that is what the fuzz target checks.
pub fn run(data: &[u8]) -> Vec<Result<i32, syscall_model::Errno>> {
    let (sel, region, calls) = decode(data);
    let arch = Arch::native().unwrap_or(Arch::X86_64);
    let mut all = KernelProfile::all(arch, 2);
    all.sort_by_key(|p| p.version);
    let profile = all.swap_remove((sel & 3) as usize % all.len().max(1));
    let kernel = Kernel::new(profile);
    let cred = if sel & 4 != 0 {
        Cred::user(1000)
    } else {
        Cred::root()
    };
    let process = kernel.spawn(cred);
    let mem = SimMemory::new();
    mem.map(BASE, MAX_REGION as u64, true);
    mem.poke(BASE, &region);
    mem.map(BASE + MAX_REGION as u64, 4096, false);
    mem.map(ATTR, 4096, true);
    let mut results = Vec::with_capacity(calls.len());
    for c in calls {
        let mut page = vec![0u8; 4096];
        page[..c.attr.len()].copy_from_slice(&c.attr);
        mem.poke(ATTR, &page);
        results.push(process.bpf_common(c.cmd, ATTR, c.size, (ATTR + 2048, 20), &mem));
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_decodes_to_what_was_encoded() {
        let calls = vec![
            Call {
                cmd: 0,
                size: 72,
                attr: vec![1, 0, 0, 0, 4, 0, 0, 0, 8, 0, 0, 0, 16, 0, 0, 0],
            },
            Call {
                cmd: 23 | BPF_COMMON_ATTRS,
                size: 9999,
                attr: vec![],
            },
            Call {
                cmd: -1,
                size: 0,
                attr: vec![7],
            },
        ];
        let mut region = vec![0u8; 4096];
        region[8..12].copy_from_slice(b"key!");
        region[4000] = 9;
        let data = encode(6, &region, &calls);
        let (p, got, got_calls) = decode(&data);
        assert_eq!((p, got_calls), (6, calls));
        assert_eq!(got[..], region[..got.len()]);
        assert!(got.len() > 4000 && region[got.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn any_bytes_run_without_a_panic() {
        let mut x = 0x1234_5678_u64;
        for len in 0..400 {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            run(&data);
        }
    }

    #[test]
    fn a_map_create_input_creates_a_map() {
        let mut attr = vec![0u8; 72];
        attr[0] = 1; // HASH
        attr[4] = 4;
        attr[8] = 8;
        attr[12] = 16;
        let data = encode(
            0,
            &[],
            &[Call {
                cmd: 0,
                size: 72,
                attr,
            }],
        );
        assert_eq!(run(&data), vec![Ok(3)]);
    }
}
