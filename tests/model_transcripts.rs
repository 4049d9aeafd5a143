//! One insta snapshot per scenario: the model's transcript under the 6.18 profile with two
//! possible CPUs (the host's shape), so a change in the model shows up as a reviewed diff.

use riscv_harness::{exec, scenario};
use syscall_model::{Arch, KernelProfile};

#[test]
fn model_transcript_of_every_scenario() {
    let profile = KernelProfile::linux_6_18(Arch::X86_64, 2);
    insta::glob!("scenarios/**/*.bpfs", |path| {
        let s = scenario::parse_file(path).unwrap_or_else(|e| panic!("{e}"));
        let t = riscv_harness::runner::run_model(&s, &profile);
        let mut settings = insta::Settings::clone_current();
        settings.set_description(format!("{} [model {}]", s.description(), profile.label()));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(t.render()));
        assert!(exec::validate(&s).is_ok());
        assert!(
            t.problems().is_empty(),
            "{}: {:?}",
            path.display(),
            t.problems()
        );
    });
}

/// A snapshot whose scenario was renamed or removed would never be checked again.
#[test]
fn every_snapshot_belongs_to_a_scenario() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests");
    let prefix = "model_transcripts__model_transcript_of_every_scenario@";
    for e in std::fs::read_dir(root.join("snapshots")).expect("tests/snapshots") {
        let name = e.expect("entry").file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_suffix(".snap"))
        else {
            continue;
        };
        let scenario = root.join("scenarios").join(rest.replace("__", "/"));
        assert!(
            scenario.is_file(),
            "snapshot {name} has no scenario {}",
            scenario.display()
        );
    }
}
