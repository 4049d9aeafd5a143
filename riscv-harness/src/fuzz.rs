//! `bpfmodel fuzz`: call sequences generated from a seed, run on the model and on a kernel,
//! compared call by call; a divergence is shrunk to a short scenario file.
//!
//! The generator writes scenarios in the corpus's own language, so everything the harness
//! already does (building attrs, fresh processes, QEMU guests, transcripts, comparison) serves
//! the fuzzer too, and a finding is a ready `.bpfs` file. Calls mix well-formed ones with edge
//! cases: boundary sizes, stray flag bits, full maps, a closed or never-opened fd, keys and
//! values one byte short (the buffer ends at an unmapped page, so the kernel faults), raw attr
//! bytes and odd `size` arguments. Walks are deterministic only with BPF_F_ZERO_SEED, so every
//! hash map gets it; map ids are left alone (other processes make maps too).

use crate::runner;
use crate::scenario::{self, Scenario};
use crate::transcript::{compare, render_divergence, Transcript};
use anyhow::Context;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::Path;
use syscall_model::trace::hex;

/// splitmix64: small, fast, and the same sequence on every machine for a seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 for n = 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A map the generated scenario has made (or tried to make).
#[derive(Clone, Debug)]
struct GenMap {
    name: String,
    ty: &'static str,
    key_size: u32,
    value_size: u32,
    percpu: bool,
    /// A map was closed before: this name's fd may be closed, or another map's now.
    stale: bool,
}

/// The map types the fuzzer makes: those the model implements and that need no object it
/// lacks (programs, sockets, BTF, inner maps), on every checked kernel.
const TYPES: &[&str] = &[
    "HASH",
    "ARRAY",
    "PERCPU_HASH",
    "PERCPU_ARRAY",
    "LRU_HASH",
    "LRU_PERCPU_HASH",
    "LPM_TRIE",
    "QUEUE",
    "STACK",
    "BLOOM_FILTER",
    "RINGBUF",
    "DEVMAP",
    "CPUMAP",
];

const FLAG_NAMES: &[&str] = &[
    "NO_PREALLOC",
    "NO_COMMON_LRU",
    "RDONLY",
    "WRONLY",
    "RDONLY_PROG",
    "WRONLY_PROG",
    "MMAPABLE",
    "INNER_MAP",
];

/// A key or value literal of `len` bytes from a small pool, so keys collide often.
fn bytes(rng: &mut Rng, len: u32) -> String {
    if len == 0 {
        return "NULL".into();
    }
    if len > 64 {
        return format!("zero({len})");
    }
    let mut b = vec![0u8; len as usize];
    b[0] = rng.below(4) as u8;
    format!("hex:{}", hex(&b))
}

/// A size that is right most of the time and one short now and then.
fn size_near(rng: &mut Rng, len: u32) -> u32 {
    if len > 0 && rng.chance(5) {
        len - 1
    } else {
        len
    }
}

fn value(rng: &mut Rng, m: &GenMap, ncpus: u32) -> String {
    let vs = size_near(rng, m.value_size);
    // A value's first word may land in a DEVMAP (directly, or through a reused fd number) as
    // an ifindex: only loopback (1) exists on every machine the model is compared with, so a
    // value starts with 0, 1 or an index no machine has (the host has more devices).
    if (1..=64).contains(&vs) && !m.percpu {
        let mut b = vec![0u8; vs as usize];
        b[0] = *rng.pick(&[0u8, 1]);
        if vs >= 4 && rng.chance(30) {
            b[3] = 0x70;
        }
        return format!("hex:{}", hex(&b));
    }
    // The kernel caps a per-CPU value at 32 KiB, so a bigger one never meets a map.
    if m.percpu && vs == m.value_size && vs <= 32 << 10 {
        let slot = m.value_size.div_ceil(8) * 8;
        return format!("zero({})", slot.saturating_mul(ncpus));
    }
    bytes(rng, vs)
}

/// Element flags: the usual ones, each flag bit (7.2's BPF_F_CPU with a CPU in the upper
/// half, BPF_F_ALL_CPUS), combinations and a bit no kernel knows.
fn elem_flags(rng: &mut Rng) -> u64 {
    *rng.pick(&[0, 0, 0, 1, 2, 4, 3, 8, 16, (1 << 32) | 8, 1 << 40])
}

/// One map_create: a type, its usual sizes (or a boundary), and a few flags. Hash maps get
/// BPF_F_ZERO_SEED when the scenario is `ordered`.
fn gen_create(rng: &mut Rng, name: &str, ordered: bool) -> (String, GenMap) {
    let ty = *rng.pick(TYPES);
    let (mut ks, mut vs, mut max, mut flags): (u32, u32, u32, Vec<&str>) = match ty {
        "HASH" | "PERCPU_HASH" | "LRU_HASH" | "LRU_PERCPU_HASH" => (
            *rng.pick(&[4, 8, 1, 16]),
            *rng.pick(&[4, 8, 1, 64]),
            *rng.pick(&[1, 2, 4, 8]),
            if ordered { vec!["ZERO_SEED"] } else { vec![] },
        ),
        "ARRAY" | "PERCPU_ARRAY" => (
            4,
            *rng.pick(&[4, 8, 1, 64]),
            *rng.pick(&[1, 2, 4, 8]),
            vec![],
        ),
        "LPM_TRIE" => (*rng.pick(&[5, 8, 20]), 4, 8, vec!["NO_PREALLOC"]),
        "QUEUE" | "STACK" => (0, *rng.pick(&[4, 8]), *rng.pick(&[1, 2, 4]), vec![]),
        "BLOOM_FILTER" => (0, *rng.pick(&[4, 8]), *rng.pick(&[1, 4, 16]), vec![]),
        "RINGBUF" => (0, 0, 4096, vec![]),
        "DEVMAP" | "CPUMAP" => (4, 4, *rng.pick(&[1, 2, 4]), vec![]),
        _ => (4, 4, 1, vec![]),
    };
    if rng.chance(10) {
        ks = *rng.pick(&[0, 3, 65, 512, 513]);
    }
    if rng.chance(10) {
        vs = *rng.pick(&[0, 3, 4096, 1 << 20]);
    }
    // No huge max_entries: a real kernel would try to allocate them (slowly, or until ENOMEM,
    // which the model does not model); the limits on max_entries have their scenarios.
    if rng.chance(5) {
        max = *rng.pick(&[0, 3, MAX_GENERATED_ENTRIES]);
    }
    if rng.chance(20) {
        flags.push(*rng.pick(FLAG_NAMES));
    }
    // Now and then any one bit of map_flags, up to past the last one a kernel knows.
    let bit;
    if rng.chance(5) {
        bit = (1u32 << rng.below(22)).to_string();
        flags.push(&bit);
    }
    let mut line =
        format!("{name} = map_create(type={ty}, key_size={ks}, value_size={vs}, max_entries={max}");
    if !flags.is_empty() {
        let _ = write!(line, ", flags={}", flags.join("|"));
    }
    line.push(')');
    let percpu = matches!(ty, "PERCPU_HASH" | "PERCPU_ARRAY" | "LRU_PERCPU_HASH");
    let m = GenMap {
        name: name.to_string(),
        ty,
        key_size: ks,
        value_size: vs,
        percpu,
        stale: false,
    };
    (line, m)
}

/// The most elements a generated map holds: a batch of this many reaches the end of any map.
const MAX_GENERATED_ENTRIES: u32 = 64;

/// One call on a map made earlier (or on `never`). In a scenario that is not `ordered` the
/// calls whose result depends on the hash seed's order are compared as sets: get_next_key
/// starts from NULL and leaves its key out, batches are big enough to return every element
/// and are sorted, walks are sorted.
fn gen_call(rng: &mut Rng, maps: &[GenMap], ncpus: u32, ordered: bool) -> String {
    let m = rng.pick(maps).clone();
    let fd = if rng.chance(3) {
        "never".to_string()
    } else {
        m.name.clone()
    };
    // A key pointer that faults, now and then (a queue's must be NULL: EINVAL first).
    let key = if rng.chance(3) {
        "BAD".to_string()
    } else if matches!(m.ty, "QUEUE" | "STACK" | "BLOOM_FILTER" | "RINGBUF") {
        "NULL".to_string()
    } else {
        let ks = size_near(rng, m.key_size);
        bytes(rng, ks)
    };
    match rng.below(12) {
        0..=3 => {
            let v = if rng.chance(3) {
                "BAD".to_string()
            } else {
                value(rng, &m, ncpus)
            };
            format!(
                "update({fd}, key={key}, value={v}, flags={})",
                elem_flags(rng)
            )
        }
        4 | 5 => {
            if m.ty == "BLOOM_FILTER" {
                format!("lookup({fd}, key=NULL, value={})", value(rng, &m, ncpus))
            } else if rng.chance(3) {
                // A value buffer that faults: the copy out is EFAULT.
                format!("lookup({fd}, key={key}, value=BAD)")
            } else {
                format!("lookup({fd}, key={key})")
            }
        }
        6 => format!("delete({fd}, key={key})"),
        7 if !ordered => format!("get_next_key({fd}, key=NULL, unordered)"),
        7 => {
            let k = if rng.chance(30) {
                "NULL".to_string()
            } else {
                key
            };
            format!("get_next_key({fd}, key={k})")
        }
        8 => format!("lookup_and_delete({fd}, key={key})"),
        // A batch's buffers hold `count` values of the map the fd reaches, which may be any
        // map of the scenario (a stale name, `never` standing for the last failed create):
        // where some map has big values (up to 1 MiB a CPU) the counts stay at 0 and 1, or one
        // call would copy up to 128 MiB.
        9 => {
            let small = maps.iter().all(|m| m.value_size <= 1024);
            let count = match (ordered, small) {
                (true, true) => *rng.pick(&[0, 1, 2, 8]),
                (false, true) => *rng.pick(&[0, MAX_GENERATED_ENTRIES, MAX_GENERATED_ENTRIES]),
                (true, false) => *rng.pick(&[0, 1]),
                (false, false) => 0,
            };
            let mark = if ordered { "" } else { ", unordered" };
            format!("lookup_batch({fd}, count={count}{mark})")
        }
        10 => {
            // A walk reads an open map of the scenario back, key by key.
            if rng.chance(50) || m.stale {
                format!("freeze({fd})")
            } else if ordered {
                format!("walk({})", m.name)
            } else {
                format!("walk({}, unordered)", m.name)
            }
        }
        _ => {
            // Raw bytes for a map command (or a number no kernel knows), with an odd size now
            // and then. Not the id walks (other processes' maps show up there), and not the
            // program, BTF and link commands, which the model does not implement.
            let cmd = *rng.pick(&[0u32, 1, 2, 3, 4, 6, 7, 15, 21, 22, 24, 25, 26, 27, 64, 1000]);
            let len = *rng.pick(&[0u64, 8, 32, 72, 120, 200]);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.chance(70) {
                        0
                    } else {
                        rng.below(256) as u8
                    }
                })
                .collect();
            let attr = if len == 0 {
                "NULL".to_string()
            } else {
                format!("hex:{}", hex(&bytes))
            };
            let size = if rng.chance(20) { rng.below(300) } else { len };
            format!("raw(cmd={cmd}, attr={attr}, size={size})")
        }
    }
}

/// The text of scenario `index` of the run for `seed`: a comment, then `calls` calls.
pub fn generate(seed: u64, index: u64, calls: usize, ncpus: u32) -> String {
    let mut rng = Rng::new(seed ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03));
    let mut out = format!("# fuzz: seed {seed}, scenario {index}\n");
    // A quarter of the scenarios make their hash maps without BPF_F_ZERO_SEED: every call
    // of such a scenario is one whose outcome the seed cannot change, or is compared as a set
    // (a stale name may reach any map of the scenario, so the choice is the scenario's).
    let ordered = !rng.chance(25);
    let mut maps: Vec<GenMap> = Vec::new();
    // Fd numbers are reused, so after a close any name may stand for a stale fd or for
    // another map's fd: from then on no name is walked (a walk needs a live map).
    let mut closed_any = false;
    for i in 0..calls {
        if maps.is_empty() || (maps.len() < 4 && rng.chance(15)) {
            let (line, mut m) = gen_create(&mut rng, &format!("m{i}"), ordered);
            m.stale = closed_any;
            out.push_str(&line);
            maps.push(m);
        } else if rng.chance(3) {
            let victim = rng.pick(&maps).name.clone();
            let _ = write!(out, "close({victim})");
            maps.iter_mut().for_each(|m| m.stale = true);
            closed_any = true;
        } else {
            out.push_str(&gen_call(&mut rng, &maps, ncpus, ordered));
        }
        out.push('\n');
    }
    out
}

/// Parses a generated or shrunk scenario text.
pub fn parse(name: &str, text: &str) -> Option<Scenario> {
    scenario::parse(Path::new(name), text).ok()
}

/// Whether the two transcripts disagree anywhere.
pub fn diverges(model: &Transcript, kernel: &Transcript) -> bool {
    !compare(model, kernel).is_empty()
}

/// Shrinks `text` (a header comment, then calls) to a scenario that still fails and from which
/// no single call can be dropped. Each round asks `test` about every one-call-shorter variant
/// at once (one QEMU boot, or one parallel batch on the host); if several calls can go, it
/// tries dropping them all together (one more ask), else drops the last one that can go.
/// `test` answers, for each text, whether it still fails.
pub fn shrink_batched(text: &str, test: &mut dyn FnMut(&[String]) -> Vec<bool>) -> String {
    let join = |lines: &[String]| lines.join("\n") + "\n";
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    loop {
        // Line 0 is the header comment; every other line is a call.
        let without = |skip: &[usize]| -> Vec<String> {
            lines
                .iter()
                .enumerate()
                .filter(|(i, _)| !skip.contains(i))
                .map(|(_, l)| l.clone())
                .collect()
        };
        let candidates: Vec<usize> = (1..lines.len()).collect();
        let trials: Vec<String> = candidates.iter().map(|i| join(&without(&[*i]))).collect();
        let verdicts = test(&trials);
        let removable: Vec<usize> = candidates
            .iter()
            .zip(&verdicts)
            .filter(|(_, f)| **f)
            .map(|(i, _)| *i)
            .collect();
        let Some(&last) = removable.last() else {
            return join(&lines);
        };
        if removable.len() > 1 {
            let all = without(&removable);
            if test(&[join(&all)]).first().copied().unwrap_or(false) {
                lines = all;
                continue;
            }
        }
        lines = without(&[last]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_calls() {
        assert_eq!(generate(7, 3, 30, 2), generate(7, 3, 30, 2));
        assert_ne!(generate(7, 3, 30, 2), generate(8, 3, 30, 2));
    }

    #[test]
    fn generated_scenarios_parse_and_validate() {
        for i in 0..200 {
            let text = generate(42, i, 40, 2);
            let s = parse("f.bpfs", &text).unwrap_or_else(|| panic!("does not parse:\n{text}"));
            crate::exec::validate(&s)
                .unwrap_or_else(|e| panic!("{}:{}: {}\n{text}", e.line, e.col, e.msg));
        }
    }

    #[test]
    fn every_generated_call_is_a_call_not_a_scenario_error() {
        let profile = syscall_model::KernelProfile::linux_6_12(syscall_model::Arch::X86_64, 2);
        for i in 0..300 {
            let text = generate(21, i, 40, 2);
            let s = parse("f.bpfs", &text).expect("parses");
            let t = runner::run_model(&s, &profile);
            let bad: Vec<_> = t
                .entries
                .iter()
                .filter(|e| e.text.contains("scenario error"))
                .collect();
            assert!(bad.is_empty(), "{bad:?}\n{text}");
        }
    }

    #[test]
    fn batched_shrinking_asks_about_every_variant_at_once_and_ends_one_minimal() {
        // Fails while it holds b and d: a, c and e can all go, in one combined round.
        let text = "# c\na\nb\nc\nd\ne\n";
        let mut asks = Vec::new();
        let out = shrink_batched(text, &mut |trials| {
            asks.push(trials.len());
            trials
                .iter()
                .map(|t| t.contains("b\n") && t.contains("d\n"))
                .collect()
        });
        assert_eq!(out, "# c\nb\nd\n");
        // Five variants, then the three removable calls together, then the two left.
        assert_eq!(asks, vec![5, 1, 2]);
    }

    #[test]
    fn batched_shrinking_falls_back_to_one_call_when_the_removable_ones_interact() {
        // Either x or y may go, not both: the combined try fails, so one goes at a time.
        let text = "# c\nx\ny\nz\n";
        let out = shrink_batched(text, &mut |trials| {
            trials
                .iter()
                .map(|t| t.contains("z\n") && (t.contains("x\n") || t.contains("y\n")))
                .collect()
        });
        assert_eq!(out, "# c\nx\nz\n");
    }

    #[test]
    fn shrinking_keeps_only_the_calls_the_failure_needs() {
        let text = "# c\na\nb\nc\nd\n";
        let out = shrink_batched(text, &mut |trials| {
            trials
                .iter()
                .map(|t| t.contains("b\n") && t.contains("d\n"))
                .collect()
        });
        assert_eq!(out, "# c\nb\nd\n");
    }
}

/// One scenario's run: the model's transcript, the kernel's, and the model's watched calls.
type Run = (Transcript, Transcript, Vec<crate::coverage::WatchedCall>);

/// What a fuzz run found.
#[derive(Default, Debug)]
pub struct Outcome {
    pub scenarios: usize,
    pub calls: usize,
    /// Files written for divergences (shrunk where the kernel is the host's).
    pub findings: Vec<std::path::PathBuf>,
    /// (call, outcome) -> count, from the kernel's transcripts: `update = -1 E2BIG`.
    pub tally: std::collections::BTreeMap<(String, String), usize>,
    /// (command, map type, outcome) -> count, from the model's run of the same scenarios
    /// (which, where nothing diverged, is the kernel's).
    pub by_type: std::collections::BTreeMap<(&'static str, String, String), usize>,
}

impl Outcome {
    pub fn count(&mut self, kernel: &Transcript) {
        self.scenarios += 1;
        self.calls += kernel.calls();
        for e in kernel.entries.iter().filter(|e| e.calls > 0) {
            let first = e.text.lines().next().unwrap_or("");
            let call = first
                .split('(')
                .next()
                .unwrap_or("")
                .rsplit(' ')
                .next()
                .unwrap_or("");
            let result = first
                .rsplit_once(") = ")
                .map(|(_, r)| r.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                .unwrap_or_default();
            let result = if result.starts_with("-1") {
                result
            } else {
                "ok".to_string()
            };
            *self.tally.entry((call.to_string(), result)).or_default() += 1;
        }
    }

    /// Counts the calls of a watched model run by command, map type and outcome.
    pub fn count_watched(&mut self, calls: &[crate::coverage::WatchedCall]) {
        for (t, col, r) in calls {
            // Raw attr bytes name map types no kernel has, thousands of them: one row.
            let ty = t
                .short_name()
                .map_or_else(|| "(no such type)".to_string(), str::to_string);
            let outcome = match r {
                Ok(()) => "ok".to_string(),
                Err(e) => e.symbol(),
            };
            *self.by_type.entry((col, ty, outcome)).or_default() += 1;
        }
    }

    /// Command x map type x errno: one line per command and type, with each outcome's count.
    pub fn type_table(&self) -> String {
        let mut out = String::new();
        let mut last: Option<(&str, &str)> = None;
        for ((col, ty, outcome), n) in &self.by_type {
            if last != Some((col, ty.as_str())) {
                if last.is_some() {
                    out.push('\n');
                }
                let _ = write!(out, "{col} {ty}:");
                last = Some((col, ty.as_str()));
            }
            let _ = write!(out, " {outcome} x{n};");
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out
    }

    /// The tally as a table: each call, then each outcome with its count.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut last = String::new();
        for ((call, result), n) in &self.tally {
            if *call != last {
                let _ = write!(out, "{}{call}:", if last.is_empty() { "" } else { "\n" });
                last = call.clone();
            }
            let _ = write!(out, " {result} x{n};");
        }
        out.push('\n');
        out
    }
}

/// Writes a finding as a scenario file under `dir`, with a comment saying where it came from.
pub fn write_finding(
    dir: &Path,
    name: &str,
    note: &str,
    text: &str,
) -> std::io::Result<std::path::PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.bpfs"));
    let body: String = text.lines().skip(1).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, format!("# {note}\n{body}"))?;
    Ok(path)
}

/// What a fuzz run makes: at least `calls` bpf(2) calls from `seed`, in scenarios of `per`
/// statements each. A statement is not always one call (a close is none, a walk several), so
/// the run goes on, scenario after scenario, until the calls made reach `calls`.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub seed: u64,
    pub calls: usize,
    pub per: usize,
}

impl Plan {
    /// How many more scenarios to generate after `done` calls: enough for the calls left if
    /// every statement were one call (the next batch tops up what falls short).
    pub fn more(&self, done: usize) -> u64 {
        self.calls.saturating_sub(done).div_ceil(self.per.max(1)) as u64
    }
}

/// A batch that made no call at all would loop forever: the generator is broken.
fn no_progress(before: usize, after: usize, seed: u64) -> anyhow::Result<()> {
    if after == before {
        anyhow::bail!("fuzz: a batch of seed {seed} made no bpf call; the generator is broken");
    }
    Ok(())
}

/// Fuzzes the host kernel: `calls` calls in scenarios of `per`, run in parallel, each on the
/// model (the host's profile) and in a fresh process on the kernel. A divergence is shrunk and
/// written under `out`; `progress` hears after every batch.
pub fn run_host(
    plan: Plan,
    out: &Path,
    progress: &(dyn Fn(&Outcome) + Sync),
) -> anyhow::Result<Outcome> {
    let Plan { seed, per, .. } = plan;
    let (profile, _) = runner::host_profile()?;
    let ncpus = profile.num_possible_cpus;
    // The model runs watched, so the same run gives its transcript and the map type behind
    // every call (for the tally).
    let run = |text: &str| -> Option<Run> {
        let s = parse("fuzz.bpfs", text)?;
        let (m, calls) = crate::coverage::run_watched(&s, &profile);
        let k = runner::run_kernel(&s).ok()?;
        Some((m, k, calls))
    };
    let mut outcome = Outcome::default();
    let mut index = 0u64;
    while outcome.calls < plan.calls {
        let before = outcome.calls;
        let upto = index + plan.more(outcome.calls).min(64);
        let results: Vec<(u64, String, Option<Run>)> = (index..upto)
            .into_par_iter()
            .map(|i| {
                let text = generate(seed, i, per, ncpus);
                let r = run(&text);
                (i, text, r)
            })
            .collect();
        for (i, text, r) in results {
            let (m, k, calls) = r.with_context(|| {
                format!("fuzz scenario {i} of seed {seed} does not run:\n{text}")
            })?;
            outcome.count(&k);
            outcome.count_watched(&calls);
            if diverges(&m, &k) {
                let small = shrink_batched(&text, &mut |trials| {
                    trials
                        .par_iter()
                        .map(|t| run(t).is_some_and(|(m, k, _)| diverges(&m, &k)))
                        .collect()
                });
                let note = format!(
                    "fuzz finding: seed {seed}, scenario {i}, shrunk; model {} and the host kernel disagree",
                    profile.label()
                );
                let path = write_finding(out, &format!("seed{seed}-{i}"), &note, &small)?;
                if let Some((m, k, _)) = run(&small) {
                    for d in compare(&m, &k) {
                        eprint!(
                            "{}",
                            render_divergence(&path.display().to_string(), &d, "model", "kernel")
                        );
                    }
                }
                outcome.findings.push(path);
            }
        }
        index = upto;
        no_progress(before, outcome.calls, seed)?;
        progress(&outcome);
    }
    Ok(outcome)
}

/// Boots kernel `name` of the manifest once with `files` (name, text) as its whole corpus and
/// returns its report. The corpus lives in a temporary folder for the boot only.
fn boot_corpus(
    base: &crate::qemu::QemuConfig,
    name: &str,
    files: &[(String, String)],
    log: &(dyn Fn(&str) + Sync),
) -> anyhow::Result<Vec<crate::qemu::KernelReport>> {
    let dir = std::env::temp_dir().join(format!(
        "bpfmodel-fuzz-{}-{}",
        std::process::id(),
        CORPUS_DIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        files
            .iter()
            .try_for_each(|(f, text)| std::fs::write(dir.join(f), text))
    });
    let reports = written
        .with_context(|| format!("writing the guest corpus in {}", dir.display()))
        .and_then(|()| {
            let cfg = crate::qemu::QemuConfig {
                scenarios: dir.clone(),
                only: vec![name.to_string()],
                host: false,
                ..base.clone()
            };
            crate::qemu::run(&cfg, log)
        });
    let _ = std::fs::remove_dir_all(&dir);
    reports
}

/// Numbers the temporary guest corpora of this process.
static CORPUS_DIRS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Whether each of `texts` still makes the model and kernel `name` disagree: one QEMU boot for
/// all of them. A boot that fails counts as no divergence (and is logged), so shrinking keeps
/// what it has.
fn qemu_divergences(
    base: &crate::qemu::QemuConfig,
    name: &str,
    texts: &[String],
    log: &(dyn Fn(&str) + Sync),
) -> Vec<bool> {
    let files: Vec<(String, String)> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("t{i:05}.bpfs"), t.clone()))
        .collect();
    let mut verdicts = vec![false; texts.len()];
    match boot_corpus(base, name, &files, log) {
        Ok(reports) => {
            for r in reports {
                for (path, m, k) in &r.results {
                    let i = path
                        .trim_end_matches(".bpfs")
                        .trim_start_matches('t')
                        .parse::<usize>();
                    if let Some(v) = i.ok().and_then(|i| verdicts.get_mut(i)) {
                        *v = diverges(m, k);
                    }
                }
            }
        }
        Err(e) => log(&format!(
            "shrinking: a boot failed, keeping the last text: {e:#}"
        )),
    }
    verdicts
}

/// The scenario index in a guest corpus file name (`f0000042.bpfs`).
fn scenario_index(path: &str) -> u64 {
    let stem = path.trim_end_matches(".bpfs");
    stem.trim_start_matches('f').parse().unwrap_or(0)
}

/// Scenarios per guest boot: about 20,000 calls, a couple of minutes under TCG, well inside
/// the boot timeout.
const SCENARIOS_PER_BOOT: u64 = 500;

/// Fuzzes a kernel of the manifest in QEMU: the generated scenarios become the guest's corpus,
/// [`SCENARIOS_PER_BOOT`] at a time. A divergence is shrunk with a boot per round (every
/// one-call-shorter variant in one corpus) and written as a scenario. `log` hears the
/// harness's messages, `progress` the tally after every boot.
pub fn run_qemu(
    base: &crate::qemu::QemuConfig,
    name: &str,
    plan: Plan,
    out: &Path,
    log: &(dyn Fn(&str) + Sync),
    progress: &(dyn Fn(&Outcome) + Sync),
) -> anyhow::Result<Outcome> {
    let Plan { seed, per, .. } = plan;
    let ncpus = crate::qemu::boot::GUEST_SMP;
    let mut outcome = Outcome::default();
    let mut first = 0u64;
    while outcome.calls < plan.calls {
        let before = outcome.calls;
        let last = first + plan.more(outcome.calls).min(SCENARIOS_PER_BOOT);
        let files: Vec<(String, String)> = (first..last)
            .map(|i| (format!("f{i:07}.bpfs"), generate(seed, i, per, ncpus)))
            .collect();
        // A boot that does not finish is tried once more before the run gives up: a guest
        // whose vCPUs lose their host cores to another guest (or a busy build) can stall past
        // the timeout without any scenario being at fault. A second failure is the run's.
        let reports = match boot_corpus(base, name, &files, log) {
            Ok(r) => Ok(r),
            Err(e) => {
                log(&format!(
                    "scenarios {first}..{last}: {e:#}\nbooting them once more"
                ));
                boot_corpus(base, name, &files, log)
            }
        };
        for r in reports.with_context(|| format!("scenarios {first}..{last} of seed {seed}"))? {
            // The guest sends transcripts; the map type behind each call comes from a watched
            // run of the same scenarios on the model here, under the guest's profile (cheap
            // next to the guest's run).
            let watched: Vec<_> = r
                .results
                .par_iter()
                .map(|(path, _, _)| {
                    let i = scenario_index(path);
                    parse("fuzz.bpfs", &generate(seed, i, per, ncpus))
                        .map(|s| crate::coverage::run_watched(&s, &r.model).1)
                })
                .collect();
            for ((path, m, k), calls) in r.results.iter().zip(watched) {
                outcome.count(k);
                if let Some(calls) = calls {
                    outcome.count_watched(&calls);
                }
                if diverges(m, k) {
                    let i = scenario_index(path);
                    let text = generate(seed, i, per, ncpus);
                    let mut boots = 0;
                    let small = shrink_batched(&text, &mut |trials| {
                        boots += 1;
                        qemu_divergences(base, name, trials, log)
                    });
                    let note = format!(
                        "fuzz finding: seed {seed}, scenario {i}, shrunk in {boots} boots; model {} and {} disagree",
                        r.profile, r.label
                    );
                    let p = write_finding(out, &format!("seed{seed}-{name}-{i}"), &note, &small)?;
                    // The lines are the generated scenario's (`--print-scenario {i}`): the
                    // shrunk file's own would need one more boot.
                    let whole = format!("seed {seed} scenario {i}");
                    for d in compare(m, k) {
                        eprint!("{}", render_divergence(&whole, &d, "model", "kernel"));
                    }
                    eprintln!("shrunk to {}", p.display());
                    outcome.findings.push(p);
                }
            }
        }
        first = last;
        no_progress(before, outcome.calls, seed)?;
        progress(&outcome);
    }
    Ok(outcome)
}
