//! Arbitrary text as a scenario file: the parser must answer with a scenario or an error
//! naming the line, never panic. Seeds are the corpus's own .bpfs files.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = riscv_harness::scenario::parse(std::path::Path::new("fuzz.bpfs"), &text);
});
