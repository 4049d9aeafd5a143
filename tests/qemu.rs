//! `make qemu-test` as a test: every pinned riscv64 kernel boots in QEMU, runs the corpus,
//! and must agree with the model call for call; each kernel's transcripts are snapshotted, so
//! a kernel upgrade shows up as a reviewed diff. Also: broken images and a dying QEMU fail
//! clearly and quickly.
//!
//! Needs qemu-system-riscv64, the cross-built guest runner and the kernel images (`make
//! qemu-prep` installs and fetches them). Without them the test prints SKIP, except under
//! CI=true, where that is a failure.

mod common;

use common::{root, skip_or_fail};
use riscv_harness::qemu::{self, boot, images, QemuConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Ok if QEMU tests can run here, else the reason: QEMU and the guest runner for the
/// architecture of each kernel `pick` chooses from the manifest.
fn prerequisites_for(
    cfg: &QemuConfig,
    pick: fn(&images::KernelSpec) -> bool,
) -> Result<(), String> {
    let specs = images::load_manifest(&cfg.manifest).map_err(|e| format!("{e:#}"))?;
    for spec in specs.iter().filter(|s| pick(s)) {
        let tools = cfg.tools(&spec.arch).map_err(|e| format!("{e:#}"))?;
        let q = Command::new(&tools.qemu).arg("--version").output();
        if !q.is_ok_and(|o| o.status.success()) {
            return Err(format!("{} is not installed (make qemu-prep)", tools.qemu));
        }
        if !tools.guest.is_file() {
            return Err(format!(
                "{} is not built (make guest)",
                tools.guest.display()
            ));
        }
    }
    Ok(())
}

/// The kernels of the default run.
fn default_kernel(s: &images::KernelSpec) -> bool {
    s.optional.is_none()
}

fn optional_kernel(s: &images::KernelSpec) -> bool {
    s.optional.is_some()
}

fn prerequisites(cfg: &QemuConfig) -> Result<(), String> {
    prerequisites_for(cfg, default_kernel)
}

/// Guests take every core: every test that boots a real QEMU takes its turn.
static BOOTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Boots the kernels `pick` chooses, checks that each agrees with the model on every call, and
/// snapshots each kernel's transcripts.
fn every_kernel_agrees(test: &str, pick: fn(&images::KernelSpec) -> bool) {
    let mut cfg = QemuConfig::in_workspace(&root());
    cfg.host = false;
    if let Err(why) = prerequisites_for(&cfg, pick) {
        return skip_or_fail(test, why);
    }
    let specs = images::load_manifest(&cfg.manifest).unwrap();
    cfg.only = specs
        .iter()
        .filter(|s| pick(s))
        .map(|s| s.name.clone())
        .collect();
    if cfg.only.is_empty() {
        return;
    }
    let _turn = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    let reports = qemu::run(&cfg, &|m| eprintln!("{m}")).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(reports.len(), cfg.only.len(), "every chosen kernel ran");
    let mut failures = String::new();
    for r in &reports {
        let (n, text) = r.findings("tests/scenarios");
        eprintln!("{}", r.summary(n));
        failures.push_str(&text);
        for (path, _, kernel) in &r.results {
            let mut settings = insta::Settings::clone_current();
            settings.set_snapshot_path("snapshots/kernels");
            settings.set_prepend_module_to_snapshot(false);
            settings.set_omit_expression(true);
            settings.set_description(format!(
                "{} ({}), model profile {}",
                r.label, r.name, r.profile
            ));
            let name = format!("{}@{}", r.name, path.replace('/', "__"));
            settings.bind(|| insta::assert_snapshot!(name, kernel.render()));
        }
    }
    assert!(
        failures.is_empty(),
        "model and kernel disagree:\n{failures}"
    );
}

#[test]
fn every_pinned_riscv64_kernel_agrees_with_the_model() {
    every_kernel_agrees(
        "every_pinned_riscv64_kernel_agrees_with_the_model",
        default_kernel,
    );
}

/// The optional kernels (x86_64 6.1 under KVM or TCG) check the profiles the RISC-V kernels do
/// not: each must agree with the model as well.
#[test]
fn every_optional_kernel_agrees_with_its_profile() {
    every_kernel_agrees(
        "every_optional_kernel_agrees_with_its_profile",
        optional_kernel,
    );
}

/// A fake Debian archive under `dir`: one package holding a kernel image and its config.
fn fake_archive(dir: &Path, name: &str) -> (PathBuf, String) {
    let pkg = dir.join("pkg");
    std::fs::create_dir_all(pkg.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(pkg.join("boot")).unwrap();
    std::fs::write(
        pkg.join("DEBIAN/control"),
        format!("Package: {name}\nVersion: 1.0-1\nArchitecture: riscv64\nMaintainer: t <t@t>\nDescription: test\n"),
    )
    .unwrap();
    std::fs::write(pkg.join("boot/vmlinux-9.9.9-riscv64"), vec![7u8; 100_000]).unwrap();
    std::fs::write(
        pkg.join("boot/config-9.9.9-riscv64"),
        "#\n# Linux/riscv 9.9.9 Kernel Configuration\n#\n",
    )
    .unwrap();
    let pool = dir.join("archive/pool/main/l/linux");
    std::fs::create_dir_all(&pool).unwrap();
    let deb = pool.join(format!("{name}_1.0-1_riscv64.deb"));
    let st = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&pkg)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let sha = images::sha256_file(&deb).unwrap();
    // The suite's index, and a Release file that vouches for it.
    let index = dir.join("archive/dists/trixie/main/binary-riscv64");
    std::fs::create_dir_all(&index).unwrap();
    let stanza = format!(
        "Package: {name}\nVersion: 1.0-1\nFilename: pool/main/l/linux/{name}_1.0-1_riscv64.deb\nSHA256: {sha}\n\n"
    );
    std::fs::write(index.join("Packages"), stanza).unwrap();
    let st = Command::new("xz")
        .arg("-k")
        .arg(index.join("Packages"))
        .status()
        .unwrap();
    assert!(st.success());
    let xz_sha = images::sha256_file(&index.join("Packages.xz")).unwrap();
    std::fs::write(
        dir.join("archive/dists/trixie/Release"),
        format!("Suite: trixie\nSHA256:\n {xz_sha} 100 main/binary-riscv64/Packages.xz\n"),
    )
    .unwrap();
    (dir.join("archive"), sha)
}

fn spec(name: &str, sha: &str) -> images::KernelSpec {
    images::KernelSpec {
        name: "test-kernel".into(),
        arch: "riscv64".into(),
        suite: "trixie".into(),
        debs: vec![images::Deb {
            name: name.into(),
            version: "1.0-1".into(),
            sha256: sha.into(),
            pattern: "linux-image-9.9.*".into(),
        }],
        image: "boot/vmlinux-*".into(),
        config: "boot/config-*".into(),
        optional: None,
    }
}

/// A scratch directory, removed when the test ends (pass or fail).
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir(tag: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("bpfmodel-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    TempDir(d)
}

#[test]
fn fetch_checks_sha256_and_cached_images() {
    if Command::new("dpkg-deb").arg("--version").output().is_err() {
        return skip_or_fail(
            "fetch_checks_sha256_and_cached_images",
            "dpkg-deb is missing".into(),
        );
    }
    let dir = tempdir("fetch");
    let name = "linux-image-9.9.9-riscv64";
    let (archive, sha) = fake_archive(&dir, name);
    let url = format!("file://{}", archive.display());
    let a = Some(url.as_str());
    let cache = dir.join("cache");

    // A wrong SHA256 in the pin: a clear error naming both hashes, and nothing cached.
    let wrong = "0".repeat(64);
    let e = images::fetch(&spec(name, &wrong), &cache, a, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SHA256 mismatch") && e.contains(&sha) && e.contains(&wrong),
        "{e}"
    );
    assert!(!cache.join("test-kernel/ready").exists());

    // The right one: unpacked, version read from the config, reused the next time.
    let k = images::fetch(&spec(name, &sha), &cache, a, &mut |_| {}).unwrap();
    assert_eq!(k.version, "9.9.9");
    assert_eq!(std::fs::read(&k.image).unwrap().len(), 100_000);
    let mut logged = Vec::new();
    images::fetch(&spec(name, &sha), &cache, a, &mut |m| {
        logged.push(m.to_string())
    })
    .unwrap();
    assert!(logged.is_empty(), "the cache was not reused: {logged:?}");

    // A truncated cached image: a clear error saying what to remove.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&k.image)
        .unwrap();
    f.set_len(1000).unwrap();
    let e = images::fetch(&spec(name, &sha), &cache, a, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("corrupt") && e.contains("Remove"), "{e}");

    // The pinned version gone from the archive: the newest of the family from the suite's
    // index (checked against its Release file), announced loudly.
    let _ = std::fs::remove_dir_all(&cache);
    let mut gone = spec("linux-image-9.9.8-riscv64", &"1".repeat(64));
    gone.debs[0].pattern = "linux-image-9.9.*-riscv64".into();
    let mut logged = Vec::new();
    let k = images::fetch(&gone, &cache, a, &mut |m| logged.push(m.to_string())).unwrap();
    assert_eq!(k.version, "9.9.9");
    assert!(
        logged.iter().any(|m| m.contains("WARNING")
            && m.contains("linux-image-9.9.8-riscv64")
            && m.contains(name)),
        "{logged:?}"
    );

    // An index that does not match its Release file is refused.
    let _ = std::fs::remove_dir_all(&cache);
    let index = archive.join("dists/trixie/main/binary-riscv64/Packages.xz");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.push(0);
    std::fs::write(&index, bytes).unwrap();
    let e = images::fetch(&gone, &cache, a, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the Release file"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for qemu-system-riscv64 that does what `script` says.
fn fake_qemu(dir: &Path, script: &str) -> String {
    let p = dir.join("fake-qemu");
    std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
    Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    p.display().to_string()
}

/// The error of a boot with the fake QEMU `q` (the image and initrd are never read).
fn fake_boot_error(q: &str, timeout: Duration) -> String {
    boot::boot(q, "riscv64", Path::new("/x"), Path::new("/x"), timeout)
        .unwrap_err()
        .to_string()
}

#[test]
fn a_killed_qemu_is_a_clear_error() {
    let dir = tempdir("killed");
    let q = fake_qemu(
        &dir,
        "echo 'Linux version 9.9'; echo 'Run /init as init process'; kill -9 $$",
    );
    let e = fake_boot_error(&q, Duration::from_secs(30));
    assert!(
        e.contains("never reported in") && e.contains("Run /init as init process"),
        "{e}"
    );
    assert!(e.contains("signal: 9"), "{e}");
}

#[test]
fn a_hanging_qemu_is_killed_at_the_timeout() {
    let dir = tempdir("hang");
    let q = fake_qemu(&dir, "echo 'booting'; exec sleep 600");
    let start = std::time::Instant::now();
    let e = fake_boot_error(&q, Duration::from_secs(2));
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "the timeout did not stop it"
    );
    assert!(
        e.contains("did not finish within 2 s") && e.contains("booting"),
        "{e}"
    );
}

#[test]
fn a_runner_that_dies_midway_is_a_clear_error() {
    use riscv_harness::qemu::frame::Encoder;
    let dir = tempdir("midway");
    let mut enc = Encoder::default();
    let hello = enc.record("HELLO", b"6.12.0\t2\tlinux-6.12/riscv64/2cpu\t");
    let log = dir.join("console");
    std::fs::write(
        &log,
        format!("{hello}[   3.1] Kernel panic - not syncing: Attempted to kill init!\n"),
    )
    .unwrap();
    let q = fake_qemu(&dir, &format!("cat {}", log.display()));
    let e = fake_boot_error(&q, Duration::from_secs(30));
    assert!(
        e.contains("stopped before the end") && e.contains("Kernel panic"),
        "{e}"
    );
}

/// A console log of a guest that finished scenario a, started b, was at line 3 of b, and then
/// `end` happened (a panic line, or nothing and a hang).
fn console_of_a_run_cut_short(dir: &Path, end: &str) -> PathBuf {
    use riscv_harness::qemu::frame::Encoder;
    use riscv_harness::transcript::Transcript;
    let mut enc = Encoder::default();
    let t = |backend: &str| Transcript {
        scenario: "a".into(),
        backend: backend.into(),
        entries: Vec::new(),
    };
    let plan = miniz_oxide::deflate::compress_to_vec(b"x/a.bpfs\nx/b.bpfs\ny/c.bpfs", 6);
    let mut log = String::new();
    log += &enc.record("HELLO", b"6.12.0\t2\tlinux-6.12/riscv64/2cpu\t");
    log += &enc.record("PLAN", &plan);
    log += &enc.record("START", b"x/a.bpfs");
    log += &enc.record(
        "CALL",
        b"2\tm = map_create(type=ARRAY, key_size=4, value_size=4, max_entries=1) = fd",
    );
    log += &enc.record(
        "RESULT",
        &riscv_harness::qemu::guest::encode_result("x/a.bpfs", &t("model"), &t("kernel")),
    );
    log += &enc.record("START", b"x/b.bpfs");
    log += &enc.record("CALL", b"3\tupdate(m, key=u32:0, value=u32:1) = 0");
    log += end;
    let path = dir.join("console");
    std::fs::write(&path, log).unwrap();
    path
}

#[test]
fn a_kernel_panic_mid_run_names_the_last_call_and_the_scenarios_not_run() {
    let dir = tempdir("panic-midway");
    let log = console_of_a_run_cut_short(
        &dir,
        "[   9.9] Kernel panic - not syncing: Fatal exception\n",
    );
    let q = fake_qemu(&dir, &format!("cat {}", log.display()));
    let e = fake_boot_error(&q, Duration::from_secs(30));
    for want in [
        "stopped before the end",
        "1 of 3 scenarios finished",
        "The kernel was running x/b.bpfs, line 3: update(m, key=u32:0, value=u32:1) = 0",
        "Not run (1): y/c.bpfs",
        "Kernel panic - not syncing",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn a_kernel_that_hangs_mid_run_is_killed_and_named_with_its_last_call() {
    let dir = tempdir("hang-midway");
    let log = console_of_a_run_cut_short(&dir, "");
    let q = fake_qemu(&dir, &format!("cat {}; exec sleep 600", log.display()));
    let e = fake_boot_error(&q, Duration::from_secs(2));
    for want in [
        "did not finish within 2 s",
        "The kernel was running x/b.bpfs, line 3",
        "Not run (1): y/c.bpfs",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn a_truncated_kernel_image_fails_to_boot_clearly() {
    let cfg = QemuConfig::in_workspace(&root());
    if let Err(why) = prerequisites(&cfg) {
        return skip_or_fail("a_truncated_kernel_image_fails_to_boot_clearly", why);
    }
    let dir = tempdir("truncated");
    let image = dir.join("Image");
    std::fs::write(&image, vec![0u8; 4096]).unwrap();
    let initrd = dir.join("initrd");
    std::fs::write(
        &initrd,
        riscv_harness::qemu::initramfs::Cpio::new().finish(),
    )
    .unwrap();
    // A real QEMU: it takes its turn with the corpus boots, or two 2-vCPU machines share two
    // cores and the corpus boot can crawl past its timeout (seen once, a 622 s failure).
    let _turn = BOOTS.lock().unwrap_or_else(|e| e.into_inner());
    let start = std::time::Instant::now();
    let e = boot::boot(
        &cfg.riscv64.qemu,
        "riscv64",
        &image,
        &initrd,
        Duration::from_secs(20),
    )
    .unwrap_err()
    .to_string();
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(
        e.contains("never reported in") || e.contains("did not finish"),
        "{e}"
    );
}
