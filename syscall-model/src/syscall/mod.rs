//! kernel/bpf/syscall.c: the bpf(2) entry (`__sys_bpf`), `CHECK_ATTR`, the fd helpers, and
//! the map commands. The handlers live in submodules named after their kernel functions:
//! [`map_create`] and [`map_elem`] (lookup, update, delete, get_next_key,
//! lookup_and_delete, freeze); [`other`] covers the command numbers the model does not model.

pub mod batch;
pub mod map_create;
pub mod map_elem;
pub mod obj;
pub mod other;

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::fd::{FMode, File};
use crate::map::BpfMap;
use crate::uapi::{Attr, BpfCmd};
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) const FILE: &str = "kernel/bpf/syscall.c";

/// `BPF_COMMON_ATTRS` (7.2): `cmd` carries common attrs in the syscall's 4th and 5th args.
pub const BPF_COMMON_ATTRS: u32 = 1 << 16;

/// `offsetofend(struct bpf_common_attr, log_true_size)` (7.2).
const COMMON_ATTR_SIZE: usize = 20;

/// `__sys_bpf(cmd, uattr, size, uattr_common, size_common)`; before 7.2 the last two do not
/// exist and are ignored.
pub fn sys_bpf(
    ctx: &mut Ctx,
    cmd: i32,
    uattr: u64,
    size: u32,
    common: (u64, u32),
) -> Result<i32, Errno> {
    const F: &str = "__sys_bpf";
    let mut c = BpfCmd(cmd as u32);
    ctx.enter(F, FILE, || {
        format!("cmd={} uattr={uattr:#x} size={size}", c.full_name())
    });
    let attr_size = ctx.profile().attr_size;

    if ctx.profile().unpriv_disabled_checked_in_sys_bpf
        && (c == BpfCmd::MAP_CREATE || c == BpfCmd::PROG_LOAD)
    {
        let unpriv_disabled = ctx.profile().unprivileged_bpf_disabled;
        let bpf_capable = ctx.cred().bpf_capable();
        check!(ctx, F, unpriv_disabled != 0 && !bpf_capable => Errno::EPERM,
            "with kernel.unprivileged_bpf_disabled, creating maps and loading programs needs CAP_BPF",
            "cmd={} unprivileged_bpf_disabled={unpriv_disabled} bpf_capable={bpf_capable}", c.full_name());
    }

    bpf_check_uarg_tail_zero(ctx, uattr, attr_size, size)?;
    // Copy at most the kernel's own union; the rest of it stays zero.
    let size = (size as usize).min(attr_size);
    let mut attr = Attr::zeroed(attr_size);
    if size > 0 {
        let what = "copy_from_bpfptr(): the attr is readable";
        ctx.copy_from_user_into(F, what, uattr, attr.head_mut(size))?;
    }
    ctx.note(
        F,
        FILE,
        "copied min(size, sizeof(union bpf_attr)) bytes into a zeroed union",
        || format!("{size} of {attr_size} bytes"),
    );
    if ctx.profile().common_attrs && c.0 & BPF_COMMON_ATTRS != 0 {
        // The common attrs (a log for MAP_CREATE, PROG_LOAD, BTF_LOAD) get the same tail and
        // copy rules; then the bit is cleared. The model keeps no log yet.
        let (uattr_common, size_common) = common;
        bpf_check_uarg_tail_zero(ctx, uattr_common, COMMON_ATTR_SIZE, size_common)?;
        c = BpfCmd(c.0 & !BPF_COMMON_ATTRS);
        let n = (size_common as usize).min(COMMON_ATTR_SIZE);
        if n > 0 {
            ctx.copy_from_user(
                F,
                "copy_from_bpfptr(): the common attrs are readable",
                uattr_common,
                n,
            )?;
        }
        ctx.note(
            F,
            FILE,
            "BPF_COMMON_ATTRS: common attrs checked, the bit cleared",
            || format!("cmd is now {}", c.full_name()),
        );
    }

    match c {
        BpfCmd::MAP_CREATE => map_create::map_create(ctx, &mut attr),
        BpfCmd::MAP_LOOKUP_ELEM => map_elem::map_lookup_elem(ctx, &attr).map(|()| 0),
        BpfCmd::MAP_UPDATE_ELEM => map_elem::map_update_elem(ctx, &attr).map(|()| 0),
        BpfCmd::MAP_DELETE_ELEM => map_elem::map_delete_elem(ctx, &attr).map(|()| 0),
        BpfCmd::MAP_GET_NEXT_KEY => map_elem::map_get_next_key(ctx, &attr).map(|()| 0),
        BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM => {
            map_elem::map_lookup_and_delete_elem(ctx, &attr).map(|()| 0)
        }
        BpfCmd::MAP_FREEZE => map_elem::map_freeze(ctx, &attr).map(|()| 0),
        BpfCmd::MAP_LOOKUP_BATCH
        | BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH
        | BpfCmd::MAP_UPDATE_BATCH
        | BpfCmd::MAP_DELETE_BATCH => batch::bpf_map_do_batch(ctx, &attr, uattr, c).map(|()| 0),
        BpfCmd::OBJ_PIN => obj::bpf_obj_pin(ctx, &attr).map(|()| 0),
        BpfCmd::OBJ_GET => obj::bpf_obj_get(ctx, &attr),
        BpfCmd::MAP_GET_NEXT_ID => obj::bpf_obj_get_next_id(ctx, &attr, uattr).map(|()| 0),
        BpfCmd::MAP_GET_FD_BY_ID => obj::bpf_map_get_fd_by_id(ctx, &attr),
        BpfCmd::OBJ_GET_INFO_BY_FD => obj::bpf_obj_get_info_by_fd(ctx, &attr, uattr).map(|()| 0),
        _ => other::other_cmd(ctx, c, &attr),
    }
}

/// `bpf_check_uarg_tail_zero(uattr, sizeof(attr), size)`: a size past the kernel's union is
/// accepted only if the extra bytes are zero, and nothing past a page is accepted.
#[inline]
pub(crate) fn bpf_check_uarg_tail_zero(
    ctx: &mut Ctx,
    uaddr: u64,
    expected: usize,
    actual: u32,
) -> Result<(), Errno> {
    const F: &str = "bpf_check_uarg_tail_zero";
    let page = ctx.profile().page_size;
    check!(ctx, F, actual > page => Errno::E2BIG,
        "size <= PAGE_SIZE", "size={actual} PAGE_SIZE={page}");
    if actual as usize <= expected {
        return Ok(());
    }
    // check_zeroed_user() reads the tail a machine word at a time, from the aligned word that
    // holds its first byte, and stops at the first word with a non-zero byte in the tail: a
    // non-zero byte before an unmapped page is E2BIG, not EFAULT.
    const WORD: usize = 8;
    let from = uaddr.wrapping_add(expected as u64);
    let align = (from % WORD as u64) as usize;
    let mut addr = from - align as u64;
    let mut left = actual as usize - expected + align;
    let mut skip = align;
    loop {
        let word = ctx.copy_from_user(
            F,
            "check_zeroed_user(): the bytes past sizeof(union bpf_attr) are readable",
            addr,
            WORD,
        )?;
        let in_tail = &word[skip..left.min(WORD)];
        if let Some(i) = in_tail.iter().position(|b| *b != 0) {
            let at = (addr - uaddr) as usize + skip + i;
            check!(ctx, F, true => Errno::E2BIG,
                "bytes past sizeof(union bpf_attr) are zero",
                "sizeof={expected} size={actual} first non-zero byte at {at}");
        }
        if left <= WORD {
            return Ok(());
        }
        addr += WORD as u64;
        left -= WORD;
        skip = 0;
    }
}

/// `CHECK_ATTR(CMD)`: every byte after the command's last field must be zero.
#[inline]
pub(crate) fn check_attr(
    ctx: &mut Ctx,
    func: &'static str,
    cmd: BpfCmd,
    attr: &Attr,
) -> Result<(), Errno> {
    let end = ctx
        .profile()
        .last_field_end(cmd)
        .unwrap_or(attr.bytes().len());
    let bad = attr.first_nonzero_from(end);
    let seen = || match bad {
        Some(i) => format!(
            "byte {i} is {:#04x}",
            attr.bytes().get(i).copied().unwrap_or(0)
        ),
        None => format!(
            "the {} bytes after it are zero",
            attr.bytes().len().saturating_sub(end)
        ),
    };
    check!(ctx, func, bad.is_some() => Errno::EINVAL,
        "CHECK_ATTR: the union is zero after the command's last field",
        "last field ends at {end}; {}", seen());
    Ok(())
}

/// What `fdget()` + `__bpf_map_get()` hand back: the open file, known to be a map. The map is
/// borrowed from the file, so a command takes one reference, as `fdget` does.
pub(crate) struct MapFd(Arc<File>);

impl MapFd {
    /// The file and its map.
    pub(crate) fn parts(&self) -> (&File, &Arc<BpfMap>) {
        match self.0.map() {
            Some(map) => (&self.0, map),
            None => unreachable!("bpf_map_get() hands out map files only"),
        }
    }
}

/// `fdget(ufd)` + `__bpf_map_get()`: EBADF if the fd is not open, EINVAL if it is not a map.
pub(crate) fn bpf_map_get(ctx: &mut Ctx, func: &'static str, ufd: u32) -> Result<MapFd, Errno> {
    let file = ctx.process.fds().get(ufd);
    let Some(file) = file else {
        return Err(
            ctx.fail(func, FILE, "fdget(): the fd is open", Errno::EBADF, || {
                format!("fd {} is not open", ufd as i32)
            }),
        );
    };
    let Some(map) = file.map() else {
        return Err(ctx.fail(
            func,
            FILE,
            "__bpf_map_get(): the fd is a bpf map",
            Errno::EINVAL,
            || format!("fd {} is {}", ufd as i32, file.describe()),
        ));
    };
    ctx.note(func, FILE, "found the map behind the fd", || {
        format!(
            "fd {} -> map id {} ({:?})",
            ufd as i32,
            map.id(),
            map.desc.map_type
        )
    });
    Ok(MapFd(file))
}

/// `__bpf_prog_get()` (via `bpf_prog_get_type` and friends): the model has no programs, so a
/// program fd always fails: EBADF if it is not open, EINVAL if it is any other file. Returns
/// the errno for the caller to pass on or replace.
pub(crate) fn bpf_prog_get(ctx: &mut Ctx, func: &'static str, ufd: u32) -> Errno {
    let file = ctx.process.fds().get(ufd);
    match file {
        None => ctx.fail(
            func,
            FILE,
            "fdget(): the program fd is open",
            Errno::EBADF,
            || format!("fd {} is not open", ufd as i32),
        ),
        Some(f) => ctx.fail(
            func,
            FILE,
            "____bpf_prog_get(): the fd is a bpf program",
            Errno::EINVAL,
            || format!("fd {} is {}", ufd as i32, f.describe()),
        ),
    }
}

/// `map_get_sys_perms()`: the fd's mode, without write access once the map is frozen.
pub(crate) fn map_get_sys_perms(map: &BpfMap, file: &File) -> FMode {
    let mut mode = file.f_mode;
    if map.is_frozen() {
        mode.can_write = false;
    }
    mode
}

/// `bpf_map_write_active_inc()`/`_dec()` around a writing command.
pub(crate) struct WriteActive<'a>(&'a BpfMap);

impl WriteActive<'_> {
    pub(crate) fn new(map: &BpfMap) -> WriteActive<'_> {
        map.writecnt.fetch_add(1, Ordering::AcqRel);
        WriteActive(map)
    }
}

impl Drop for WriteActive<'_> {
    fn drop(&mut self) {
        self.0.writecnt.fetch_sub(1, Ordering::AcqRel);
    }
}
