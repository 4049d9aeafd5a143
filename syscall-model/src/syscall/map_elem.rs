//! The element commands of kernel/bpf/syscall.c: `map_lookup_elem`, `map_update_elem`,
//! `map_delete_elem`, `map_get_next_key`, `map_lookup_and_delete_elem` and `map_freeze`,
//! with `__bpf_copy_key` and `bpf_map_value_size`.

use super::{bpf_map_get, check_attr, map_get_sys_perms, WriteActive, FILE};
use crate::check;
use crate::ctx::{Ctx, UserBytes};
use crate::errno::Errno;
use crate::map::{bpf_map_value_size, BpfMap};
use crate::uapi::{elem_flags::*, Attr, BpfCmd, ElemAttr, MapType};
use std::sync::atomic::Ordering;

/// `__bpf_copy_key()` / `___bpf_copy_key()`: `key_size` bytes from user space into `key`; a
/// keyless map wants a NULL pointer. (The buffer is the caller's, so the copy lands where the
/// key is used: no allocation and no move of the buffer per call.)
fn bpf_copy_key(
    ctx: &mut Ctx,
    func: &'static str,
    ukey: u64,
    key_size: u32,
    key: &mut UserBytes,
) -> Result<(), Errno> {
    if key_size > 0 {
        key.reset(key_size as usize);
        return ctx.copy_from_user_into(
            func,
            "the key pointer is readable for key_size bytes",
            ukey,
            key,
        );
    }
    check!(ctx, func, ukey != 0 => Errno::EINVAL,
        "a map without keys takes a NULL key pointer", "key={ukey:#x}");
    Ok(())
}

/// `bpf_map_value_size(map, flags)`: with 7.2's BPF_F_CPU or BPF_F_ALL_CPUS one CPU's value.
fn value_size(ctx: &Ctx, map: &BpfMap, flags: u64) -> usize {
    let one_cpu = ctx.profile().percpu_cpu_flags && flags & (BPF_F_CPU | BPF_F_ALL_CPUS) != 0;
    if one_cpu {
        map.desc.value_size as usize
    } else {
        bpf_map_value_size(&map.desc, ctx.profile().num_possible_cpus)
    }
}

/// `bpf_map_check_op_flags(map, flags, allowed)` (include/linux/bpf.h, 7.2): the element flags
/// of LOOKUP and UPDATE once BPF_F_CPU exists.
pub(crate) fn bpf_map_check_op_flags(
    ctx: &mut Ctx,
    map: &BpfMap,
    flags: u64,
    allowed: u64,
) -> Result<(), Errno> {
    const F: &str = "bpf_map_check_op_flags";
    const H: &str = "include/linux/bpf.h";
    let fail =
        |ctx: &mut Ctx, rule, e| Err(ctx.fail(F, H, rule, e, || format!("flags={flags:#x}")));
    if (flags as u32 as u64) & !allowed != 0 {
        return fail(
            ctx,
            "the low 32 bits of flags are among the allowed ones",
            Errno::EINVAL,
        );
    }
    if flags & BPF_F_LOCK != 0 && !map.desc.has_spin_lock {
        return fail(
            ctx,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            Errno::EINVAL,
        );
    }
    if flags & BPF_F_CPU == 0 && flags >> 32 != 0 {
        return fail(
            ctx,
            "the upper 32 bits (a CPU) only with BPF_F_CPU",
            Errno::EINVAL,
        );
    }
    if flags & (BPF_F_CPU | BPF_F_ALL_CPUS) != 0 {
        if !map.desc.map_type.is_percpu_value() {
            return fail(
                ctx,
                "BPF_F_CPU and BPF_F_ALL_CPUS only on per-CPU maps",
                Errno::EINVAL,
            );
        }
        if flags & BPF_F_CPU != 0 && flags & BPF_F_ALL_CPUS != 0 {
            return fail(ctx, "not both BPF_F_CPU and BPF_F_ALL_CPUS", Errno::EINVAL);
        }
        let cpu = flags >> 32;
        if flags & BPF_F_CPU != 0 && cpu >= ctx.profile().num_possible_cpus as u64 {
            return fail(ctx, "the BPF_F_CPU cpu is a possible CPU", Errno::ERANGE);
        }
    }
    Ok(())
}

/// `map_lookup_elem()`.
pub fn map_lookup_elem(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_lookup_elem";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_LOOKUP_ELEM, attr)?;
    let a = ElemAttr::decode(attr);
    let op_flags = ctx.profile().percpu_cpu_flags;
    if !op_flags {
        check!(ctx, F, a.flags & !BPF_F_LOCK != 0 => Errno::EINVAL,
            "flags are 0 or BPF_F_LOCK (checked before the fd)", "flags={:#x}", a.flags);
    }
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, !mode.can_read => Errno::EPERM,
        "the fd was opened for reading", "fd readable={}", mode.can_read);
    if op_flags {
        bpf_map_check_op_flags(ctx, map, a.flags, BPF_F_LOCK | BPF_F_CPU)?;
    } else {
        check!(ctx, F, a.flags & BPF_F_LOCK != 0 && !map.desc.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={:#x} has_spin_lock={}", a.flags, map.desc.has_spin_lock);
    }
    let mut key = UserBytes::zeroed(0);
    bpf_copy_key(ctx, F, a.key, map.desc.key_size, &mut key)?;
    let mut value = UserBytes::zeroed(value_size(ctx, map, a.flags));
    ctx.note(
        F,
        FILE,
        "bpf_map_value_size(): the bytes a value takes in user space",
        || format!("{} bytes", value.len()),
    );
    if map.desc.map_type == MapType::BLOOM_FILTER {
        // A bloom filter is asked about a value: it is read from user space, nothing is
        // written back.
        let what = "the value pointer is readable (a bloom filter reads it)";
        ctx.copy_from_user_into(F, what, a.value, &mut value)?;
        let r = map
            .ops()
            .map_lookup_elem_sys(ctx, &map.desc, &key, &mut value, a.flags);
        return r;
    }
    // bpf_map_copy_value(): the type's read.
    map.ops()
        .map_lookup_elem_sys(ctx, &map.desc, &key, &mut value, a.flags)?;
    ctx.copy_to_user(
        F,
        "copy_to_user(): the value pointer is writable",
        a.value,
        &value,
    )?;
    Ok(())
}

/// `map_update_elem()` and `bpf_map_update_value()`.
pub fn map_update_elem(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_update_elem";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_UPDATE_ELEM, attr)?;
    let a = ElemAttr::decode(attr);
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    let _writer = WriteActive::new(map);
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, !mode.can_write => Errno::EPERM,
        "the fd was opened for writing and the map is not frozen",
        "fd writable={} frozen={}", file.f_mode.can_write, map.is_frozen());
    if ctx.profile().percpu_cpu_flags {
        bpf_map_check_op_flags(ctx, map, a.flags, !0)?;
    } else {
        check!(ctx, F, a.flags & BPF_F_LOCK != 0 && !map.desc.has_spin_lock => Errno::EINVAL,
            "BPF_F_LOCK needs a bpf_spin_lock in the value",
            "flags={:#x} has_spin_lock={}", a.flags, map.desc.has_spin_lock);
    }
    let mut key = UserBytes::zeroed(0);
    bpf_copy_key(ctx, F, a.key, map.desc.key_size, &mut key)?;
    let vsize = value_size(ctx, map, a.flags);
    let mut value = UserBytes::zeroed(vsize);
    ctx.copy_from_user_into(
        F,
        "the value pointer is readable for the value size",
        a.value,
        &mut value,
    )?;
    ctx.enter("bpf_map_update_value", FILE, || {
        format!("{:?}", map.desc.map_type)
    });
    let r = map
        .ops()
        .map_update_elem(ctx, &map.desc, &key, &value, a.flags);
    r
}

/// `map_delete_elem()`.
pub fn map_delete_elem(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_delete_elem";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_DELETE_ELEM, attr)?;
    let a = ElemAttr::decode(attr);
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    let _writer = WriteActive::new(map);
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, !mode.can_write => Errno::EPERM,
        "the fd was opened for writing and the map is not frozen",
        "fd writable={} frozen={}", file.f_mode.can_write, map.is_frozen());
    let mut key = UserBytes::zeroed(0);
    bpf_copy_key(ctx, F, a.key, map.desc.key_size, &mut key)?;
    let r = map.ops().map_delete_elem(ctx, &map.desc, &key);
    r
}

/// `map_get_next_key()`.
pub fn map_get_next_key(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_get_next_key";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_GET_NEXT_KEY, attr)?;
    let a = ElemAttr::decode(attr);
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, !mode.can_read => Errno::EPERM,
        "the fd was opened for reading", "fd readable={}", mode.can_read);
    // A NULL key asks for the first key; nothing is copied.
    let key = if a.key != 0 {
        let mut key = UserBytes::zeroed(0);
        bpf_copy_key(ctx, F, a.key, map.desc.key_size, &mut key)?;
        Some(key)
    } else {
        ctx.note(F, FILE, "a NULL key asks for the first key", String::new);
        None
    };
    let mut next_key = UserBytes::zeroed(map.desc.key_size as usize);
    map.ops()
        .map_get_next_key(ctx, &map.desc, key.as_deref(), &mut next_key)?;
    ctx.copy_to_user(
        F,
        "copy_to_user(): the next_key pointer is writable",
        a.value,
        &next_key,
    )
}

/// `map_lookup_and_delete_elem()`.
pub fn map_lookup_and_delete_elem(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_lookup_and_delete_elem";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM, attr)?;
    let a = ElemAttr::decode(attr);
    check!(ctx, F, a.flags & !BPF_F_LOCK != 0 => Errno::EINVAL,
        "flags are 0 or BPF_F_LOCK (checked before the fd)", "flags={:#x}", a.flags);
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    let _writer = WriteActive::new(map);
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, !mode.can_read || !mode.can_write => Errno::EPERM,
        "the fd can read and write, and the map is not frozen",
        "readable={} writable={} frozen={}", file.f_mode.can_read, file.f_mode.can_write, map.is_frozen());
    let t = map.desc.map_type;
    check!(ctx, F, a.flags != 0 && (t == MapType::QUEUE || t == MapType::STACK) => Errno::EINVAL,
        "no flags for a queue or stack pop", "flags={:#x}", a.flags);
    check!(ctx, F, a.flags & BPF_F_LOCK != 0 && !map.desc.has_spin_lock => Errno::EINVAL,
        "BPF_F_LOCK needs a bpf_spin_lock in the value",
        "flags={:#x} has_spin_lock={}", a.flags, map.desc.has_spin_lock);
    let mut key = UserBytes::zeroed(0);
    bpf_copy_key(ctx, F, a.key, map.desc.key_size, &mut key)?;
    let mut value = UserBytes::zeroed(value_size(ctx, map, 0));
    let r = map
        .ops()
        .map_lookup_and_delete_elem(ctx, &map.desc, &key, &mut value, a.flags);
    match r {
        Some(r) => r?,
        None => {
            return Err(ctx.fail(
                F,
                FILE,
                "the map type supports lookup-and-delete",
                Errno::ENOTSUPP,
                || format!("{t:?} has no lookup_and_delete op"),
            ))
        }
    }
    // The element is already gone if this copy faults.
    ctx.copy_to_user(
        F,
        "copy_to_user(): the value pointer is writable",
        a.value,
        &value,
    )
}

/// `map_freeze()`.
pub fn map_freeze(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "map_freeze";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_FREEZE, attr)?;
    let a = ElemAttr::decode(attr);
    let fd = bpf_map_get(ctx, F, a.map_fd)?;
    let (file, map) = fd.parts();
    check!(ctx, F, map.desc.map_type == MapType::STRUCT_OPS || map.desc.has_spin_lock => Errno::ENOTSUPP,
        "not a struct_ops map and no BTF special fields in the value",
        "map_type={:?} has_spin_lock={}", map.desc.map_type, map.desc.has_spin_lock);
    // 6.1 never looks at the fd's access mode here, and asks for CAP_BPF last instead.
    let needs_bpf_capable = ctx.profile().freeze_needs_bpf_capable;
    if !needs_bpf_capable {
        let mode = map_get_sys_perms(map, file);
        check!(ctx, F, !mode.can_write => Errno::EPERM,
            "the fd can write (a frozen map cannot be written, so a second freeze fails here)",
            "fd writable={} frozen={}", file.f_mode.can_write, map.is_frozen());
    }
    let writers = map.writecnt.load(Ordering::Acquire);
    check!(ctx, F, writers != 0 => Errno::EBUSY,
        "no writer is active (no update in flight, no writable mmap)", "writecnt={writers}");
    check!(ctx, F, map.is_frozen() => Errno::EBUSY, "the map is not frozen yet", "frozen={}", map.is_frozen());
    if needs_bpf_capable {
        let bpf_capable = ctx.cred().bpf_capable();
        check!(ctx, F, !bpf_capable => Errno::EPERM,
            "the caller has CAP_BPF (6.1)", "bpf_capable={bpf_capable}");
    }
    map.frozen.store(true, Ordering::Release);
    Ok(())
}
