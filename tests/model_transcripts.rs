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
        settings.set_description(s.description());
        settings.set_info(&format!("model {}", profile.label()));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(t.render()));
        assert!(exec::validate(&s).is_ok());
        assert!(t.problems().is_empty(), "{}: {:?}", path.display(), t.problems());
    });
}
