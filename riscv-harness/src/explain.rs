//! `bpfmodel explain`: the road a call takes through the kernel, as the model takes it.
//!
//! The scenario runs on the model with every check recording itself (see
//! `syscall_model::trace`), so each step shown is one the model executed: the kernel function
//! and file it mirrors, the rule, the values it looked at, and the verdict. Nothing here
//! describes the kernel a second time. A failing call ends with one sentence that names the
//! check that failed. The same scenario also runs under every other profile, and where another
//! kernel version answers differently, a note says how.

use crate::backend::model::ModelBackend;
use crate::exec::{self, CallRecord, StmtRecord};
use crate::scenario::{Item, Scenario};
use crate::strace;
use serde::Serialize;
use syscall_model::trace::{Step, Verdict};
use syscall_model::KernelProfile;

/// One step of a call, for printing and JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StepView {
    /// `enter`, `pass`, `fail` or `note`.
    pub kind: &'static str,
    pub function: &'static str,
    pub file: &'static str,
    pub rule: &'static str,
    pub values: String,
    /// The errno of a failed check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errno: Option<String>,
}

impl From<&Step> for StepView {
    fn from(s: &Step) -> StepView {
        let (kind, errno) = match &s.verdict {
            Verdict::Enter => ("enter", None),
            Verdict::Pass => ("pass", None),
            Verdict::Fail(e) => ("fail", Some(e.symbol())),
            Verdict::Note => ("note", None),
        };
        StepView {
            kind,
            function: s.func,
            file: s.file,
            rule: s.rule,
            values: s.detail.clone(),
            errno,
        }
    }
}

/// The check that decided a failed call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub errno: String,
    pub function: &'static str,
    pub file: &'static str,
    pub rule: &'static str,
    pub values: String,
    /// The failure in one sentence.
    pub why: String,
}

/// One bpf(2) call.
#[derive(Clone, Debug, Serialize)]
pub struct CallView {
    /// The call, decoded as strace prints it.
    pub strace: String,
    pub result: String,
    pub steps: Vec<StepView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// One statement of the scenario and the calls it made.
#[derive(Clone, Debug, Serialize)]
pub struct StmtView {
    /// The scenario's comment lines just above the statement (its prose).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comment: Vec<String>,
    pub line: usize,
    pub statement: String,
    /// The transcript line: the statement with its outcome.
    pub outcome: String,
    pub calls: Vec<CallView>,
    /// How other kernel versions answer this statement, where they differ.
    pub other_kernels: Vec<String>,
}

/// A whole explained scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub scenario: String,
    /// The profile the model ran under (`linux-6.12/riscv64/2cpu`).
    pub profile: String,
    pub statements: Vec<StmtView>,
}

/// The failure of a call: its last failed step, which is the check whose errno the call
/// returned. A call can fail without a failed step only where a lookup outside the checks
/// decides (none is known); then the errno alone is reported.
pub fn failure_of(c: &CallRecord) -> Option<Failure> {
    let errno = c.result.err()?;
    let step = c
        .steps
        .iter()
        .rev()
        .find(|s| matches!(s.verdict, Verdict::Fail(e) if e == errno));
    Some(match step {
        Some(s) => Failure {
            errno: errno.symbol(),
            function: s.func,
            file: s.file,
            rule: s.rule,
            values: s.detail.clone(),
            why: why(errno.symbol(), s.func, s.file, s.rule, &s.detail),
        },
        None => Failure {
            errno: errno.symbol(),
            function: "",
            file: "",
            rule: "",
            values: String::new(),
            why: format!(
                "The call fails with {} ({}), but no check of the model recorded it.",
                errno.symbol(),
                errno.description()
            ),
        },
    })
}

/// `EEXIST from htab_map_update_elem (kernel/bpf/hashtab.c): "with BPF_NOEXIST, the key is
/// not in the map" does not hold here (key 01000000).`
fn why(errno: String, func: &str, file: &str, rule: &str, values: &str) -> String {
    let mut s = format!("{errno} from {func} ({file}): \"{rule}\" does not hold here");
    if !values.is_empty() {
        s.push_str(&format!(" ({values})"));
    }
    s.push('.');
    s
}

fn call_view(c: &CallRecord) -> CallView {
    CallView {
        strace: strace::call(c),
        result: strace::result(&c.result),
        steps: c.steps.iter().map(StepView::from).collect(),
        failure: failure_of(c),
    }
}

/// Runs `s` on the model under `profile`, recording every step.
pub fn record(s: &Scenario, profile: &KernelProfile) -> Vec<StmtRecord> {
    let mut be = ModelBackend::new(profile.clone());
    be.record_steps();
    exec::run_recorded(s, &mut be).1
}

/// What a statement did, in a form two kernel versions can be compared by: each call's result
/// and the function that decided a failure.
fn signature(r: &StmtRecord) -> Vec<(String, &'static str)> {
    r.calls
        .iter()
        .map(|c| {
            let f = failure_of(c).map_or("", |f| f.function);
            (strace::result(&c.result), f)
        })
        .collect()
}

/// One line about how `other` answers a statement differently from the chosen profile.
fn difference(other: &KernelProfile, mine: &StmtRecord, theirs: &StmtRecord) -> Option<String> {
    if signature(mine) == signature(theirs) {
        return None;
    }
    let v = other.version;
    let parts: Vec<String> = theirs
        .calls
        .iter()
        .map(|c| match failure_of(c) {
            Some(f) if !f.function.is_empty() => {
                format!("-1 {} from {} (\"{}\")", f.errno, f.function, f.rule)
            }
            _ => strace::result(&c.result)
                .trim_start_matches("= ")
                .to_string(),
        })
        .collect();
    let outcome = if parts.is_empty() {
        "makes no bpf call".to_string()
    } else {
        parts.join("; ")
    };
    Some(format!("Linux {v}: {outcome}"))
}

/// Explains every statement of `s` under `profile`, with notes from the other profiles.
pub fn explain(s: &Scenario, profile: &KernelProfile) -> Explanation {
    let mine = record(s, profile);
    let others: Vec<(KernelProfile, Vec<StmtRecord>)> =
        KernelProfile::all(profile.arch, profile.num_possible_cpus)
            .into_iter()
            .filter(|p| p.version != profile.version)
            .map(|p| {
                let mut p = p;
                p.unprivileged_bpf_disabled = profile.unprivileged_bpf_disabled;
                let r = record(s, &p);
                (p, r)
            })
            .collect();
    // The comments above each statement, by its line.
    let mut comments = std::collections::HashMap::new();
    let mut pending: Vec<String> = Vec::new();
    for item in &s.items {
        match item {
            Item::Comment(c) => pending.push(c.trim_start_matches('#').trim().to_string()),
            Item::Blank => pending.push(String::new()),
            Item::Stmt(st) => {
                comments.insert(st.line, std::mem::take(&mut pending));
            }
        }
    }
    let statements = mine
        .iter()
        .enumerate()
        .map(|(i, r)| StmtView {
            comment: comments.remove(&r.line).unwrap_or_default(),
            line: r.line,
            statement: r.stmt.clone(),
            outcome: r.outcome.clone(),
            calls: r.calls.iter().map(call_view).collect(),
            other_kernels: others
                .iter()
                .filter_map(|(p, rs)| difference(p, r, rs.get(i)?))
                .collect(),
        })
        .collect();
    Explanation {
        scenario: s.name.clone(),
        profile: profile.label(),
        statements,
    }
}

/// The explanation as text for a terminal.
pub fn render_text(e: &Explanation) -> String {
    let mut out = format!("# {} on the model of {}\n", e.scenario, e.profile);
    for st in &e.statements {
        out.push_str(&format!("\nline {}: {}\n", st.line, st.outcome));
        if st.calls.is_empty() {
            out.push_str("  (not a bpf(2) call: the runner makes this system call itself)\n");
        }
        for c in &st.calls {
            out.push_str(&format!("  {}\n", c.strace));
            for s in &c.steps {
                out.push_str(&format!("    {}\n", step_line(s)));
            }
            match &c.failure {
                Some(f) => out.push_str(&format!("  => {}\n", f.why)),
                None => out.push_str(&format!("  => succeeds {}\n", c.result)),
            }
        }
        for n in &st.other_kernels {
            out.push_str(&format!("  note: {n}\n"));
        }
    }
    out
}

fn step_line(s: &StepView) -> String {
    let mark = match (s.kind, &s.errno) {
        ("enter", _) => "->".to_string(),
        ("pass", _) => "ok".to_string(),
        ("fail", Some(e)) => e.clone(),
        _ => "..".to_string(),
    };
    let mut line = if s.kind == "enter" {
        format!("{mark:<6} {} ({})", s.function, s.file)
    } else {
        format!("{mark:<6} {}: {}", s.function, s.rule)
    };
    if !s.values.is_empty() {
        line.push_str(&format!(" [{}]", s.values));
    }
    line
}

/// The explanation as markdown, for docs/walkthrough: the scenario's comments as prose, each
/// call in strace form, its steps as a table, the verdict, and the other kernels' answers.
pub fn render_markdown(e: &Explanation) -> String {
    let mut out = String::new();
    for st in &e.statements {
        let prose = paragraphs(&st.comment);
        if !prose.is_empty() {
            out.push_str(&prose);
            out.push('\n');
        }
        out.push_str(&format!("```text\n{}\n```\n\n", st.outcome));
        if st.calls.is_empty() {
            out.push_str("Not a bpf(2) call: the runner makes this system call itself.\n\n");
        }
        for c in &st.calls {
            out.push_str(&format!("`{}`\n\n", c.strace));
            if !c.steps.is_empty() {
                out.push_str("| | kernel function | check | values |\n|---|---|---|---|\n");
                for s in &c.steps {
                    let mark = match (s.kind, &s.errno) {
                        ("enter", _) => "→".to_string(),
                        ("pass", _) => "ok".to_string(),
                        ("fail", Some(e)) => format!("**{e}**"),
                        _ => "·".to_string(),
                    };
                    let func = format!("`{}` ({})", s.function, s.file);
                    out.push_str(&format!(
                        "| {mark} | {func} | {} | {} |\n",
                        cell(s.rule),
                        cell(&s.values)
                    ));
                }
                out.push('\n');
            }
            match &c.failure {
                Some(f) => out.push_str(&format!("**Fails:** {}\n\n", f.why)),
                None => out.push_str(&format!("**Succeeds:** `{}`\n\n", c.result)),
            }
        }
        for n in &st.other_kernels {
            out.push_str(&format!("> Other kernels: {n}\n\n"));
        }
    }
    out
}

/// Comment lines joined into paragraphs (a blank comment line or blank line splits them).
fn paragraphs(lines: &[String]) -> String {
    let mut out = String::new();
    let mut para: Vec<&str> = Vec::new();
    let flush = |para: &mut Vec<&str>, out: &mut String| {
        if !para.is_empty() {
            out.push_str(&para.join(" "));
            out.push_str("\n\n");
            para.clear();
        }
    };
    for l in lines {
        if l.is_empty() {
            flush(&mut para, &mut out);
        } else {
            para.push(l);
        }
    }
    flush(&mut para, &mut out);
    out.trim_end().to_string() + if out.is_empty() { "" } else { "\n" }
}

/// Text safe inside a markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Where the walkthrough's scenarios live, under the corpus: they run on every kernel with the
/// rest of it, so each page shows calls a real kernel was seen to answer the same way.
pub const WALKTHROUGH_SCENARIOS: &str = "tests/scenarios/walkthrough";

/// The profile the walkthrough is written under: riscv64 Linux 6.12 with the guest's CPUs,
/// the first kernel `make qemu-test` boots. Fixed, so the pages do not depend on the machine
/// that generates them.
pub fn walkthrough_profile() -> KernelProfile {
    KernelProfile::linux_6_12(syscall_model::Arch::Riscv64, crate::qemu::boot::GUEST_SMP)
}

/// A page's title from its scenario's file name: `01_a_queue_map` -> `A queue map`.
fn title(stem: &str) -> String {
    let words = stem
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .trim_start_matches('_')
        .replace('_', " ");
    let mut c = words.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// The walkthrough's pages, as (file name, markdown): an index, then one page per scenario of
/// `dir` in file-name order, each generated by explaining the scenario under
/// [`walkthrough_profile`].
pub fn walkthrough(dir: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let scenarios = crate::runner::load(&[dir.to_path_buf()])?;
    let profile = walkthrough_profile();
    let rel = |p: &std::path::Path| -> String {
        let s = p.display().to_string();
        match s.find(WALKTHROUGH_SCENARIOS) {
            Some(i) => s[i..].to_string(),
            None => s,
        }
    };
    let pages: Vec<(String, String, &Scenario)> = scenarios
        .iter()
        .map(|s| {
            let stem = s
                .path
                .file_stem()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            (format!("{}.md", stem.replace('_', "-")), title(&stem), s)
        })
        .collect();
    let generated = |src: &str| {
        format!(
            "<!-- Generated by `bpfmodel walkthrough --write docs/walkthrough` from {src}. \
             Do not edit: change the scenario, or the model, and regenerate. -->\n"
        )
    };
    let mut out = Vec::new();
    let mut index = generated(WALKTHROUGH_SCENARIOS);
    index.push_str(INDEX_INTRO);
    index.push_str(&format!(
        "\nEvery page is `bpfmodel explain` run on one scenario of `{WALKTHROUGH_SCENARIOS}`, \
         under the model of {} (`--profile 6.12`). The scenarios are part of the test corpus, \
         so `make qemu-test` runs each call on real riscv64 6.12 and 7.2 kernels, the host's \
         kernel and x86_64 6.1 and checks that they answer as shown.\n\n",
        profile.label()
    ));
    for (i, (file, title, s)) in pages.iter().enumerate() {
        let e = explain(s, &profile);
        let first = e
            .statements
            .first()
            .map(|st| paragraphs(&st.comment))
            .unwrap_or_default();
        let summary = first.split("\n\n").next().unwrap_or("").trim().to_string();
        index.push_str(&format!("{}. [{title}]({file}): {summary}\n", i + 1));
        let mut page = generated(&rel(&s.path));
        page.push_str(&format!("# {}. {title}\n\n", i + 1));
        page.push_str(&format!(
            "Run it yourself: `bpfmodel explain --profile 6.12 {}`\n\n",
            rel(&s.path)
        ));
        page.push_str(&render_markdown(&e));
        let prev = i.checked_sub(1).map(|p| &pages[p].0);
        let next = pages.get(i + 1).map(|n| &n.0);
        let mut nav = vec![];
        if let Some(p) = prev {
            nav.push(format!("[← previous]({p})"));
        }
        nav.push("[index](README.md)".to_string());
        if let Some(n) = next {
            nav.push(format!("[next →]({n})"));
        }
        page.push_str(&format!("---\n\n{}\n", nav.join(" · ")));
        out.push((file.clone(), page));
    }
    out.insert(0, ("README.md".to_string(), index));
    Ok(out)
}

const INDEX_INTRO: &str = "# The bpf(2) map calls, walked through the kernel

Blog posts about eBPF maps usually stop at \"the kernel returns an fd\". These pages follow
each call the whole way: `__sys_bpf` in kernel/bpf/syscall.c checks the `size` argument and
that the bytes past the union the kernel knows are zero (`bpf_check_uarg_tail_zero`), copies
the attr into a zeroed `union bpf_attr`, and hands it to the command's handler. The handler
runs `CHECK_ATTR` (every byte after the command's last field must be zero), then its own
checks: for BPF_MAP_CREATE, `map_create` checks the flags, finds the map type's
`struct bpf_map_ops` (`find_and_alloc_map`), lets the type check the attr (`map_alloc_check`)
and allocate the map (`map_alloc`), gives it an id (`bpf_map_alloc_id`) and an fd
(`bpf_map_new_fd`). For an element call, the handler turns the fd into a map, checks the
fd's mode and the flags, copies the key (and value) from user memory and calls the type's
op: `map_lookup_elem`, `map_update_elem`, `map_delete_elem`, `map_get_next_key`...

Each call below is shown three ways: as the scenario writes it (with its outcome), as strace
would print it, and as the list of steps the model took, each with the kernel function it
mirrors, the rule it checked, the values it saw and the verdict (→ entering a function, ok a
check that held, · something the kernel did, **ERRNO** the check that failed). A failing call
ends with the check that decided its errno. Where another kernel version answers a call
differently, a note says so.
";

/// Writes `pages` into `dir` and removes the `.md` files there that no page has.
pub fn write_walkthrough(dir: &std::path::Path, pages: &[(String, String)]) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = name
            .as_ref()
            .is_some_and(|n| pages.iter().any(|(f, _)| f == n));
        if path.extension().is_some_and(|e| e == "md") && !ours {
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for (file, text) in pages {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// How the pages in `dir` differ from `pages`: one line per missing, changed or extra page.
pub fn stale_pages(dir: &std::path::Path, pages: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (file, text) in pages {
        match std::fs::read_to_string(dir.join(file)) {
            Err(_) => out.push(format!("{file} is missing")),
            Ok(t) if t != *text => {
                let line = t
                    .lines()
                    .zip(text.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| t.lines().count().min(text.lines().count()));
                out.push(format!("{file} differs from line {}", line + 1));
            }
            Ok(_) => {}
        }
    }
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".md") && !pages.iter().any(|(f, _)| *f == name) {
                out.push(format!("{name} is not generated by any scenario"));
            }
        }
    }
    out.sort();
    out
}
