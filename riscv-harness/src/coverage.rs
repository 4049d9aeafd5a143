//! The README's coverage table: for each map type and command, what the corpus does with it
//! and on which checked kernels.
//!
//! CI runs every scenario on each checked kernel (riscv64 6.12 and 7.2 and x86_64 6.1 in
//! QEMU, the host's 6.18) and fails on any call where the model and that kernel disagree. So a call the corpus
//! makes on a kernel is a call seen to agree there. Which calls happen on which kernel, and on
//! what type of map, depends on the version (a 7.2-only type exists only on 7.2), so the table
//! runs the corpus on the model under each checked kernel's profile, watching every bpf(2)
//! call: its command, the type of the map it names (from the model's fd table), and whether it
//! succeeded.

use crate::backend::model::ModelBackend;
use crate::backend::Backend;
use crate::exec;
use crate::qemu::boot::GUEST_SMP;
use crate::scenario::Scenario;
use std::collections::{BTreeMap, BTreeSet};
use syscall_model::profile::{Arch, KernelVersion};
use syscall_model::uapi::{BpfCmd, MapType};
use syscall_model::{Errno, KernelProfile};

/// The kernels CI checks the corpus against, by the profile the model uses for each.
pub fn checked_profiles() -> Vec<KernelProfile> {
    vec![
        KernelProfile::linux_6_1(Arch::X86_64, GUEST_SMP),
        KernelProfile::linux_6_12(Arch::Riscv64, GUEST_SMP),
        KernelProfile::linux_6_18(Arch::X86_64, 2),
        KernelProfile::linux_7_2(Arch::Riscv64, GUEST_SMP),
    ]
}

/// The table's columns: a command, or a group of commands a reader thinks of as one.
pub const COLUMNS: &[&str] = &[
    "create",
    "lookup",
    "update",
    "delete",
    "get_next_key",
    "lookup_and_delete",
    "freeze",
    "batch ops",
    "pin / get",
    "by id",
    "info",
    "fdinfo",
];

fn column(cmd: BpfCmd) -> Option<&'static str> {
    Some(match cmd {
        BpfCmd::MAP_CREATE => "create",
        BpfCmd::MAP_LOOKUP_ELEM => "lookup",
        BpfCmd::MAP_UPDATE_ELEM => "update",
        BpfCmd::MAP_DELETE_ELEM => "delete",
        BpfCmd::MAP_GET_NEXT_KEY => "get_next_key",
        BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM => "lookup_and_delete",
        BpfCmd::MAP_FREEZE => "freeze",
        BpfCmd::MAP_LOOKUP_BATCH
        | BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH
        | BpfCmd::MAP_UPDATE_BATCH
        | BpfCmd::MAP_DELETE_BATCH => "batch ops",
        BpfCmd::OBJ_PIN | BpfCmd::OBJ_GET => "pin / get",
        BpfCmd::MAP_GET_FD_BY_ID => "by id",
        BpfCmd::OBJ_GET_INFO_BY_FD => "info",
        _ => return None,
    })
}

/// What one cell saw: per kernel version, whether some call succeeded and which errnos came.
#[derive(Default, Debug, Clone)]
struct Cell {
    ok: BTreeSet<KernelVersion>,
    errors: BTreeMap<KernelVersion, BTreeSet<Errno>>,
}

impl Cell {
    fn versions(&self) -> BTreeSet<KernelVersion> {
        self.ok.iter().chain(self.errors.keys()).copied().collect()
    }
}

/// Everything the corpus does, by map type and column.
#[derive(Default, Debug)]
pub struct Coverage {
    cells: BTreeMap<(MapType, &'static str), Cell>,
    checked: Vec<KernelVersion>,
}

/// A model backend that notes each call's command, map type and outcome.
struct Watch {
    inner: ModelBackend,
    seen: Vec<(MapType, &'static str, Result<(), Errno>)>,
}

impl Watch {
    fn fd_type(&self, fd: i32) -> Option<MapType> {
        let fds = self.inner.process().fds();
        let file = fds.get(u32::try_from(fd).ok()?)?;
        file.map().map(|m| m.desc.map_type)
    }

    fn attr_u32(&self, attr: u64, size: u32, off: usize) -> Option<u32> {
        if attr == 0 || (size as usize) < off + 4 {
            return None;
        }
        let b = self.inner.read(attr + off as u64, 4);
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The type of the map a call is about, as far as it names an existing one.
    fn map_before(&self, cmd: BpfCmd, attr: u64, size: u32) -> Option<MapType> {
        let fd_at = match cmd {
            BpfCmd::MAP_CREATE => return self.attr_u32(attr, size, 0).map(MapType),
            BpfCmd::MAP_LOOKUP_BATCH
            | BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH
            | BpfCmd::MAP_UPDATE_BATCH
            | BpfCmd::MAP_DELETE_BATCH => 36,
            BpfCmd::OBJ_PIN => 8,
            BpfCmd::OBJ_GET | BpfCmd::MAP_GET_FD_BY_ID => return None,
            _ => 0,
        };
        self.fd_type(self.attr_u32(attr, size, fd_at)? as i32)
    }
}

impl Backend for Watch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn num_possible_cpus(&self) -> u32 {
        self.inner.num_possible_cpus()
    }
    fn kernel_version(&self) -> KernelVersion {
        self.inner.kernel_version()
    }
    fn buffer(&mut self, bytes: &[u8], writable: bool) -> u64 {
        self.inner.buffer(bytes, writable)
    }
    fn unmapped(&self) -> u64 {
        self.inner.unmapped()
    }
    fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        self.inner.read(addr, len)
    }
    fn bpf(&mut self, cmd: i32, attr: u64, size: u32, common: (u64, u32)) -> Result<i32, Errno> {
        let c = BpfCmd(cmd as u32);
        let before = self.map_before(c, attr, size);
        let r = self.inner.bpf(cmd, attr, size, common);
        // A call that opens a map by id or path is about the map it opened.
        let t = match (c, &r) {
            (BpfCmd::OBJ_GET | BpfCmd::MAP_GET_FD_BY_ID, Ok(fd)) => self.fd_type(*fd),
            _ => before,
        };
        if let (Some(t), Some(col)) = (t, column(c)) {
            self.seen.push((t, col, r.map(|_| ())));
        }
        r
    }
    fn close(&mut self, fd: i32) -> Result<(), Errno> {
        self.inner.close(fd)
    }
    fn path(&self, p: &str) -> String {
        self.inner.path(p)
    }
    fn mkdir(&mut self, path: &str) -> Result<(), Errno> {
        self.inner.mkdir(path)
    }
    fn unlink(&mut self, path: &str) -> Result<(), Errno> {
        self.inner.unlink(path)
    }
    fn fdinfo(&mut self, fd: i32) -> Result<String, Errno> {
        let t = self.fd_type(fd);
        let r = self.inner.fdinfo(fd);
        if let Some(t) = t {
            self.seen
                .push((t, "fdinfo", r.as_ref().map(|_| ()).map_err(|e| *e)));
        }
        r
    }
    fn open(&mut self, path: &str) -> Result<i32, Errno> {
        self.inner.open(path)
    }
    fn set_cpu(&mut self, cpu: u32) -> Result<(), Errno> {
        self.inner.set_cpu(cpu)
    }
    fn btf_vmlinux_id(&self, name: &str) -> Option<u32> {
        self.inner.btf_vmlinux_id(name)
    }
    fn drop_privileges(&mut self, uid: u32, keep: u64) -> Result<(), Errno> {
        self.inner.drop_privileges(uid, keep)
    }
}

/// One bpf(2) call a scenario made: the type of the map it named, the table column of its
/// command, and its outcome.
pub type WatchedCall = (MapType, &'static str, Result<(), Errno>);

/// Runs `s` on the model under `profile`: its transcript (the same as an unwatched run's) and
/// every call it made.
pub fn run_watched(
    s: &Scenario,
    profile: &KernelProfile,
) -> (crate::transcript::Transcript, Vec<WatchedCall>) {
    let mut w = Watch {
        inner: ModelBackend::new(profile.clone()),
        seen: Vec::new(),
    };
    let t = exec::run(s, &mut w);
    (t, w.seen)
}

impl Coverage {
    /// Runs `corpus` on the model under each of `profiles`.
    pub fn of(corpus: &[Scenario], profiles: &[KernelProfile]) -> Coverage {
        let mut cov = Coverage {
            checked: profiles.iter().map(|p| p.version).collect(),
            ..Coverage::default()
        };
        for p in profiles {
            for s in corpus {
                let mut w = Watch {
                    inner: ModelBackend::new(p.clone()),
                    seen: Vec::new(),
                };
                exec::run(s, &mut w);
                for (t, col, r) in w.seen {
                    let cell = cov.cells.entry((t, col)).or_default();
                    match r {
                        Ok(()) => {
                            cell.ok.insert(p.version);
                        }
                        Err(e) => {
                            cell.errors.entry(p.version).or_default().insert(e);
                        }
                    }
                }
            }
        }
        cov
    }

    /// The map types a checked kernel knows, in number order: every type some profile's
    /// `__MAX_BPF_MAP_TYPE` covers, except UNSPEC.
    fn rows(&self, profiles: &[KernelProfile]) -> Vec<MapType> {
        let max = profiles.iter().map(|p| p.nr_map_types).max().unwrap_or(0);
        MapType::NAMED
            .iter()
            .copied()
            .filter(|t| t.0 != 0 && t.0 < max)
            .collect()
    }

    fn versions_text(&self, vs: &BTreeSet<KernelVersion>) -> String {
        if self.checked.iter().all(|v| vs.contains(v)) {
            String::new()
        } else {
            let v: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
            format!(" ({})", v.join(", "))
        }
    }

    /// One cell: `✓` when some call succeeds (and the versions, unless all), the errno when
    /// every call fails the same way, `errors` when they fail in several ways, `·` when the
    /// corpus makes no such call.
    fn cell_text(&self, t: MapType, col: &str) -> String {
        let Some(cell) = self.cells.get(&(t, col)) else {
            return "·".to_string();
        };
        if !cell.ok.is_empty() {
            return format!("✓{}", self.versions_text(&cell.ok));
        }
        let errnos: BTreeSet<Errno> = cell.errors.values().flatten().copied().collect();
        let what = match errnos.iter().next() {
            Some(e) if errnos.len() == 1 => e.symbol(),
            _ => "errors".to_string(),
        };
        format!("{what}{}", self.versions_text(&cell.versions()))
    }

    /// The table in Markdown.
    pub fn table(&self, profiles: &[KernelProfile]) -> String {
        let mut out = String::new();
        out.push_str("| map type |");
        for c in COLUMNS {
            out.push_str(&format!(" {c} |"));
        }
        out.push_str("\n|---|");
        for _ in COLUMNS {
            out.push_str("---|");
        }
        out.push('\n');
        for t in self.rows(profiles) {
            out.push_str(&format!("| {} {} |", t.0, t.short_name().unwrap_or("?")));
            for c in COLUMNS {
                out.push_str(&format!(" {} |", self.cell_text(t, c)));
            }
            out.push('\n');
        }
        out
    }
}

/// Where the table sits in README.md.
pub const BEGIN: &str = "<!-- coverage table: generated by `bpfmodel coverage --write-readme` -->";
pub const END: &str = "<!-- end of coverage table -->";

/// `readme` with the text between [`BEGIN`] and [`END`] replaced by `table`.
pub fn splice(readme: &str, table: &str) -> Option<String> {
    let b = readme.find(BEGIN)? + BEGIN.len();
    let e = readme[b..].find(END)? + b;
    Some(format!("{}\n{}{}", &readme[..b], table, &readme[e..]))
}

/// The table README.md holds now, if it has the markers.
pub fn current(readme: &str) -> Option<&str> {
    let b = readme.find(BEGIN)? + BEGIN.len();
    let e = readme[b..].find(END)? + b;
    Some(readme[b..e].trim_start_matches('\n'))
}
