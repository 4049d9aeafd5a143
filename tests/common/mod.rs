//! What the integration tests share: the workspace root and the rule for a test that cannot
//! run here. Each test crate uses its part of it.
#![allow(dead_code)]

use std::path::PathBuf;

/// The workspace root (the tests live in its tests/ folder).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether this is CI (`CI=true`), where every test must run.
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A test that cannot run here prints a visible SKIP with the reason, except in CI, where
/// that is a failure.
pub fn skip_or_fail(test: &str, why: String) {
    if ci() {
        panic!("CI=true but {test} cannot run: {why}");
    }
    eprintln!("SKIP {test}: {why}");
}
