//! Checks that report themselves.
//!
//! Every check of the model goes through [`check!`](crate::check) (or records itself with
//! [`Ctx::fail`](crate::ctx::Ctx::fail) where the error comes from a copy or a lookup). With a
//! [`Tracer`] attached, each one becomes a [`Step`]: the kernel function and file it mirrors,
//! the rule, the values it saw, and whether it passed. Without a tracer the cost is one branch.
//! `bpfmodel explain` is built on these steps, so the walkthrough is the model's own execution.

use crate::errno::Errno;
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Entered a kernel function.
    Enter,
    /// A check that held.
    Pass,
    /// A check that failed and decided the call's errno.
    Fail(Errno),
    /// Something the kernel did that is not a check (an allocation, a copy, a result).
    Note,
}

/// One step of a call through the kernel, as the model takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The kernel function this step mirrors (`map_create`, `htab_map_alloc_check`).
    pub func: &'static str,
    /// The kernel file that function lives in (`kernel/bpf/syscall.c`).
    pub file: &'static str,
    /// The rule, in words, as the kernel states it (`map_extra must be 0 for this type`).
    pub rule: &'static str,
    /// The values the check looked at (`map_extra=0x1 map_type=HASH`).
    pub detail: String,
    pub verdict: Verdict,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match &self.verdict {
            Verdict::Enter => "->".to_string(),
            Verdict::Pass => "ok".to_string(),
            Verdict::Fail(e) => format!("{e}"),
            Verdict::Note => "..".to_string(),
        };
        write!(f, "[{mark}] {} ({}): {}", self.func, self.file, self.rule)?;
        if !self.detail.is_empty() {
            write!(f, " [{}]", self.detail)?;
        }
        Ok(())
    }
}

/// Receives the steps of a call.
pub trait Tracer {
    fn step(&mut self, step: Step);
}

/// A tracer that keeps every step.
#[derive(Default, Debug)]
pub struct StepLog {
    pub steps: Vec<Step>,
}

impl Tracer for StepLog {
    fn step(&mut self, step: Step) {
        self.steps.push(step);
    }
}

impl StepLog {
    /// The check that decided a failed call, if any.
    pub fn failing_step(&self) -> Option<&Step> {
        self.steps
            .iter()
            .rev()
            .find(|s| matches!(s.verdict, Verdict::Fail(_)))
    }
}

/// Runs one kernel check. `check!(ctx, "func", failed_condition => ERRNO, "rule", "fmt", args..)`
/// returns `Err(ERRNO)` from the enclosing function when the condition holds, and reports the
/// check to the tracer either way. The enclosing module must define `const FILE: &str`, the
/// kernel file it mirrors.
#[macro_export]
macro_rules! check {
    ($ctx:expr, $func:expr, $fail:expr => $errno:expr, $rule:expr) => {
        $crate::check!($ctx, $func, $fail => $errno, $rule, "")
    };
    ($ctx:expr, $func:expr, $fail:expr => $errno:expr, $rule:expr, $($detail:tt)+) => {{
        let failed: bool = $fail;
        if $ctx.tracing() {
            $ctx.record($func, FILE, $rule, if failed {
                $crate::trace::Verdict::Fail($errno)
            } else {
                $crate::trace::Verdict::Pass
            }, format!($($detail)+));
        }
        if failed {
            return Err($errno);
        }
    }};
}

/// Bytes as lower-case hex, for step details.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}
