//! The LD_PRELOAD library (issue 7) under real, unmodified programs: the seeds' examples as C,
//! a C program on Debian's libbpf, Debian's bpftool, and the fd semantics a program relies on.
//! Each runs against the model as an unprivileged user (nobody, when the test runs as root)
//! and, as root, against the real kernel on a private bpffs (tests/preload/run_isolated.sh);
//! the two outputs must be the same, line for line.
//!
//! Everything a run needs (the library, the compiled programs, the scripts) is copied into a
//! fresh directory under the system's temp dir that nobody can read; each run has its own
//! BPFMODEL_DIR, so its own model server, which exits when the directory is removed.

mod common;

use common::{root, skip_or_fail};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// target/release/libbpfmodel_preload.so, built here if `make preload` has not built it.
fn library() -> PathBuf {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| {
        let lib = root().join("target/release/libbpfmodel_preload.so");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "bpfmodel-preload"])
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building the preload library failed");
        assert!(lib.exists(), "{} was not built", lib.display());
        lib
    })
    .clone()
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A scratch directory everyone can read (and, for `run/`, write: the model server's state
/// lives there and nobody must be able to create it), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("bpfmodel-preload-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("run")).expect("scratch dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o777)).unwrap();
        Scratch(dir)
    }

    fn path(&self, f: &str) -> PathBuf {
        self.0.join(f)
    }

    /// A copy of `from` in the scratch dir, readable and executable by all. Made once: a
    /// file is never rewritten in place, since a running model server maps the library (a
    /// truncated mapping is a SIGBUS).
    fn copy(&self, from: &Path) -> PathBuf {
        let to = self.path(&from.file_name().unwrap().to_string_lossy());
        if to.exists() {
            return to;
        }
        std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
        to
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// tests/preload/NAME.c built with gcc into the scratch dir; Err if the toolchain or libbpf-dev
/// is missing (make qemu-deps installs them).
fn compile(s: &Scratch, name: &str, libs: &[&str]) -> Result<PathBuf, String> {
    let src = root().join(format!("tests/preload/{name}.c"));
    let out = s.path(name);
    let r = Command::new("gcc")
        .args(["-O1", "-Wall", "-Werror", "-pthread", "-o"])
        .arg(&out)
        .arg(&src)
        .args(libs)
        .output()
        .map_err(|e| format!("gcc is not installed ({e}); make qemu-deps installs it"))?;
    if !r.status.success() {
        let err = String::from_utf8_lossy(&r.stderr);
        if err.contains("bpf/bpf.h") {
            return Err("libbpf-dev is not installed; make qemu-deps installs it".into());
        }
        panic!("gcc failed on {}:\n{err}", src.display());
    }
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    Ok(out)
}

/// Marks every fd above 2 close-on-exec in the child, so the program starts with 0-2 only
/// and its fd numbers do not depend on what the test runner holds open.
fn clean_fds(cmd: &mut Command) -> &mut Command {
    // SAFETY: close_range is async-signal-safe; it only sets flags on the child's fds.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                4u32, /* CLOEXEC */
            );
            Ok(())
        })
    }
}

/// `argv` against the model, as nobody when the test is root (as the calling user otherwise),
/// with the library preloaded and `extra_env` set.
fn run_model(s: &Scratch, argv: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let lib = s.copy(&library());
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"]);
        c
    } else {
        Command::new("env")
    };
    cmd.arg(format!("LD_PRELOAD={}", lib.display()))
        .arg(format!("BPFMODEL_DIR={}", s.path("run/state").display()));
    for (k, v) in extra_env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.args(argv).current_dir(&s.0);
    clean_fds(&mut cmd).output().expect("the model run starts")
}

/// `argv` against the real kernel as root, on a private bpffs mounted on /sys/fs/bpf; `None`
/// (with a SKIP) when not root.
fn run_kernel(s: &Scratch, test: &str, argv: &[&str]) -> Option<Output> {
    if !is_root() {
        skip_or_fail(
            test,
            "the real kernel side needs root (unshare, mount -t bpf); the model side ran".into(),
        );
        return None;
    }
    let mut cmd = Command::new(root().join("tests/preload/run_isolated.sh"));
    cmd.args(argv).current_dir(&s.0);
    Some(
        clean_fds(&mut cmd)
            .output()
            .expect("run_isolated.sh starts"),
    )
}

/// Both runs' combined output must be the same; on a difference, the first differing line
/// and both outputs.
fn assert_same(test: &str, model: &Output, kernel: &Output) {
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let (m, k) = (text(model), text(kernel));
    if m != k || model.status.code() != kernel.status.code() {
        let first = m
            .lines()
            .zip(k.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(m.lines().count().min(k.lines().count()));
        panic!(
            "{test}: the model and the kernel differ from line {} on (exit {:?} vs {:?})\n\
             --- model\n{m}\n--- kernel\n{k}",
            first + 1,
            model.status.code(),
            kernel.status.code()
        );
    }
}

/// The model's output alone must be a complete run (the kernel side may not be available).
fn assert_ran(test: &str, model: &Output) {
    assert!(
        model.status.success(),
        "{test}: the program failed against the model (exit {:?}):\n{}{}",
        model.status.code(),
        String::from_utf8_lossy(&model.stdout),
        String::from_utf8_lossy(&model.stderr)
    );
    let err = String::from_utf8_lossy(&model.stderr);
    assert!(
        !err.contains("bpfmodel-preload:"),
        "{test}: the library could not reach its server:\n{err}"
    );
}

/// Compiles tests/preload/NAME.c, runs it on the model and the kernel with PINDIR
/// /sys/fs/bpf, and compares.
fn c_program_agrees(name: &str, libs: &[&str]) {
    let test = format!("preload ({name})");
    let s = Scratch::new(name);
    let prog = match compile(&s, name, libs) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(&test, why),
    };
    let prog = prog.to_string_lossy().into_owned();
    let model = run_model(&s, &[&prog, "/sys/fs/bpf"], &[]);
    assert_ran(&test, &model);
    if let Some(kernel) = run_kernel(&s, &test, &[&prog]) {
        assert_same(&test, &model, &kernel);
    }
}

#[test]
fn the_seed_examples_agree_with_the_kernel() {
    c_program_agrees("seed_examples", &[]);
}

#[test]
fn a_libbpf_program_agrees_with_the_kernel() {
    c_program_agrees("libbpf_client", &["-lbpf"]);
}

#[test]
fn fd_numbering_refcounts_exec_threads_and_faults_agree_with_the_kernel() {
    c_program_agrees("fd_semantics", &[]);
}

/// Whether Debian's bpftool can run here; if not, `test` is skipped (or fails in CI).
fn bpftool_installed(test: &str) -> bool {
    let ok = Command::new("bpftool").arg("version").output().is_ok();
    if !ok {
        skip_or_fail(
            test,
            "bpftool is not installed; make qemu-deps installs it".into(),
        );
    }
    ok
}

#[test]
fn bpftool_agrees_with_the_kernel() {
    let test = "preload (bpftool)";
    if !bpftool_installed(test) {
        return;
    }
    let s = Scratch::new("bpftool");
    let script = s.copy(&root().join("tests/preload/bpftool.sh"));
    let script = script.to_string_lossy().into_owned();
    let model = run_model(&s, &["sh", &script, "/sys/fs/bpf"], &[]);
    assert_ran(test, &model);
    let out = String::from_utf8_lossy(&model.stdout);
    assert!(
        out.contains("name testmap") && out.contains("memlock"),
        "{test}: bpftool map show printed no map:\n{out}"
    );
    if let Some(kernel) = run_kernel(&s, test, &["sh", &script]) {
        assert_same(test, &model, &kernel);
    }
}

/// A command the model does not implement (a program that is not one of libbpf's probes) gets
/// EINVAL, as from a kernel without it, and BPFMODEL_TRACE=1 names it on stderr.
#[test]
fn an_unmodelled_command_is_einval_and_named_with_bpfmodel_trace() {
    let test = "preload (unmodelled command)";
    let s = Scratch::new("unmodelled");
    let src = s.path("unmodelled.c");
    std::fs::write(
        &src,
        r#"#include <linux/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
	struct bpf_insn insns[3] = { { .code = 0xb7 }, { .code = 0xb7 }, { .code = 0x95 } };
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (unsigned long)insns;
	a.insn_cnt = 3;
	a.license = (unsigned long)"GPL";
	long r = syscall(__NR_bpf, BPF_PROG_LOAD, &a, sizeof(a));
	printf("prog_load: %ld %s\n", r, r < 0 && errno == EINVAL ? "EINVAL" : "?");
	return 0;
}
"#,
    )
    .unwrap();
    let prog = s.path("unmodelled");
    match Command::new("gcc").arg("-o").arg(&prog).arg(&src).status() {
        Ok(st) if st.success() => {}
        Ok(_) => panic!("gcc failed on the test program"),
        Err(e) => return skip_or_fail(test, format!("gcc is not installed ({e})")),
    }
    let prog = prog.to_string_lossy().into_owned();
    let quiet = run_model(&s, &[&prog], &[]);
    assert_ran(test, &quiet);
    assert_eq!(
        String::from_utf8_lossy(&quiet.stdout),
        "prog_load: -1 EINVAL\n"
    );
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    let traced = run_model(&s, &[&prog], &[("BPFMODEL_TRACE", "1")]);
    let err = String::from_utf8_lossy(&traced.stderr);
    assert!(
        err.starts_with("bpfmodel: bpf(BPF_PROG_LOAD, size ")
            && err.ends_with(
                ") = -1 EINVAL (not modelled: answered as a kernel without the command)\n"
            )
            && err.lines().count() == 1,
        "{test}: BPFMODEL_TRACE=1 printed {err:?}"
    );
}

/// Compiles C source text into the scratch dir; Err if gcc is missing.
fn compile_text(s: &Scratch, name: &str, src: &str) -> Result<String, String> {
    let c = s.path(&format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = s.path(name);
    match Command::new("gcc")
        .args(["-O1", "-pthread", "-o"])
        .arg(&out)
        .arg(&c)
        .status()
    {
        Ok(st) if st.success() => Ok(out.to_string_lossy().into_owned()),
        Ok(_) => panic!("gcc failed on {name}.c"),
        Err(e) => Err(format!("gcc is not installed ({e})")),
    }
}

/// Threads that each make a call and exit leave no connection behind: 300 of them, one after
/// another, and the process still has only its own few fds (a connection that outlived its
/// thread would fill the fd table past its limit of 1024 at the 32nd, where the connections
/// live).
#[test]
fn a_thread_that_exits_takes_its_connection_with_it() {
    let test = "preload (thread exit)";
    let s = Scratch::new("threads");
    let src = r#"#include <linux/bpf.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *one(void *arg)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	long fd = syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	if (fd >= 0)
		close(fd);
	*(long *)arg = fd;
	return NULL;
}
int main(void)
{
	int bad = 0;
	for (int i = 0; i < 300; i++) {
		pthread_t t;
		long fd = -1;
		pthread_create(&t, NULL, one, &fd);
		pthread_join(t, NULL);
		bad += fd != 3;
	}
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	for (struct dirent *e; (e = readdir(d)); )
		n += e->d_name[0] != '.';
	closedir(d);
	/* 0-2, the directory itself, and at most one connection. */
	printf("creates not on fd 3: %d, fds open: %s\n", bad, n <= 5 ? "few" : "many");
	return 0;
}
"#;
    let prog = match compile_text(&s, "threads", src) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(test, why),
    };
    let out = run_model(&s, &[&prog], &[]);
    assert_ran(test, &out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "creates not on fd 3: 0, fds open: few\n"
    );
}

/// BPFMODEL_DIR must be the caller's and closed to others: whoever could put a socket there
/// would answer for the model and write the program's memory. A world-writable one is
/// refused, the call fails with EIO (which bpf(2) never returns) and stderr says why.
#[test]
fn a_bpfmodel_dir_others_can_write_is_refused() {
    let test = "preload (unsafe BPFMODEL_DIR)";
    let s = Scratch::new("unsafe-dir");
    let src = r#"#include <linux/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.map_type = BPF_MAP_TYPE_ARRAY;
	a.key_size = 4;
	a.value_size = 4;
	a.max_entries = 1;
	long r = syscall(__NR_bpf, BPF_MAP_CREATE, &a, sizeof(a));
	printf("map_create: %ld %s\n", r, r < 0 && errno == EIO ? "EIO" : "?");
	return 0;
}
"#;
    let prog = match compile_text(&s, "unsafe_dir", src) {
        Ok(p) => p,
        Err(why) => return skip_or_fail(test, why),
    };
    // The state directory made in advance, world-writable, owned by whoever runs the model.
    let dir = s.path("run/state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    if is_root() {
        // SAFETY: chown of a path we just made.
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    }
    let out = run_model(&s, &[&prog], &[]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "map_create: -1 EIO\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must be a directory of uid") && err.contains("mode 777"),
        "{test}: stderr was {err:?}"
    );
    assert!(!dir.join("sock").exists(), "{test}: a server started there");
}

/// The server lives while a pin holds a map (the next process finds it), and goes when its
/// directory is removed.
#[test]
fn a_pin_outlives_its_process_and_the_server_goes_with_its_directory() {
    let test = "preload (server lifetime)";
    if !bpftool_installed(test) {
        return;
    }
    let s = Scratch::new("lifetime");
    let create = run_model(
        &s,
        &[
            "bpftool",
            "map",
            "create",
            "/sys/fs/bpf/kept",
            "type",
            "array",
            "key",
            "4",
            "value",
            "4",
            "entries",
            "2",
            "name",
            "kept",
        ],
        &[("BPFMODEL_IDLE_MS", "0")],
    );
    assert_ran(test, &create);
    // With an idle time of 0 the server would have gone at once, were it not for the pin.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let show = run_model(
        &s,
        &["bpftool", "map", "show", "pinned", "/sys/fs/bpf/kept"],
        &[],
    );
    assert_ran(test, &show);
    assert!(String::from_utf8_lossy(&show.stdout).contains("name kept"));
    let pid_of_server = || {
        let log = std::fs::read_to_string(s.path("run/state/server.log")).unwrap_or_default();
        log.lines()
            .filter_map(|l| l.strip_prefix("bpfmodel server "))
            .filter_map(|l| l.split(':').next()?.parse::<i32>().ok())
            .next_back()
    };
    let pid = pid_of_server().expect("the server logged its start");
    std::fs::remove_dir_all(s.path("run/state")).unwrap();
    let gone = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init.
        stat.is_empty() || stat.split(") ").nth(1).is_some_and(|r| r.starts_with('Z'))
    });
    assert!(gone, "the server {pid} outlived its directory");
}
