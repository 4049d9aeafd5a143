//! `bpfmodel load-maps` on objects Debian's clang builds from tests/bpf/*.c.

mod common;

use common::{root, skip_or_fail};
use riscv_harness::backend::kernel;
use riscv_harness::load_maps::{self, MapDef};
use riscv_harness::runner;
use riscv_harness::transcript::compare;
use std::path::{Path, PathBuf};
use std::process::Command;

/// tests/bpf/NAME.c compiled as a loader's input: `clang -g -O2 -target bpf -c`.
fn compile(name: &str) -> Result<PathBuf, String> {
    let src = root().join(format!("tests/bpf/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}.o"));
    let r = Command::new("clang")
        .args(["-g", "-O2", "-target", "bpf", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .map_err(|e| format!("clang is not installed ({e}; make qemu-deps installs it)"))?;
    if !r.status.success() {
        panic!(
            "clang failed on {}:\n{}",
            src.display(),
            String::from_utf8_lossy(&r.stderr)
        );
    }
    Ok(out)
}

fn maps_of(name: &str) -> Option<(PathBuf, Vec<MapDef>)> {
    match compile(name) {
        Ok(o) => {
            let data = std::fs::read(&o).expect("the object");
            let maps = load_maps::read_maps(&data).expect("the object's maps read");
            Some((o, maps))
        }
        Err(why) => {
            skip_or_fail(&format!("load_maps ({name})"), why);
            None
        }
    }
}

fn shape(m: &MapDef) -> (&str, &str, u32, u32, u32, u32, u32) {
    (
        m.name.as_str(),
        m.section,
        m.map_type,
        m.key_size,
        m.value_size,
        m.max_entries,
        m.map_flags,
    )
}

#[test]
fn bpf_map_def_entries_are_read_by_symbol_as_bpf_load_did() {
    let Some((_, maps)) = maps_of("sockex1_maps") else {
        return;
    };
    let got: Vec<_> = maps.iter().map(shape).collect();
    assert_eq!(
        got,
        vec![
            ("my_map", "maps", 2, 4, 8, 256, 0),
            ("flow_map", "maps", 1, 16, 8, 1024, 1),
            ("pkt_count", "maps", 6, 4, 8, 1, 0),
            ("bad_array", "maps", 2, 8, 8, 4, 0),
        ]
    );
}

#[test]
fn btf_defined_maps_take_their_attributes_from_the_member_types() {
    let Some((_, maps)) = maps_of("btf_maps") else {
        return;
    };
    let got: Vec<_> = maps.iter().map(shape).collect();
    assert_eq!(
        got,
        vec![
            // struct flow_key: 4 + 4 + 2 + 2 + 1, padded to 16.
            ("flows", ".maps", 1, 16, 8, 4096, 0),
            ("recent_connections", ".maps", 9, 4, 16, 128, 64),
            ("events", ".maps", 22, 0, 8, 16, 0),
            ("rb", ".maps", 27, 0, 0, 4096, 0),
        ]
    );
}

/// Both backends create the objects' maps with the same results, failures included (the
/// 8-byte array key is EINVAL on both).
#[test]
fn load_maps_creates_the_same_maps_on_the_model_and_the_kernel() {
    if let Err(why) = kernel::bpf_available() {
        return skip_or_fail(
            "load_maps_creates_the_same_maps_on_the_model_and_the_kernel",
            why,
        );
    }
    let (profile, _) = runner::host_profile().expect("host profile");
    for name in ["sockex1_maps", "btf_maps"] {
        let Some((obj, maps)) = maps_of(name) else {
            return;
        };
        let text = load_maps::scenario_text(name, &maps);
        let s = riscv_harness::scenario::parse(&obj, &text).expect("the maps make a scenario");
        let model = runner::run_model(&s, &profile);
        let kernel = runner::run_kernel(&s).expect("runs on the kernel");
        assert!(
            compare(&model, &kernel).is_empty(),
            "{name}:\n{}\n{}",
            model.render(),
            kernel.render()
        );
        let created = kernel
            .entries
            .iter()
            .filter(|e| e.text.contains(" = map_create(") && !e.text.contains("= -1"))
            .count();
        let expected = if name == "sockex1_maps" { 3 } else { 4 };
        assert_eq!(created, expected, "{}", kernel.render());
    }
}

#[test]
fn an_object_that_is_not_bpf_is_refused_with_a_reason() {
    let e = load_maps::read_maps(b"not an elf").unwrap_err();
    assert!(format!("{e:#}").contains("not an ELF object"), "{e:#}");
    let me = std::fs::read(std::env::current_exe().expect("the test binary")).expect("reads");
    let e = load_maps::read_maps(&me).unwrap_err();
    assert!(format!("{e:#}").contains("not a BPF object"), "{e:#}");
}
