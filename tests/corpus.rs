//! Rules for the scenario corpus itself: it is large enough, every file says what it shows,
//! and names follow the rule they exercise.

use riscv_harness::runner;
use std::path::PathBuf;

fn corpus() -> Vec<riscv_harness::scenario::Scenario> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios");
    runner::load(&[dir]).expect("the corpus parses")
}

#[test]
fn the_corpus_has_at_least_250_scenarios() {
    let n = corpus().len();
    assert!(n >= 250, "only {n} scenarios");
}

/// The README's table of map types by command is generated from the corpus; a scenario that
/// adds or removes a cell must come with the regenerated table.
#[test]
fn the_readme_coverage_table_matches_the_corpus() {
    use riscv_harness::coverage::{self, Coverage};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let profiles = coverage::checked_profiles();
    let table = Coverage::of(&corpus(), &profiles).table(&profiles);
    let current = coverage::current(&readme).expect("README.md has the coverage table markers");
    assert!(
        current == table,
        "README.md's coverage table is stale: run `bpfmodel coverage --write-readme README.md`\n\
         README has:\n{current}\nthe corpus gives:\n{table}"
    );
}

#[test]
fn every_scenario_starts_with_a_comment_saying_what_it_shows() {
    for s in corpus() {
        assert!(
            !s.description().is_empty(),
            "{} has no leading comment",
            s.path.display()
        );
        assert!(s.stmts().count() > 0, "{} makes no call", s.path.display());
    }
}

#[test]
fn every_scenario_is_short() {
    for s in corpus() {
        let n = s.stmts().count();
        assert!(
            n <= 40,
            "{} has {n} calls; one idea per file",
            s.path.display()
        );
    }
}

/// Which checks fail somewhere in the corpus on the model under any profile, as
/// `func ERRNO: rule`,
/// sorted.
fn reached_failures() -> std::collections::BTreeSet<String> {
    use riscv_harness::backend::model::ModelBackend;
    use std::sync::{Arc, Mutex};
    use syscall_model::trace::{Step, Tracer, Verdict};
    use syscall_model::{Arch, KernelProfile};

    struct Collect(Arc<Mutex<std::collections::BTreeSet<String>>>);
    impl Tracer for Collect {
        fn step(&mut self, s: Step) {
            if let Verdict::Fail(e) = s.verdict {
                self.0
                    .lock()
                    .unwrap()
                    .insert(format!("{} {}: {}", s.func, e, s.rule));
            }
        }
    }
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    for profile in KernelProfile::all(Arch::X86_64, 2) {
        for s in corpus() {
            let mut be = ModelBackend::new(profile.clone());
            be.set_tracer(Some(Box::new(Collect(seen.clone()))));
            riscv_harness::exec::run(&s, &mut be);
        }
    }
    let out = seen.lock().unwrap().clone();
    out
}

/// tests/errno_paths.txt lists every way a call can fail in the model, as `function ERRNO`,
/// and says which the corpus cannot reach yet and why. The corpus must reach every other one,
/// and nothing may fail in a way the list does not know.
#[test]
fn the_corpus_reaches_every_errno_path() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/errno_paths.txt");
    let text = std::fs::read_to_string(&path).expect("tests/errno_paths.txt");
    let mut reachable = std::collections::BTreeSet::new();
    let mut unreachable = std::collections::BTreeSet::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        match line.split_once(" -- ") {
            Some((path, _why)) => unreachable.insert(path.trim().to_string()),
            None => reachable.insert(line.to_string()),
        };
    }
    let reached = reached_failures();
    let missing: Vec<_> = reachable.difference(&reached).collect();
    assert!(
        missing.is_empty(),
        "errno paths the corpus no longer reaches: {missing:?}"
    );
    let unknown: Vec<_> = reached
        .iter()
        .filter(|r| !reachable.contains(*r) && !unreachable.contains(*r))
        .collect();
    assert!(
        unknown.is_empty(),
        "errno paths missing from tests/errno_paths.txt: {unknown:?}"
    );
    let now_reached: Vec<_> = unreachable.intersection(&reached).collect();
    assert!(
        now_reached.is_empty(),
        "paths listed as unreachable that the corpus reaches: {now_reached:?}"
    );
}

/// Every check in the model's source, as `ERRNO: rule`: the `check!(.. => Errno::X, "rule"`,
/// `ctx.fail(.., "rule", Errno::X`, `perr(Errno::X, "function", "rule"` (fs/namei.c) and
/// `copy_*_user(F, "rule"` (EFAULT) sites.
fn check_sites_in_source() -> std::collections::BTreeSet<String> {
    fn string_at(s: &str) -> Option<String> {
        let s = s.trim_start();
        let rest = s.strip_prefix('"')?;
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Some(out),
                '\\' => {
                    let n = chars.next()?;
                    if n == '\n' {
                        // A line continuation: skip the next line's indentation.
                        let rest: String = chars.collect();
                        return string_at(&format!("\"{}{}", out, rest.trim_start()));
                    }
                    out.push(n);
                }
                c => out.push(c),
            }
        }
        None
    }
    fn ident(s: &str) -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }
    let mut sites = std::collections::BTreeSet::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../syscall-model/src");
    let mut files = vec![root];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|x| x != "rs")
            || p.ends_with("ctx.rs")
            || p.ends_with("trace.rs")
        {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        for (i, _) in src.match_indices("=> Errno::") {
            let after = &src[i + "=> Errno::".len()..];
            let errno = ident(after);
            let rest = after[errno.len()..]
                .trim_start()
                .strip_prefix(',')
                .unwrap_or("");
            if let Some(rule) = string_at(rest) {
                sites.insert(format!("{errno}: {rule}"));
            }
        }
        for (i, _) in src.match_indices(", Errno::") {
            let errno = ident(&src[i + ", Errno::".len()..]);
            // The string literal right before: walk back to its opening quote.
            let before = src[..i].trim_end();
            if let Some(body) = before.strip_suffix('"') {
                if let Some(start) = body.rfind('"') {
                    sites.insert(format!("{errno}: {}", &body[start + 1..]));
                }
            }
        }
        // inode.rs reports fs/namei.c failures as `perr(Errno::X, "function", "rule")`.
        for (i, _) in src.match_indices("perr(Errno::") {
            let after = &src[i + "perr(Errno::".len()..];
            let errno = ident(after);
            let rest = after[errno.len()..]
                .trim_start()
                .strip_prefix(',')
                .unwrap_or("");
            let Some(func) = string_at(rest) else {
                continue;
            };
            let Some(q) = rest.find(&format!("\"{func}\"")) else {
                continue;
            };
            let rest = rest[q + func.len() + 2..]
                .trim_start()
                .strip_prefix(',')
                .unwrap_or("");
            if let Some(rule) = string_at(rest) {
                sites.insert(format!("{errno}: {rule}"));
            }
        }
        for pat in ["copy_from_user(", "copy_to_user("] {
            for (i, _) in src.match_indices(pat) {
                let args = &src[i + pat.len()..];
                if let Some((_, rest)) = args.split_once(',') {
                    if let Some(rule) = string_at(rest) {
                        sites.insert(format!("EFAULT: {rule}"));
                    }
                }
            }
        }
    }
    sites
}

/// Every check the model has appears in tests/errno_paths.txt, reachable or with a reason.
#[test]
fn errno_paths_lists_every_check_in_the_model() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/errno_paths.txt");
    let text = std::fs::read_to_string(&path).expect("tests/errno_paths.txt");
    let listed: std::collections::BTreeSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.split(" -- ").next()?;
            l.split_once(' ').map(|(_func, rest)| rest.to_string())
        })
        .collect();
    let sites = check_sites_in_source();
    assert!(
        sites.len() > 50,
        "the source scan found only {} checks",
        sites.len()
    );
    let unlisted: Vec<_> = sites.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "checks missing from tests/errno_paths.txt: {unlisted:#?}"
    );
}
