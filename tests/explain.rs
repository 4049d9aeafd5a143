//! `bpfmodel explain` and the walkthrough generated from it.

mod common;

use common::root;
use riscv_harness::explain;
use riscv_harness::runner;
use syscall_model::{Arch, KernelProfile};

/// Every call of the corpus that fails, under every profile, is explained by the check that
/// failed: the explanation names a kernel function and file, the errno is the call's, and the
/// one-sentence reason names the function too.
#[test]
fn every_failing_call_of_the_corpus_is_explained_by_the_check_that_failed() {
    let corpus = runner::load(&[root().join("tests/scenarios")]).expect("the corpus parses");
    let mut failing = 0;
    let mut unexplained = Vec::new();
    for profile in KernelProfile::all(Arch::X86_64, 2) {
        for s in &corpus {
            for r in explain::record(s, &profile) {
                for c in &r.calls {
                    let Err(errno) = c.result else { continue };
                    failing += 1;
                    match explain::failure_of(c) {
                        Some(f)
                            if !f.function.is_empty()
                                && !f.file.is_empty()
                                && f.errno == errno.symbol()
                                && f.why.contains(f.function) => {}
                        other => unexplained.push(format!(
                            "{}:{} under {}: {} -> {other:?}",
                            s.path.display(),
                            r.line,
                            profile.label(),
                            r.stmt
                        )),
                    }
                }
            }
        }
    }
    assert!(failing > 1000, "only {failing} failing calls in the corpus");
    assert!(
        unexplained.is_empty(),
        "{} failing calls without a failed check:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}

/// docs/walkthrough is what `bpfmodel walkthrough` makes from the current model and scenarios.
#[test]
fn the_walkthrough_docs_are_current() {
    let pages = explain::walkthrough(&root().join(explain::WALKTHROUGH_SCENARIOS))
        .expect("the walkthrough generates");
    assert!(pages.len() >= 7, "only {} pages", pages.len());
    let stale = explain::stale_pages(&root().join("docs/walkthrough"), &pages);
    assert!(
        stale.is_empty(),
        "docs/walkthrough is stale ({}): run `bpfmodel walkthrough --write docs/walkthrough`",
        stale.join("; ")
    );
}

/// The README links the walkthrough.
#[test]
fn the_readme_links_the_walkthrough() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(readme.contains("docs/walkthrough/README.md"));
}

/// A call explained under one profile notes where another kernel version answers differently:
/// BPF_MAP_TYPE_RHASH exists from 7.2 only.
#[test]
fn an_explanation_notes_the_kernels_that_answer_differently() {
    let s = riscv_harness::scenario::parse(
        std::path::Path::new("t.bpfs"),
        "m = map_create(type=RHASH, key_size=4, value_size=8, max_entries=8, flags=NO_PREALLOC)\n",
    )
    .expect("parses");
    let e = explain::explain(&s, &KernelProfile::linux_7_2(Arch::X86_64, 2));
    let st = &e.statements[0];
    assert!(st.calls[0].failure.is_none(), "{:?}", st.calls[0].failure);
    assert!(
        st.other_kernels
            .iter()
            .any(|n| n.starts_with("Linux 6.12: -1 EINVAL from ")),
        "{:?}",
        st.other_kernels
    );
}

/// The text explanation of a failing call ends with the sentence naming the check.
#[test]
fn a_failing_call_ends_with_the_check_that_decided_it() {
    let s = riscv_harness::scenario::parse(
        std::path::Path::new("t.bpfs"),
        "m = map_create(type=HASH, key_size=4, value_size=8, max_entries=4)\n\
         update(m, key=u32:1, value=u64:1)\n\
         update(m, key=u32:1, value=u64:2, flags=NOEXIST)\n",
    )
    .expect("parses");
    let text = explain::render_text(&explain::explain(
        &s,
        &KernelProfile::linux_6_12(Arch::Riscv64, 2),
    ));
    assert!(
        text.contains("=> EEXIST from check_flags (kernel/bpf/hashtab.c)"),
        "{text}"
    );
    assert!(
        text.contains("bpf(BPF_MAP_UPDATE_ELEM, {map_fd=3, key="),
        "{text}"
    );
}

/// A check made by a shared helper for a function is reported in that function's file: the
/// element-flag rule of a hash batch lives in kernel/bpf/syscall.c's helpers in the model, but
/// the kernel checks it in __htab_map_lookup_and_delete_batch, in kernel/bpf/hashtab.c.
#[test]
fn a_step_is_reported_in_the_file_of_the_function_it_names() {
    let s = riscv_harness::scenario::parse(
        std::path::Path::new("t.bpfs"),
        "m = map_create(type=HASH, key_size=4, value_size=8, max_entries=4)\n\
         lookup_batch(m, count=4, elem_flags=8)\n",
    )
    .expect("parses");
    let e = explain::explain(&s, &KernelProfile::linux_6_12(Arch::Riscv64, 2));
    let f = e.statements[1].calls[0].failure.clone().expect("fails");
    assert_eq!(
        (f.function, f.file),
        ("__htab_map_lookup_and_delete_batch", "kernel/bpf/hashtab.c")
    );
}
