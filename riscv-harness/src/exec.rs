//! Runs a scenario against a backend and writes its transcript.
//!
//! Each statement becomes a bpf(2) call with an attr built from its arguments (or a close,
//! an open, a walk). The transcript echoes the scenario line by line, comments included, and
//! appends the outcome of each call: `= 0`, `= -1 EEXIST`, `= 3 (m)` for a new fd, then every
//! buffer the kernel wrote back, in the scenario's own literal syntax (`value=u64:10`). A
//! buffer the call left alone is not printed. Fds are numbered as the kernel numbers them
//! (the host backend runs each scenario in a process whose fds past 2 are closed), so a
//! transcript is byte-identical on both backends when they agree.

use crate::backend::{Backend, NEVER_FD, POISON};
use crate::scenario::{Arg, ExpectValue, Expr, Item, Scenario, Stmt};
use crate::transcript::{Entry, Transcript};
use std::collections::HashMap;
use syscall_model::profile::KernelVersion;
use syscall_model::uapi::{elem_flags, map_flags, off, BpfCmd, MapType};
use syscall_model::Errno;

/// What the executor knows about a map it created, to size and print values.
#[derive(Clone, Copy, Debug)]
struct MapInfo {
    map_type: MapType,
    key_size: u32,
    value_size: u32,
}

impl MapInfo {
    fn percpu(&self) -> bool {
        self.map_type.is_percpu_value()
    }

    fn slot(&self) -> usize {
        (self.value_size as usize).div_ceil(8) * 8
    }

    /// ARRAY_OF_MAPS and HASH_OF_MAPS: values read back as map ids.
    fn holds_maps(&self) -> bool {
        self.map_type == MapType::ARRAY_OF_MAPS || self.map_type == MapType::HASH_OF_MAPS
    }

    fn syscall_value_size(&self, ncpus: u32) -> usize {
        if self.percpu() {
            self.slot() * ncpus as usize
        } else if self.map_type.is_fd_map() {
            4
        } else {
            self.value_size as usize
        }
    }
}

/// An error in the scenario itself (not in a call): an unknown argument, an unbound name.
#[derive(Debug, Clone)]
pub struct ScenarioError {
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

type Res<T> = Result<T, ScenarioError>;

fn serr<T>(line: usize, col: usize, msg: impl Into<String>) -> Res<T> {
    Err(ScenarioError {
        line,
        col,
        msg: msg.into(),
    })
}

/// A buffer whose contents are printed after the call if the call changed them.
struct OutBuf {
    field: &'static str,
    addr: u64,
    before: Vec<u8>,
    /// How to print it.
    show: Show,
}

/// How a written-back buffer is printed.
#[derive(Clone, Copy, Debug)]
enum Show {
    /// As a literal; per-CPU values in slots of this many bytes.
    Bytes(Option<usize>),
    /// A map id: `id(m)` for a map of this scenario.
    Id,
    /// `struct bpf_map_info`, always printed when the call succeeds.
    MapInfo,
    /// An array of `elem`-byte entries (batch keys and values), per-CPU slots inside, or ids.
    Array {
        elem: usize,
        slot: Option<usize>,
        ids: bool,
    },
}

struct Exec<'b> {
    be: &'b mut dyn Backend,
    names: HashMap<String, i32>,
    /// What was pinned where (scenario path -> the map's shape, taken when it was pinned, as
    /// the pin outlives the fd), so OBJ_GET knows the map.
    pins: HashMap<String, MapInfo>,
    /// Map ids of this scenario's maps, by name and back (learnt with a hidden GET_INFO).
    ids: HashMap<u32, String>,
    map_ids: HashMap<String, u32>,
    maps: HashMap<i32, MapInfo>,
    outs: Vec<OutBuf>,
    calls: usize,
    line: usize,
    /// The bpf(2) calls of the current statement, when the run is recorded.
    record: Option<Vec<CallRecord>>,
    /// The path string the statement's attr points to (pin, obj_get), for the record.
    path: Option<String>,
}

/// One bpf(2) call a statement made, as the runner made it.
#[derive(Clone, Debug)]
pub struct CallRecord {
    pub cmd: i32,
    /// Where the attr was.
    pub attr_addr: u64,
    /// The attr's bytes before the call, when the runner wrote them (not for an attr given as
    /// a bare address: NULL, unmapped, `ptr(..)`).
    pub attr: Option<Vec<u8>>,
    pub size: u32,
    pub result: Result<i32, Errno>,
    /// The path the attr's pathname points to, as this backend sees it (pin, obj_get).
    pub path: Option<String>,
    /// The model's steps through the kernel (none on a kernel backend).
    pub steps: Vec<syscall_model::trace::Step>,
}

/// One statement of a recorded run: its transcript entry and the bpf(2) calls it made.
#[derive(Clone, Debug)]
pub struct StmtRecord {
    pub line: usize,
    /// The statement as written.
    pub stmt: String,
    /// Its transcript entry (the statement with its outcome).
    pub outcome: String,
    pub calls: Vec<CallRecord>,
}

/// Checks every statement's call and argument names before anything runs.
pub fn validate(s: &Scenario) -> Result<(), ScenarioError> {
    for st in s.stmts() {
        let allowed: &[&str] = match st.func.as_str() {
            "map_create" => &[
                "type",
                "key_size",
                "value_size",
                "max_entries",
                "flags",
                "inner_map_fd",
                "numa_node",
                "name",
                "ifindex",
                "btf_fd",
                "btf_key_type_id",
                "btf_value_type_id",
                "btf_vmlinux_value_type_id",
                "map_extra",
                "value_type_btf_obj_fd",
                "map_token_fd",
                "excl_prog_hash",
                "excl_prog_hash_size",
                "size",
            ],
            "lookup" | "update" | "lookup_and_delete" | "delete" => {
                &["fd", "key", "value", "flags", "size"]
            }
            "get_next_key" => &["fd", "key", "next_key", "flags", "size"],
            "freeze" => &["fd", "size"],
            "raw" => &["cmd", "attr", "size", "common", "common_size"],
            "get_next_id" => &["start_id", "size"],
            "pin" => &["fd", "path", "file_flags", "path_fd", "size"],
            "lookup_batch" | "lookup_and_delete_batch" | "update_batch" | "delete_batch" => &[
                "fd",
                "in_batch",
                "out_batch",
                "keys",
                "values",
                "count",
                "elem_flags",
                "flags",
                "size",
            ],
            "obj_get" => &["path", "file_flags", "path_fd", "bpf_fd", "size"],
            "mkdir" | "unlink" => &[],
            "get_fd_by_id" => &["id", "open_flags", "size"],
            "info" => &["fd", "info", "info_len", "size"],
            "fdinfo" => &["fd"],
            "drop_privileges" => &["uid", "keep"],
            "close" | "walk" | "dump" | "open" => &[],
            _ => &[],
        };
        let max_positional = match st.func.as_str() {
            "map_create" | "raw" | "get_next_id" | "get_fd_by_id" | "obj_get"
            | "drop_privileges" => 0,
            "walk" | "dump" | "get_next_key" | "lookup_batch" | "lookup_and_delete_batch" => 2,
            _ => 1,
        };
        if let (Some(a), 2) = (st.positional(1), max_positional) {
            if !is_unordered(st) {
                return serr(
                    st.line,
                    a.col,
                    format!("the second argument of {} can only be `unordered`", st.func),
                );
            }
        }
        let mut positional = 0;
        for a in &st.args {
            match &a.name {
                None => {
                    positional += 1;
                    if positional > max_positional {
                        return serr(
                            st.line,
                            a.col,
                            format!(
                                "{} takes at most {max_positional} positional argument(s)",
                                st.func
                            ),
                        );
                    }
                }
                Some(n) if n.starts_with('@') => {
                    if st.func == "raw" || st.func == "close" || st.func == "open" {
                        return serr(
                            st.line,
                            a.col,
                            format!("{} does not take @offset arguments", st.func),
                        );
                    }
                }
                Some(n) => {
                    if !allowed.contains(&n.as_str()) {
                        return serr(
                            st.line,
                            a.col,
                            format!(
                                "{} has no argument `{n}` (it takes: {})",
                                st.func,
                                allowed.join(", ")
                            ),
                        );
                    }
                }
            }
        }
        if st.bind.is_some()
            && !matches!(
                st.func.as_str(),
                "map_create" | "raw" | "open" | "get_fd_by_id" | "obj_get"
            )
        {
            return serr(st.line, 1, format!("{} returns no fd to name", st.func));
        }
    }
    Ok(())
}

/// Whether the call is marked `unordered` (its second positional argument): for a hash map
/// whose seed is random, where only the set of keys a call returns is the kernel's to fix,
/// not their order. A walk or a batch then prints its elements sorted, get_next_key prints
/// no key (any key of the map is right) and a batch no resume cookie (a bucket number).
fn is_unordered(st: &Stmt) -> bool {
    matches!(
        st.positional(1),
        Some(Arg { value: Expr::Name(n), .. }) if n == "unordered"
    )
}

/// The uid `drop_privileges()` takes without `uid=`: nobody.
pub const NOBODY_UID: u32 = 65534;

/// Capabilities by name, for `drop_privileges(keep=BPF|PERFMON)`.
pub const CAPABILITY_NAMES: &[(&str, u32)] = &[
    ("NET_ADMIN", 12),
    ("SYS_ADMIN", 21),
    ("PERFMON", 38),
    ("BPF", 39),
];

/// A capability set written as `BPF|PERFMON` (or one name).
fn capabilities(e: &Expr) -> Result<u64, String> {
    match e {
        Expr::Name(n) => CAPABILITY_NAMES
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, bit)| 1u64 << bit)
            .ok_or_else(|| {
                let known: Vec<&str> = CAPABILITY_NAMES.iter().map(|(n, _)| *n).collect();
                format!("unknown capability `{n}` (known: {})", known.join(", "))
            }),
        Expr::Or(parts) => parts
            .iter()
            .try_fold(0, |acc, p| Ok(acc | capabilities(p)?)),
        _ => Err("keep takes capability names: keep=BPF|PERFMON".to_string()),
    }
}

/// Whether a scenario gives up root somewhere (such a scenario needs a process of its own).
pub fn drops_privileges(s: &Scenario) -> bool {
    s.stmts().any(|st| st.func == "drop_privileges")
}

/// Runs every statement of `s` on `be`.
pub fn run(s: &Scenario, be: &mut dyn Backend) -> Transcript {
    run_inner(s, be, false).0
}

/// Runs `s` on `be` and also returns, per statement, every bpf(2) call it made (its attr, size,
/// result and, on the model, its steps): what `bpfmodel explain` and `--format strace` show.
pub fn run_recorded(s: &Scenario, be: &mut dyn Backend) -> (Transcript, Vec<StmtRecord>) {
    run_inner(s, be, true)
}

/// Told about each statement just before a kernel backend runs it: (line, statement). The
/// QEMU guest reports progress this way, so that when a kernel hangs or panics mid-run the
/// host can say which call it was on.
static PROGRESS: std::sync::OnceLock<fn(usize, &str)> = std::sync::OnceLock::new();

/// Installs the progress hook (once per process).
pub fn set_progress(f: fn(usize, &str)) {
    let _ = PROGRESS.set(f);
}

fn run_inner(s: &Scenario, be: &mut dyn Backend, record: bool) -> (Transcript, Vec<StmtRecord>) {
    let mut records = Vec::new();
    let mut t = Transcript {
        scenario: s.name.clone(),
        backend: be.name().to_string(),
        entries: Vec::new(),
    };
    if let Err(e) = validate(s) {
        t.entries.push(Entry::error(
            e.line,
            format!("!! scenario error at {}:{}: {}", e.line, e.col, e.msg),
        ));
        return (t, records);
    }
    // Every scenario starts on CPU 0 (the LRU maps' per-CPU lists depend on it).
    if let Err(e) = be.set_cpu(0) {
        t.entries
            .push(Entry::error(0, format!("!! cannot run on CPU 0: {e}")));
        return (t, records);
    }
    let mut ex = Exec {
        be,
        names: HashMap::new(),
        pins: HashMap::new(),
        ids: HashMap::new(),
        map_ids: HashMap::new(),
        maps: HashMap::new(),
        outs: Vec::new(),
        calls: 0,
        line: 0,
        record: None,
        path: None,
    };
    for item in &s.items {
        match item {
            Item::Comment(c) => t.entries.push(Entry::text(c.clone())),
            Item::Blank => t.entries.push(Entry::text(String::new())),
            Item::Stmt(st) => {
                ex.calls = 0;
                ex.line = st.line;
                ex.record = record.then(Vec::new);
                ex.path = None;
                if let Some(progress) = PROGRESS.get().filter(|_| ex.be.name() == "kernel") {
                    progress(st.line, &st.text);
                }
                let text = match ex.stmt(st) {
                    Ok(text) => text,
                    Err(e) => format!(
                        "{}\n  !! scenario error at {}:{}: {}",
                        st.text, e.line, e.col, e.msg
                    ),
                };
                if let Some(calls) = ex.record.take() {
                    records.push(StmtRecord {
                        line: st.line,
                        stmt: st.text.clone(),
                        outcome: text.clone(),
                        calls,
                    });
                }
                t.entries.push(Entry {
                    line: st.line,
                    text,
                    calls: ex.calls,
                });
            }
        }
    }
    (t, records)
}

/// The outcome of one call as printed: `= 0`, `= -1 EEXIST`.
fn result_text(r: &Result<i32, Errno>) -> String {
    match r {
        Ok(v) => format!("= {v}"),
        Err(e) => format!("= -1 {}", e.symbol()),
    }
}

fn check_expect(st: &Stmt, r: &Result<i32, Errno>, version: KernelVersion) -> Option<String> {
    let want = st.expect.as_ref()?.for_version(version)?;
    let ok = match (want, r) {
        (ExpectValue::Value(v), Ok(got)) => *v == *got as i64,
        (ExpectValue::AnyFd, Ok(got)) => *got >= 0,
        (ExpectValue::Errno(n), Err(e)) => e.name() == Some(n.as_str()),
        _ => false,
    };
    if ok {
        None
    } else {
        Some(match want {
            ExpectValue::Value(v) => format!("expected = {v}"),
            ExpectValue::AnyFd => "expected a new fd".to_string(),
            ExpectValue::Errno(n) => format!("expected = -1 {n}"),
        })
    }
}

/// Renders bytes in the scenario's literal syntax.
pub fn render_bytes(b: &[u8], slot: Option<usize>) -> String {
    if let Some(slot) = slot {
        if slot > 0 && b.len() > slot && b.len().is_multiple_of(slot) {
            let parts: Vec<String> = b.chunks(slot).map(|c| render_bytes(c, None)).collect();
            return format!("[{}]", parts.join(", "));
        }
    }
    let le = |n: usize| {
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(&b[..n]);
        u64::from_le_bytes(v)
    };
    // Small numbers read best in decimal, large ones (addresses, patterns) in hex.
    let num = |ty: &str, v: u64| {
        if v < 1 << 16 {
            format!("{ty}:{v}")
        } else {
            format!("{ty}:{v:#x}")
        }
    };
    match b.len() {
        1 => num("u8", le(1)),
        2 => num("u16", le(2)),
        4 => num("u32", le(4)),
        8 => num("u64", le(8)),
        _ => {
            format!("hex:{}", syscall_model::trace::hex(b))
        }
    }
}

/// Sorts a batch's written-back keys and values as pairs, by key, with the entries the
/// kernel left alone (the poison) last: `now` holds each out buffer's bytes.
fn sort_batch_pairs(outs: &[OutBuf], now: &mut [Vec<u8>]) {
    let array = |field: &str| {
        outs.iter()
            .position(|o| o.field == field)
            .and_then(|i| match outs[i].show {
                Show::Array { elem, .. } if elem > 0 => Some((i, elem)),
                _ => None,
            })
    };
    let (Some((ki, kelem)), vals) = (array("keys"), array("values")) else {
        return;
    };
    let n = now[ki].len() / kelem;
    let entry = |buf: &[u8], elem: usize, i: usize| buf[i * elem..(i + 1) * elem].to_vec();
    let mut pairs: Vec<(bool, Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| {
            let k = entry(&now[ki], kelem, i);
            let v = match vals {
                Some((vi, velem)) if now[vi].len() >= (i + 1) * velem => entry(&now[vi], velem, i),
                _ => Vec::new(),
            };
            (k.iter().all(|b| *b == POISON), k, v)
        })
        .collect();
    pairs.sort();
    now[ki] = pairs.iter().flat_map(|(_, k, _)| k.clone()).collect();
    if let Some((vi, velem)) = vals {
        if now[vi].len() == n * velem {
            now[vi] = pairs.iter().flat_map(|(_, _, v)| v.clone()).collect();
        }
    }
}

impl Exec<'_> {
    fn stmt(&mut self, st: &Stmt) -> Res<String> {
        self.outs.clear();
        match st.func.as_str() {
            "walk" | "dump" => return self.walk(st),
            "fdinfo" => return self.fdinfo(st),
            "close" => {
                let fd = self.fd_arg(st, 0)?;
                let r = self.be.close(fd).map(|()| 0);
                return Ok(self.finish(st, r));
            }
            "open" => {
                let Some(Arg {
                    value: Expr::Str(p),
                    ..
                }) = st.positional(0)
                else {
                    return serr(
                        st.line,
                        st.func_col,
                        "open takes a path string: open(\"/dev/null\")",
                    );
                };
                let path = String::from_utf8_lossy(p).into_owned();
                if path != "/dev/null" && path != "/dev/zero" && !path.starts_with('@') {
                    return serr(
                        st.line,
                        st.func_col,
                        "open() is for \"/dev/null\", \"/dev/zero\" and @bpffs/@tmp directories",
                    );
                }
                let real = self.be.path(&path);
                let r = self.be.open(&real);
                return Ok(self.finish(st, r));
            }
            "cpu" => {
                let Some(Arg {
                    value: Expr::Int(n),
                    ..
                }) = st.positional(0)
                else {
                    return serr(st.line, st.func_col, "cpu takes a CPU number: cpu(1)");
                };
                let Ok(cpu) = u32::try_from(*n) else {
                    return serr(st.line, st.func_col, format!("cpu {n} is not a CPU number"));
                };
                let r = self.be.set_cpu(cpu);
                return Ok(self.finish(st, r.map(|()| 0)));
            }
            "drop_privileges" => {
                let uid = match st.arg("uid").map(|a| &a.value) {
                    None => NOBODY_UID,
                    Some(Expr::Int(n)) => match u32::try_from(*n) {
                        Ok(uid) if uid != 0 => uid,
                        _ => {
                            return serr(
                                st.line,
                                st.func_col,
                                format!("uid {n} is not a non-root uid"),
                            )
                        }
                    },
                    Some(_) => return serr(st.line, st.func_col, "uid takes a number"),
                };
                let keep = match st.arg("keep") {
                    None => 0,
                    Some(a) => capabilities(&a.value).map_err(|msg| ScenarioError {
                        line: st.line,
                        col: a.col,
                        msg,
                    })?,
                };
                let r = self.be.drop_privileges(uid, keep);
                return Ok(self.finish(st, r.map(|()| 0)));
            }
            "mkdir" | "unlink" => {
                let Some(Arg {
                    value: Expr::Str(p),
                    ..
                }) = st.positional(0)
                else {
                    return serr(
                        st.line,
                        st.func_col,
                        format!("{} takes a path string", st.func),
                    );
                };
                let real = self.be.path(&String::from_utf8_lossy(p));
                let r = if st.func == "mkdir" {
                    self.be.mkdir(&real)
                } else {
                    self.be.unlink(&real)
                };
                return Ok(self.finish(st, r.map(|()| 0)));
            }
            _ => {}
        }
        let (cmd, attr, size) = self.build(st)?;
        let attr_bytes = match &attr {
            AttrPtr::Bytes(b) => Some(b.clone()),
            AttrPtr::Addr(_) => None,
        };
        let attr_addr = match attr {
            AttrPtr::Addr(a) => a,
            AttrPtr::Bytes(b) => {
                let addr = self.be.buffer(&b, true);
                // GET_NEXT_ID and GET_INFO_BY_FD write back into the attr itself, at offset 4.
                let show = match st.func.as_str() {
                    "get_next_id" => Some(("next_id", Show::Id)),
                    "info" => Some(("info_len", Show::Bytes(None))),
                    _ => None,
                };
                if let (Some((field, show)), Some(before)) = (show, b.get(4..8)) {
                    self.outs.push(OutBuf {
                        field,
                        addr: addr + 4,
                        before: before.to_vec(),
                        show,
                    });
                }
                if let (true, Some(before)) = (st.func.ends_with("_batch"), b.get(32..36)) {
                    // batch.count comes back with how many elements were done.
                    let count = OutBuf {
                        field: "count",
                        addr: addr + 32,
                        before: before.to_vec(),
                        show: Show::Bytes(None),
                    };
                    self.outs.insert(0, count);
                }
                addr
            }
        };
        let common = self.common_args(st)?;
        let r = self.bpf(cmd, attr_addr, attr_bytes, size, common);
        if r.is_err() && st.func == "map_create" && st.bind.is_some() {
            // The name stands for `never` from now on (see `finish`); walk and dump still know
            // the shape the map would have had.
            self.maps.insert(NEVER_FD, self.map_info(st)?);
        }
        if let Ok(fd) = r {
            match st.func.as_str() {
                "map_create" => {
                    self.maps.insert(fd, self.map_info(st)?);
                    self.learn_id(st, fd);
                }
                "obj_get" => {
                    // The map pinned at that path, if this scenario pinned it.
                    let pinned = match st.arg("path").map(|a| &a.value) {
                        Some(Expr::Str(p)) => self
                            .pins
                            .get(&String::from_utf8_lossy(p).into_owned())
                            .copied(),
                        _ => None,
                    };
                    if let Some(info) = pinned {
                        self.maps.insert(fd, info);
                    }
                }
                "pin" => {
                    let path = match st.arg("path").map(|a| &a.value) {
                        Some(Expr::Str(p)) => Some(String::from_utf8_lossy(p).into_owned()),
                        _ => None,
                    };
                    let name = match st.arg("fd").or_else(|| st.positional(0)).map(|a| &a.value) {
                        Some(Expr::Name(n)) => Some(n.clone()),
                        _ => None,
                    };
                    let info = name
                        .and_then(|n| self.names.get(&n).copied())
                        .and_then(|f| self.maps.get(&f).copied());
                    if let (Some(p), Some(info)) = (path, info) {
                        self.pins.insert(p, info);
                    }
                }
                "get_fd_by_id" => {
                    // The same map as the one with that id, if this scenario made it.
                    let same = st
                        .arg("id")
                        .and_then(|a| self.int(&a.value, Kind::Plain, st.line, a.col).ok())
                        .and_then(|id| self.ids.get(&(id as u32)).cloned())
                        .and_then(|n| self.names.get(&n).copied())
                        .and_then(|f| self.maps.get(&f).copied());
                    if let Some(info) = same {
                        self.maps.insert(fd, info);
                    }
                }
                _ => {}
            }
        }
        Ok(self.finish(st, r))
    }

    /// `raw(.., common=PTR, common_size=N)`: 7.2's common attrs; zeros otherwise.
    fn common_args(&mut self, st: &Stmt) -> Res<(u64, u32)> {
        let ptr = match st.arg("common") {
            Some(a) => self.ptr(&a.value, None, st.line, a.col)?,
            None => 0,
        };
        let size = match st.arg("common_size") {
            Some(a) => self.int(&a.value, Kind::Plain, st.line, a.col)? as u32,
            None => 0,
        };
        Ok((ptr, size))
    }

    /// The result line: the call, its outcome, the buffers it wrote, a failed expectation.
    fn finish(&mut self, st: &Stmt, r: Result<i32, Errno>) -> String {
        let mut out = format!("{} {}", st.text, result_text(&r));
        match (&st.bind, &r) {
            (Some(name), Ok(fd)) => {
                out.push_str(&format!(" ({name})"));
                self.names.insert(name.clone(), *fd);
            }
            // A name whose call failed stands for an fd never opened, so a scenario about a
            // map only some kernels create goes on there with EBADF.
            (Some(name), Err(_)) => {
                self.names.insert(name.clone(), NEVER_FD);
            }
            _ => {}
        }
        if st.func == "close" {
            if let (Ok(_), Some(fd)) = (&r, self.fd_arg(st, 0).ok()) {
                self.maps.remove(&fd);
            }
        }
        let outs = std::mem::take(&mut self.outs);
        let mut now: Vec<Vec<u8>> = outs
            .iter()
            .map(|o| self.be.read(o.addr, o.before.len()))
            .collect();
        let unordered = is_unordered(st);
        if unordered {
            sort_batch_pairs(&outs, &mut now);
        }
        for (o, now) in outs.into_iter().zip(now) {
            let always = matches!(o.show, Show::MapInfo) && r.is_ok();
            if now != o.before || always {
                let hidden = unordered && matches!(o.field, "next_key" | "out_batch");
                let text = match o.show {
                    _ if hidden => "(any)".to_string(),
                    Show::Bytes(slot) => render_bytes(&now, slot),
                    Show::Id => self.render_id(&now),
                    Show::MapInfo => self.render_map_info(&now),
                    Show::Array { elem, slot, ids } => {
                        let parts: Vec<String> = now
                            .chunks(elem.max(1))
                            .map(|c| {
                                // An entry the kernel left alone (still the poison) prints as _.
                                if c.iter().all(|b| *b == POISON) {
                                    "_".to_string()
                                } else if ids && c.len() == 4 {
                                    self.render_id(c)
                                } else {
                                    render_bytes(c, slot)
                                }
                            })
                            .collect();
                        format!("[{}]", parts.join(", "))
                    }
                };
                out.push_str(&format!(" {}={}", o.field, text));
            }
        }
        if let Some(msg) = check_expect(st, &r, self.be.kernel_version()) {
            out.push_str(&format!("\n  !! {msg}"));
        }
        out
    }

    fn map_info(&self, st: &Stmt) -> Res<MapInfo> {
        let get = |n: &str, kind: Kind| -> Res<u64> {
            match st.arg(n) {
                Some(a) => self.int(&a.value, kind, st.line, a.col),
                None => Ok(0),
            }
        };
        Ok(MapInfo {
            map_type: MapType(get("type", Kind::MapType)? as u32),
            key_size: get("key_size", Kind::Plain)? as u32,
            value_size: get("value_size", Kind::Plain)? as u32,
        })
    }

    fn fd_arg(&self, st: &Stmt, i: usize) -> Res<i32> {
        let a = match st.arg("fd").or_else(|| st.positional(i)) {
            Some(a) => a,
            None => return serr(st.line, st.func_col, format!("{} needs a map fd", st.func)),
        };
        Ok(self.int(&a.value, Kind::Fd, st.line, a.col)? as i32)
    }

    /// Builds the attr of a bpf call: (cmd, attr bytes or pointer, size).
    fn build(&mut self, st: &Stmt) -> Res<(i32, AttrPtr, u32)> {
        if st.func == "raw" {
            let cmd = match st.arg("cmd") {
                Some(a) => self.int(&a.value, Kind::Cmd, st.line, a.col)? as i32,
                None => return serr(st.line, st.func_col, "raw needs cmd="),
            };
            let attr = match st.arg("attr") {
                Some(a) => match &a.value {
                    Expr::Name(n) if n == "NULL" => AttrPtr::Addr(0),
                    Expr::Name(n) if n == "BAD" => AttrPtr::Addr(self.be.unmapped()),
                    v => AttrPtr::Bytes(self.bytes(v, st.line, a.col)?),
                },
                None => AttrPtr::Addr(0),
            };
            let size = match (st.arg("size"), &attr) {
                (Some(a), _) => self.int(&a.value, Kind::Plain, st.line, a.col)? as u32,
                (None, AttrPtr::Bytes(b)) => b.len() as u32,
                (None, AttrPtr::Addr(_)) => 0,
            };
            return Ok((cmd, attr, size));
        }
        let (cmd, natural) = match st.func.as_str() {
            "map_create" => (BpfCmd::MAP_CREATE, 80),
            "lookup" => (BpfCmd::MAP_LOOKUP_ELEM, 32),
            "update" => (BpfCmd::MAP_UPDATE_ELEM, 32),
            "delete" => (BpfCmd::MAP_DELETE_ELEM, 32),
            "get_next_key" => (BpfCmd::MAP_GET_NEXT_KEY, 24),
            "lookup_and_delete" => (BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM, 32),
            "freeze" => (BpfCmd::MAP_FREEZE, 4),
            "get_next_id" => (BpfCmd::MAP_GET_NEXT_ID, 8),
            "get_fd_by_id" => (BpfCmd::MAP_GET_FD_BY_ID, 12),
            "info" => (BpfCmd::OBJ_GET_INFO_BY_FD, 16),
            "pin" => (BpfCmd::OBJ_PIN, 20),
            "lookup_batch" => (BpfCmd::MAP_LOOKUP_BATCH, 56),
            "lookup_and_delete_batch" => (BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH, 56),
            "update_batch" => (BpfCmd::MAP_UPDATE_BATCH, 56),
            "delete_batch" => (BpfCmd::MAP_DELETE_BATCH, 56),
            "obj_get" => (BpfCmd::OBJ_GET, 20),
            f => return serr(st.line, st.func_col, format!("`{f}` is not a bpf call")),
        };
        let mut a = AttrBuf {
            bytes: vec![0; natural],
        };
        if cmd == BpfCmd::MAP_CREATE {
            self.build_map_create(st, &mut a)?;
        } else if matches!(st.func.as_str(), "get_next_id" | "get_fd_by_id" | "info") {
            self.build_obj(st, &mut a)?;
        } else if matches!(st.func.as_str(), "pin" | "obj_get") {
            self.build_pin(st, &mut a)?;
        } else if st.func.ends_with("_batch") {
            self.build_batch(st, &mut a)?;
        } else {
            self.build_elem(st, cmd, &mut a)?;
        }
        for arg in &st.args {
            if let Some(off) = arg.name.as_deref().and_then(|n| n.strip_prefix('@')) {
                let off: usize = off.parse().map_err(|_| ScenarioError {
                    line: st.line,
                    col: arg.col,
                    msg: "bad offset".into(),
                })?;
                if off > 4096 {
                    return serr(st.line, arg.col, "an @offset past 4096");
                }
                let b = self.bytes(&arg.value, st.line, arg.col)?;
                a.put(off, &b);
            }
        }
        let size = match st.arg("size") {
            Some(s) => {
                let v = self.int(&s.value, Kind::Plain, st.line, s.col)? as u32;
                // A size past the built attr reads zeros there (the buffer grows), unless the
                // size is absurd; then the kernel's own limit decides before any read.
                if (v as usize) > a.bytes.len() && v <= 8192 {
                    a.bytes.resize(v as usize, 0);
                }
                v
            }
            None => a.bytes.len() as u32,
        };
        Ok((cmd.0 as i32, AttrPtr::Bytes(a.bytes), size))
    }

    /// GET_NEXT_ID, GET_FD_BY_ID and GET_INFO_BY_FD.
    fn build_obj(&mut self, st: &Stmt, a: &mut AttrBuf) -> Res<()> {
        let get = |this: &Self, n: &str, kind: Kind| -> Res<Option<u64>> {
            st.arg(n)
                .map(|x| this.int(&x.value, kind, st.line, x.col))
                .transpose()
        };
        match st.func.as_str() {
            "get_next_id" => a.put(
                0,
                &(get(self, "start_id", Kind::Plain)?.unwrap_or(0) as u32).to_le_bytes(),
            ),
            "get_fd_by_id" => {
                a.put(
                    0,
                    &(get(self, "id", Kind::Plain)?.unwrap_or(0) as u32).to_le_bytes(),
                );
                a.put(
                    8,
                    &(get(self, "open_flags", Kind::MapFlags)?.unwrap_or(0) as u32).to_le_bytes(),
                );
            }
            _ => {
                let fd = self.fd_arg(st, 0)?;
                a.put(0, &(fd as u32).to_le_bytes());
                let len = get(self, "info_len", Kind::Plain)?.unwrap_or(MAP_INFO_LEN as u64) as u32;
                a.put(4, &len.to_le_bytes());
                let ptr = match st.arg("info") {
                    Some(x) => {
                        let p = self.ptr(&x.value, Some(("info", None)), st.line, x.col)?;
                        if let Some(o) = self.outs.last_mut().filter(|o| o.addr == p) {
                            o.show = Show::MapInfo;
                        }
                        p
                    }
                    None => {
                        // Zeroed, as libbpf hands it over: a kernel with a smaller struct then
                        // finds a zero tail.
                        let before = vec![0u8; len.min(4096) as usize];
                        let p = self.be.buffer(&before, true);
                        self.outs.push(OutBuf {
                            field: "info",
                            addr: p,
                            before,
                            show: Show::MapInfo,
                        });
                        p
                    }
                };
                a.put(8, &ptr.to_le_bytes());
            }
        }
        Ok(())
    }

    /// The batch commands: in_batch, out_batch, keys, values, count, map_fd, elem_flags, flags.
    fn build_batch(&mut self, st: &Stmt, a: &mut AttrBuf) -> Res<()> {
        let fd = self.fd_arg(st, 0)?;
        a.put(36, &(fd as u32).to_le_bytes());
        let info = self.maps.get(&fd).copied();
        let ncpus = self.be.num_possible_cpus();
        let ksize = info.map(|m| m.key_size as usize).unwrap_or(4);
        let vsize = info.map(|m| m.syscall_value_size(ncpus)).unwrap_or(8);
        let slot = info.filter(|m| m.percpu()).map(|m| m.slot());
        let ids = info.is_some_and(|m| m.holds_maps());
        let hashlike = info.is_some_and(|m| {
            matches!(
                m.map_type,
                MapType::HASH
                    | MapType::PERCPU_HASH
                    | MapType::LRU_HASH
                    | MapType::LRU_PERCPU_HASH
                    | MapType::HASH_OF_MAPS
            )
        });
        let reads = matches!(st.func.as_str(), "lookup_batch" | "lookup_and_delete_batch");
        // count: as given, or for update/delete the number of keys written.
        let count = match st.arg("count") {
            Some(x) => self.int(&x.value, Kind::Plain, st.line, x.col)?,
            None => match st.arg("keys").map(|x| &x.value) {
                Some(v) if !reads => {
                    (self.bytes(v, st.line, 0).map(|b| b.len()).unwrap_or(0) / ksize.max(1)) as u64
                }
                _ => 0,
            },
        };
        a.put(32, &(count as u32).to_le_bytes());
        let n = (count as usize).min(4096);
        let key_show = Show::Array {
            elem: ksize,
            slot: None,
            ids: false,
        };
        let value_show = Show::Array {
            elem: vsize,
            slot,
            ids,
        };
        let cookie = if hashlike { 4 } else { ksize };
        let fields: [(&'static str, usize, Option<usize>, Show); 4] = [
            ("in_batch", 0, None, Show::Bytes(None)),
            ("out_batch", 8, reads.then_some(cookie), Show::Bytes(None)),
            ("keys", 16, reads.then_some(n * ksize), key_show),
            ("values", 24, reads.then_some(n * vsize), value_show),
        ];
        for (name, off, out_len, show) in fields {
            let p = match (st.arg(name), out_len) {
                (Some(x), _) => {
                    let before = self.outs.len();
                    let p = self.ptr(&x.value, reads.then_some((name, None)), st.line, x.col)?;
                    for o in &mut self.outs[before..] {
                        o.show = show;
                    }
                    p
                }
                (None, Some(len)) => {
                    let p = self.out_buf(name, len, None);
                    if let Some(o) = self.outs.last_mut() {
                        o.show = show;
                    }
                    p
                }
                (None, None) => 0,
            };
            a.put(off, &p.to_le_bytes());
        }
        if let Some(x) = st.arg("elem_flags") {
            let v = self.int(&x.value, Kind::ElemFlags, st.line, x.col)?;
            a.put(40, &v.to_le_bytes());
        }
        if let Some(x) = st.arg("flags") {
            let v = self.int(&x.value, Kind::Plain, st.line, x.col)?;
            a.put(48, &v.to_le_bytes());
        }
        Ok(())
    }

    /// OBJ_PIN and OBJ_GET: pathname, bpf_fd, file_flags, path_fd.
    fn build_pin(&mut self, st: &Stmt, a: &mut AttrBuf) -> Res<()> {
        if st.func == "pin" {
            let fd = self.fd_arg(st, 0)?;
            a.put(8, &(fd as u32).to_le_bytes());
        } else if let Some(x) = st.arg("bpf_fd") {
            let v = self.int(&x.value, Kind::Fd, st.line, x.col)?;
            a.put(8, &(v as u32).to_le_bytes());
        }
        let path = match st.arg("path") {
            Some(x) => match &x.value {
                // A path string: mapped onto this backend's directories, NUL-terminated.
                Expr::Str(p) => {
                    let path = self.be.path(&String::from_utf8_lossy(p));
                    self.path = Some(path.clone());
                    let mut b = path.into_bytes();
                    b.push(0);
                    self.be.buffer(&b, true)
                }
                v => self.ptr(v, None, st.line, x.col)?,
            },
            None => 0,
        };
        a.put(0, &path.to_le_bytes());
        if let Some(x) = st.arg("file_flags") {
            let v = self.int(&x.value, Kind::MapFlags, st.line, x.col)?;
            a.put(12, &(v as u32).to_le_bytes());
        }
        if let Some(x) = st.arg("path_fd") {
            let v = self.int(&x.value, Kind::Fd, st.line, x.col)?;
            a.put(16, &(v as u32).to_le_bytes());
        }
        Ok(())
    }

    /// After a map is created, learn its id (GET_INFO_BY_FD, not counted) so ids print as
    /// `id(name)`.
    /// One counted bpf(2) call of a statement, recorded when the run is.
    fn bpf(
        &mut self,
        cmd: i32,
        attr_addr: u64,
        attr: Option<Vec<u8>>,
        size: u32,
        common: (u64, u32),
    ) -> Result<i32, Errno> {
        self.calls += 1;
        let result = self.be.bpf(cmd, attr_addr, size, common);
        if let Some(rec) = &mut self.record {
            rec.push(CallRecord {
                cmd,
                attr_addr,
                attr,
                size,
                result,
                path: self.path.take(),
                steps: self.be.take_steps(),
            });
        }
        result
    }

    fn learn_id(&mut self, st: &Stmt, fd: i32) {
        let Some(name) = st.bind.clone() else { return };
        let info = self.be.buffer(&[0u8; MAP_INFO_LEN], true);
        let mut a = AttrBuf { bytes: vec![0; 16] };
        a.put(0, &(fd as u32).to_le_bytes());
        a.put(4, &(MAP_INFO_LEN as u32).to_le_bytes());
        a.put(8, &info.to_le_bytes());
        let addr = self.be.buffer(&a.bytes, true);
        let r = self
            .be
            .bpf(BpfCmd::OBJ_GET_INFO_BY_FD.0 as i32, addr, 16, (0, 0));
        // The runner's own call: its steps are not the statement's.
        self.be.take_steps();
        if r.is_ok() {
            let b = self.be.read(info + 4, 4);
            let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            self.ids.insert(id, name.clone());
            self.map_ids.insert(name, id);
        }
    }

    fn render_id(&self, b: &[u8]) -> String {
        let id = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        match self.ids.get(&id) {
            Some(n) => format!("id({n})"),
            None if id == 0 => "0".to_string(),
            None => "id(?)".to_string(),
        }
    }

    /// `struct bpf_map_info`, its non-zero fields by name; ids and pointers symbolically.
    fn render_map_info(&self, b: &[u8]) -> String {
        let u32_at = |o: usize| {
            b.get(o..o + 4)
                .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
        };
        let u64_at = |o: usize| {
            b.get(o..o + 8)
                .map(|x| u64::from_le_bytes(x.try_into().unwrap_or([0; 8])))
        };
        let mut parts = Vec::new();
        for (name, off, kind) in MAP_INFO_FIELDS {
            let v = match kind {
                'w' => u64_at(*off),
                _ => u32_at(*off).map(|v| v as u64),
            };
            let text = match (*kind, v) {
                (_, None) => continue,
                ('s', _) => {
                    let n = &b[*off..(*off + 16).min(b.len())];
                    let end = n.iter().position(|c| *c == 0).unwrap_or(n.len());
                    if end == 0 {
                        continue;
                    }
                    format!("{:?}", String::from_utf8_lossy(&n[..end]))
                }
                (_, Some(0)) => continue,
                ('t', Some(v)) => MapType(v as u32)
                    .short_name()
                    .map(str::to_string)
                    .unwrap_or(v.to_string()),
                ('i', Some(_)) => self.render_id(&b[*off..*off + 4]),
                ('f', Some(v)) => syscall_model::uapi::map_flags_name(v as u32),
                ('p', Some(_)) => "ptr".to_string(),
                (_, Some(v)) => v.to_string(),
            };
            parts.push(format!("{name}={text}"));
        }
        if b.len() > MAP_INFO_LEN {
            parts.push(format!("tail={}", render_bytes(&b[MAP_INFO_LEN..], None)));
        }
        format!("{{{}}}", parts.join(", "))
    }

    /// `fdinfo(m)`: the map's /proc/self/fdinfo text, less the per-boot mnt_id and ino, with
    /// the map id as `id(m)`.
    fn fdinfo(&mut self, st: &Stmt) -> Res<String> {
        let fd = self.fd_arg(st, 0)?;
        let mut out = st.text.clone();
        match self.be.fdinfo(fd) {
            Ok(text) => {
                out.push_str(" = 0");
                for l in text.lines() {
                    let (k, v) = l.split_once(':').unwrap_or((l, ""));
                    let v = v.trim();
                    match k {
                        "mnt_id" | "ino" => continue,
                        "map_id" => {
                            let id: u32 = v.parse().unwrap_or(0);
                            out.push_str(&format!(
                                "\n  map_id: {}",
                                self.render_id(&id.to_le_bytes())
                            ));
                        }
                        _ => out.push_str(&format!("\n  {k}: {v}")),
                    }
                }
            }
            Err(e) => out.push_str(&format!(" = -1 {}", e.symbol())),
        }
        let r = self.be.fdinfo(fd).map(|_| 0);
        if let Some(msg) = check_expect(st, &r, self.be.kernel_version()) {
            out.push_str(&format!("\n  !! {msg}"));
        }
        Ok(out)
    }

    fn build_map_create(&mut self, st: &Stmt, a: &mut AttrBuf) -> Res<()> {
        let fields: &[(&str, usize, Kind)] = &[
            ("type", off::MAP_TYPE, Kind::MapType),
            ("key_size", off::KEY_SIZE, Kind::Plain),
            ("value_size", off::VALUE_SIZE, Kind::Plain),
            ("max_entries", off::MAX_ENTRIES, Kind::Plain),
            ("flags", off::MAP_FLAGS, Kind::MapFlags),
            ("inner_map_fd", off::INNER_MAP_FD, Kind::Fd),
            ("numa_node", off::NUMA_NODE, Kind::Plain),
            ("ifindex", off::MAP_IFINDEX, Kind::Plain),
            ("btf_fd", off::BTF_FD, Kind::Fd),
            ("btf_key_type_id", off::BTF_KEY_TYPE_ID, Kind::Plain),
            ("btf_value_type_id", off::BTF_VALUE_TYPE_ID, Kind::Plain),
            (
                "btf_vmlinux_value_type_id",
                off::BTF_VMLINUX_VALUE_TYPE_ID,
                Kind::Plain,
            ),
            (
                "value_type_btf_obj_fd",
                off::VALUE_TYPE_BTF_OBJ_FD,
                Kind::Fd,
            ),
            ("map_token_fd", off::MAP_TOKEN_FD, Kind::Fd),
            ("excl_prog_hash_size", off::EXCL_PROG_HASH_SIZE, Kind::Plain),
        ];
        for (name, offset, kind) in fields {
            if let Some(arg) = st.arg(name) {
                let v = self.int(&arg.value, *kind, st.line, arg.col)?;
                a.put(*offset, &(v as u32).to_le_bytes());
            }
        }
        if let Some(arg) = st.arg("map_extra") {
            let v = self.int(&arg.value, Kind::Plain, st.line, arg.col)?;
            a.put(off::MAP_EXTRA, &v.to_le_bytes());
        }
        if let Some(arg) = st.arg("name") {
            let b = self.bytes(&arg.value, st.line, arg.col)?;
            if b.len() > 16 {
                return serr(st.line, arg.col, "a map name is at most 16 bytes");
            }
            a.put(off::MAP_NAME, &b);
        }
        if let Some(arg) = st.arg("excl_prog_hash") {
            let p = self.ptr(&arg.value, None, st.line, arg.col)?;
            a.put(off::EXCL_PROG_HASH, &p.to_le_bytes());
        }
        Ok(())
    }

    fn build_elem(&mut self, st: &Stmt, cmd: BpfCmd, a: &mut AttrBuf) -> Res<()> {
        let fd = self.fd_arg(st, 0)?;
        a.put(off::MAP_FD, &(fd as u32).to_le_bytes());
        let info = self.maps.get(&fd).copied();
        let ncpus = self.be.num_possible_cpus();
        let key_len = info.map(|m| m.key_size as usize).unwrap_or(4);
        let value_len = info.map(|m| m.syscall_value_size(ncpus)).unwrap_or(8);
        let slot = info.filter(|m| m.percpu()).map(|m| m.slot());
        if let Some(arg) = st.arg("key") {
            let p = self.ptr(&arg.value, None, st.line, arg.col)?;
            a.put(off::KEY, &p.to_le_bytes());
        }
        let (vfield, default_out) = match cmd {
            BpfCmd::MAP_GET_NEXT_KEY => ("next_key", Some((key_len, None))),
            BpfCmd::MAP_LOOKUP_ELEM | BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM => {
                ("value", Some((value_len, slot)))
            }
            _ => ("value", None),
        };
        let outs_before = self.outs.len();
        match st.arg(vfield) {
            Some(arg) => {
                // Output fields print what the kernel wrote; input fields do not.
                let out = default_out.map(|(_, s)| (vfield_static(vfield), s));
                let p = self.ptr(&arg.value, out, st.line, arg.col)?;
                a.put(off::VALUE, &p.to_le_bytes());
            }
            None => {
                if let Some((len, slot)) = default_out {
                    let p = self.out_buf(vfield_static(vfield), len, slot);
                    a.put(off::VALUE, &p.to_le_bytes());
                }
            }
        }
        if info.is_some_and(|m| m.holds_maps()) && vfield == "value" {
            // Map-in-map values read back as map ids: print them as id(name).
            for o in &mut self.outs[outs_before..] {
                o.show = Show::Id;
            }
        }
        if let Some(arg) = st.arg("flags") {
            let v = self.int(&arg.value, Kind::ElemFlags, st.line, arg.col)?;
            a.put(off::FLAGS, &v.to_le_bytes());
        }
        Ok(())
    }

    fn out_buf(&mut self, field: &'static str, len: usize, slot: Option<usize>) -> u64 {
        let before = vec![POISON; len];
        let addr = self.be.buffer(&before, true);
        self.outs.push(OutBuf {
            field,
            addr,
            before,
            show: Show::Bytes(slot),
        });
        addr
    }

    /// A pointer field: NULL, BAD, a raw address, `out(N)`, `ro(..)`, or a literal buffer.
    /// `out` says how to print the buffer if the kernel writes into it.
    fn ptr(
        &mut self,
        e: &Expr,
        out: Option<(&'static str, Option<usize>)>,
        line: usize,
        col: usize,
    ) -> Res<u64> {
        match e {
            Expr::Name(n) if n == "NULL" => Ok(0),
            Expr::Name(n) if n == "BAD" => Ok(self.be.unmapped()),
            Expr::Int(v) => Ok(*v as u64),
            Expr::Call(f, args) if f == "out" => {
                let [Expr::Int(n)] = args.as_slice() else {
                    return serr(line, col, "out(N) takes a byte count");
                };
                if *n < 0 || *n > 1 << 20 {
                    return serr(line, col, "out(N): N between 0 and 1 MiB");
                }
                let (field, slot) = out.unwrap_or(("out", None));
                Ok(self.out_buf(field, *n as usize, slot))
            }
            Expr::Call(f, args) if f == "ro" => {
                let [inner] = args.as_slice() else {
                    return serr(line, col, "ro(..) takes one literal");
                };
                let b = self.bytes(inner, line, col)?;
                Ok(self.be.buffer(&b, false))
            }
            v => {
                let b = self.bytes(v, line, col)?;
                let addr = self.be.buffer(&b, true);
                if let Some((field, slot)) = out {
                    self.outs.push(OutBuf {
                        field,
                        addr,
                        before: b,
                        show: Show::Bytes(slot),
                    });
                }
                Ok(addr)
            }
        }
    }

    /// A byte literal.
    fn bytes(&mut self, e: &Expr, line: usize, col: usize) -> Res<Vec<u8>> {
        match e {
            Expr::Bytes(b) => Ok(b.clone()),
            Expr::Str(s) => Ok(s.clone()),
            Expr::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    out.extend(self.bytes(i, line, col)?);
                }
                Ok(out)
            }
            Expr::Call(f, args) => match (f.as_str(), args.as_slice()) {
                ("zero", [Expr::Int(n)]) if (0..=1 << 20).contains(n) => Ok(vec![0; *n as usize]),
                ("zero", _) => serr(line, col, "zero(N) takes a length from 0 to 1048576 (1 MiB)".to_string()),
                ("fd", [v]) => Ok((self.int(v, Kind::Fd, line, col)? as u32).to_le_bytes().to_vec()),
                ("ptr", [v]) => Ok(self.ptr(v, None, line, col)?.to_le_bytes().to_vec()),
                ("percpu", vals) if !vals.is_empty() => {
                    let mut slots = Vec::new();
                    for v in vals {
                        slots.push(self.bytes(v, line, col)?);
                    }
                    let width = slots.iter().map(Vec::len).max().unwrap_or(0).div_ceil(8) * 8;
                    let mut out = Vec::new();
                    for cpu in 0..self.be.num_possible_cpus() as usize {
                        let mut s = slots[cpu % slots.len()].clone();
                        s.resize(width, 0);
                        out.extend(s);
                    }
                    Ok(out)
                }
                _ => serr(line, col, format!("{f}(..) is not a byte literal here (zero(N), fd(name), ptr(..), percpu(..))")),
            },
            other => serr(line, col, format!("expected a byte literal such as u32:1 or hex:00ff, found {other:?}")),
        }
    }

    /// An integer field.
    fn int(&self, e: &Expr, kind: Kind, line: usize, col: usize) -> Res<u64> {
        match e {
            Expr::Int(v) => Ok(*v as u64),
            Expr::Call(f, args) if f == "id" => match args.as_slice() {
                [Expr::Name(n)] => match self.map_ids.get(n) {
                    Some(id) => Ok(*id as u64),
                    None => serr(
                        line,
                        col,
                        format!("no id known for `{n}` (a map this scenario created)"),
                    ),
                },
                _ => serr(line, col, "id(name) takes the name of a map"),
            },
            Expr::Call(f, args) if f == "btf_id" => match args.as_slice() {
                [Expr::Name(n)] => match self.be.btf_vmlinux_id(n) {
                    Some(id) => Ok(id as u64),
                    None => serr(
                        line,
                        col,
                        format!(
                            "no struct `{n}` in the {} kernel's vmlinux BTF",
                            self.be.name()
                        ),
                    ),
                },
                _ => serr(
                    line,
                    col,
                    "btf_id(NAME) takes the name of a vmlinux BTF struct",
                ),
            },
            Expr::Or(parts) => {
                let mut v = 0;
                for p in parts {
                    v |= self.int(p, kind, line, col)?;
                }
                Ok(v)
            }
            Expr::Bytes(b) if b.len() <= 8 => {
                let mut x = [0u8; 8];
                x[..b.len()].copy_from_slice(b);
                Ok(u64::from_le_bytes(x))
            }
            Expr::Name(n) => self.name(n, kind).map_or_else(
                || {
                    serr(
                        line,
                        col,
                        format!("unknown name `{n}` for {}", kind.describe()),
                    )
                },
                Ok,
            ),
            other => serr(
                line,
                col,
                format!("expected a number for {}, found {other:?}", kind.describe()),
            ),
        }
    }

    fn name(&self, n: &str, kind: Kind) -> Option<u64> {
        if let Some(fd) = self.names.get(n) {
            return Some(*fd as u32 as u64);
        }
        match kind {
            Kind::Fd => match n {
                "never" => Some(NEVER_FD as u64),
                "stdin" => Some(0),
                _ => None,
            },
            Kind::MapType => MapType::from_name(n).map(|t| t.0 as u64),
            Kind::Cmd => BpfCmd::from_name(n).map(|c| c.0 as u64),
            Kind::MapFlags => map_flags::NAMES
                .iter()
                .find(|(name, _)| *name == n || n.strip_prefix("BPF_F_") == Some(name))
                .map(|(_, b)| *b as u64),
            Kind::ElemFlags => match n {
                "ANY" | "BPF_ANY" => Some(elem_flags::BPF_ANY),
                _ => elem_flags::NAMES
                    .iter()
                    .find(|(name, _)| *name == n || n.strip_prefix("BPF_") == Some(name))
                    .map(|(_, b)| *b),
            },
            Kind::Plain => None,
        }
    }

    /// `walk(m)` / `dump(m)`: get_next_key from NULL until it fails; `dump` also looks each
    /// key up. `unordered` sorts the result, for hash maps whose seed is random.
    fn walk(&mut self, st: &Stmt) -> Res<String> {
        let fd = self.fd_arg(st, 0)?;
        let unordered = is_unordered(st);
        let dump = st.func == "dump";
        let Some(info) = self.maps.get(&fd).copied() else {
            return serr(
                st.line,
                st.func_col,
                format!("{} needs a map this scenario created", st.func),
            );
        };
        let ncpus = self.be.num_possible_cpus();
        let klen = info.key_size as usize;
        let vlen = info.syscall_value_size(ncpus);
        let slot = info.percpu().then(|| info.slot());
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut end = Err(Errno::ENOENT);
        let mut prev: Option<u64> = None;
        for _ in 0..100_000 {
            let next = self.be.buffer(&vec![POISON; klen], true);
            let mut a = AttrBuf { bytes: vec![0; 24] };
            a.put(off::MAP_FD, &(fd as u32).to_le_bytes());
            a.put(off::KEY, &prev.unwrap_or(0).to_le_bytes());
            a.put(off::VALUE, &next.to_le_bytes());
            let addr = self.be.buffer(&a.bytes, true);
            match self.bpf(
                BpfCmd::MAP_GET_NEXT_KEY.0 as i32,
                addr,
                Some(a.bytes),
                24,
                (0, 0),
            ) {
                Ok(_) => {
                    keys.push(self.be.read(next, klen));
                    prev = Some(next);
                }
                Err(e) => {
                    end = Err(e);
                    break;
                }
            }
        }
        let mut rows: Vec<WalkRow> = Vec::new();
        for k in keys {
            let v = if dump {
                let kaddr = self.be.buffer(&k, true);
                let vaddr = self.be.buffer(&vec![POISON; vlen], true);
                let mut a = AttrBuf { bytes: vec![0; 32] };
                a.put(off::MAP_FD, &(fd as u32).to_le_bytes());
                a.put(off::KEY, &kaddr.to_le_bytes());
                a.put(off::VALUE, &vaddr.to_le_bytes());
                let addr = self.be.buffer(&a.bytes, true);
                Some(
                    self.bpf(
                        BpfCmd::MAP_LOOKUP_ELEM.0 as i32,
                        addr,
                        Some(a.bytes),
                        32,
                        (0, 0),
                    )
                    .map(|_| self.be.read(vaddr, vlen)),
                )
            } else {
                None
            };
            rows.push((k, v));
        }
        if unordered {
            rows.sort();
        }
        let n = rows.len();
        let what = if dump { "elements" } else { "keys" };
        let order = if unordered { ", sorted" } else { "" };
        let mut out = format!(
            "{} = {n} {what}{order}, then {}",
            st.text,
            result_text(&end).trim_start_matches("= ")
        );
        for (k, v) in rows {
            let k = render_bytes(&k, None);
            match v {
                None => out.push_str(&format!("\n  {k}")),
                Some(Ok(v)) if info.holds_maps() => {
                    out.push_str(&format!("\n  {k} => {}", self.render_id(&v)))
                }
                Some(Ok(v)) => out.push_str(&format!("\n  {k} => {}", render_bytes(&v, slot))),
                Some(Err(e)) => out.push_str(&format!("\n  {k} => lookup -1 {}", e.symbol())),
            }
        }
        Ok(out)
    }
}

/// The info buffer GET_INFO_BY_FD gets by default: `sizeof(struct bpf_map_info)` on 6.18+.
const MAP_INFO_LEN: usize = 104;

/// `struct bpf_map_info`: name, offset, and how to print: `t` type, `i` id, `f` map flags,
/// `s` name, `w` u64, `p` pointer, `u` u32.
const MAP_INFO_FIELDS: &[(&str, usize, char)] = &[
    ("type", 0, 't'),
    ("id", 4, 'i'),
    ("key_size", 8, 'u'),
    ("value_size", 12, 'u'),
    ("max_entries", 16, 'u'),
    ("map_flags", 20, 'f'),
    ("name", 24, 's'),
    ("ifindex", 40, 'u'),
    ("btf_vmlinux_value_type_id", 44, 'u'),
    ("netns_dev", 48, 'w'),
    ("netns_ino", 56, 'w'),
    ("btf_id", 64, 'u'),
    ("btf_key_type_id", 68, 'u'),
    ("btf_value_type_id", 72, 'u'),
    ("btf_vmlinux_id", 76, 'u'),
    ("map_extra", 80, 'w'),
    ("hash", 88, 'p'),
    ("hash_size", 96, 'u'),
    ("pad", 100, 'u'),
];

fn vfield_static(f: &str) -> &'static str {
    if f == "next_key" {
        "next_key"
    } else {
        "value"
    }
}

/// A key of a walk, and for a dump the outcome of its lookup.
type WalkRow = (Vec<u8>, Option<Result<Vec<u8>, Errno>>);

enum AttrPtr {
    Addr(u64),
    Bytes(Vec<u8>),
}

struct AttrBuf {
    bytes: Vec<u8>,
}

impl AttrBuf {
    fn put(&mut self, off: usize, b: &[u8]) {
        if self.bytes.len() < off + b.len() {
            self.bytes.resize(off + b.len(), 0);
        }
        self.bytes[off..off + b.len()].copy_from_slice(b);
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Plain,
    Fd,
    MapType,
    MapFlags,
    ElemFlags,
    Cmd,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Plain => "a number",
            Kind::Fd => "an fd (a bound name, `never`, `stdin` or a number)",
            Kind::MapType => "a map type (HASH, ARRAY, ...)",
            Kind::MapFlags => "map flags (NO_PREALLOC, ZERO_SEED, ...)",
            Kind::ElemFlags => "element flags (ANY, NOEXIST, EXIST, F_LOCK)",
            Kind::Cmd => "a command (MAP_CREATE, ... or a number)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_render_as_literals() {
        assert_eq!(render_bytes(&[1, 0, 0, 0], None), "u32:1");
        assert_eq!(render_bytes(&[10, 0, 0, 0, 0, 0, 0, 0], None), "u64:10");
        assert_eq!(render_bytes(&[1, 2, 3], None), "hex:010203");
        assert_eq!(
            render_bytes(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], Some(8)),
            "[u64:1, u64:2]"
        );
    }

    fn validated(text: &str) -> Result<(), String> {
        let s = crate::scenario::parse(std::path::Path::new("t.bpfs"), text)
            .map_err(|e| e.to_string())?;
        validate(&s).map_err(|e| e.msg)
    }

    #[test]
    fn only_order_dependent_calls_take_unordered() {
        let m = "m = map_create(type=HASH, key_size=4, value_size=4, max_entries=4)\n";
        for call in [
            "walk(m, unordered)",
            "dump(m, unordered)",
            "get_next_key(m, key=NULL, unordered)",
            "lookup_batch(m, count=4, unordered)",
            "lookup_and_delete_batch(m, count=4, unordered)",
        ] {
            assert_eq!(validated(&format!("{m}{call}\n")), Ok(()), "{call}");
        }
        let e = validated(&format!("{m}get_next_key(m, key=NULL, sorted)\n")).unwrap_err();
        assert!(e.contains("can only be `unordered`"), "{e}");
        let e = validated(&format!("{m}lookup(m, key=u32:1, unordered)\n")).unwrap_err();
        assert!(e.contains("at most 1 positional"), "{e}");
        let e = validated(&format!("{m}lookup(m, key=u32:1, sorted)\n")).unwrap_err();
        assert!(e.contains("at most 1 positional"), "{e}");
    }
}
