//! Command numbers outside the map element commands.
//!
//! A number the kernel does not know falls through `__sys_bpf`'s switch to `-EINVAL`. The
//! known commands the model does not model yet (programs, links, BTF, pinning, ids) run the
//! same entry and `CHECK_ATTR` as the kernel and then return ENOSYS, which bpf(2) itself never
//! returns, so such a call can never pass for a kernel answer.

use super::{check_attr, FILE};
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::uapi::{Attr, BpfCmd};

pub fn other_cmd(ctx: &mut Ctx, cmd: BpfCmd, attr: &Attr) -> Result<i32, Errno> {
    const F: &str = "__sys_bpf";
    if !ctx.profile().knows_cmd(cmd) {
        let n = ctx.profile().nr_cmds;
        return Err(ctx.fail(
            F,
            FILE,
            "the command is one the kernel knows (the switch's default)",
            Errno::EINVAL,
            || format!("cmd {} >= __MAX_BPF_CMD ({n})", cmd.0 as i32),
        ));
    }
    if ctx.profile().last_field_end(cmd).is_some() {
        check_attr(ctx, F, cmd, attr)?;
    }
    Err(ctx.fail(
        F,
        FILE,
        "the model implements this command",
        Errno::ENOSYS,
        || format!("{} is not modelled yet", cmd.full_name()),
    ))
}
