//! PID 1 of the QEMU guest: runs every scenario of /scenarios on the guest's kernel and on
//! the model (compiled for this architecture), writes the results as framed, checksummed
//! records to the console, and powers the machine off. See `riscv_harness::qemu::guest`.

use riscv_harness::qemu::frame::Encoder;
use riscv_harness::qemu::guest;
use std::io::Write;
use std::sync::Mutex;

/// One encoder for the whole boot: its sequence numbers let the host notice lost lines.
static ENC: Mutex<Option<Encoder>> = Mutex::new(None);

/// Writes one record to the console.
fn emit(kind: &str, data: &[u8]) {
    let mut g = ENC.lock().unwrap_or_else(|e| e.into_inner());
    let text = g.get_or_insert_with(Encoder::default).record(kind, data);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Each kernel call's line, before it runs, so that the host can name the call a dying
/// kernel was on. Only PID 1 writes: a forked scenario child would bump its own copy of the
/// sequence numbers and make the host see lost lines.
fn progress(line: usize, stmt: &str) {
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } == 1 {
        emit("CALL", format!("{line}\t{stmt}").as_bytes());
    }
}

fn main() {
    riscv_harness::exec::set_progress(progress);
    let result = std::panic::catch_unwind(|| guest::run(&mut emit));
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => emit("ERROR", format!("{e:#}").as_bytes()),
        Err(_) => emit("ERROR", b"the guest runner panicked"),
    }
    guest::power_off();
}
