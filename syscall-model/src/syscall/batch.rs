//! The batch commands: `bpf_map_do_batch` and the `generic_map_*_batch` functions of
//! kernel/bpf/syscall.c, and the hash tables' `__htab_map_lookup_and_delete_batch`
//! (kernel/bpf/hashtab.c), whose cookie is a bucket index, not a key.

use super::map_elem::bpf_map_check_op_flags;
use super::{bpf_map_get, check_attr, map_get_sys_perms, WriteActive, FILE};
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{bpf_map_value_size, BatchImpl, BpfMap, HtabStep};
use crate::uapi::{elem_flags::*, Attr, BpfCmd};

/// `union bpf_attr` offsets of the `batch` struct.
mod off {
    pub const IN_BATCH: usize = 0;
    pub const OUT_BATCH: usize = 8;
    pub const KEYS: usize = 16;
    pub const VALUES: usize = 24;
    pub const COUNT: usize = 32;
    pub const MAP_FD: usize = 36;
    pub const ELEM_FLAGS: usize = 40;
    pub const FLAGS: usize = 48;
}

struct Batch {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    elem_flags: u64,
    flags: u64,
    /// Where `batch.count` lives in the caller's attr (it is written back).
    ucount: u64,
}

/// `bpf_map_do_batch(attr, uattr, cmd)`.
pub fn bpf_map_do_batch(ctx: &mut Ctx, attr: &Attr, uattr: u64, cmd: BpfCmd) -> Result<(), Errno> {
    const F: &str = "bpf_map_do_batch";
    ctx.enter(F, FILE, || cmd.full_name());
    let has_read = cmd == BpfCmd::MAP_LOOKUP_BATCH || cmd == BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH;
    let has_write = cmd != BpfCmd::MAP_LOOKUP_BATCH;
    check_attr(ctx, F, cmd, attr)?;
    let fd = bpf_map_get(ctx, F, attr.u32(off::MAP_FD))?;
    let (file, map) = fd.parts();
    let _writer = has_write.then(|| WriteActive::new(map));
    let mode = map_get_sys_perms(map, file);
    check!(ctx, F, has_read && !mode.can_read => Errno::EPERM,
        "the fd can read (LOOKUP and LOOKUP_AND_DELETE)", "fd readable={}", mode.can_read);
    check!(ctx, F, has_write && !mode.can_write => Errno::EPERM,
        "the fd can write and the map is not frozen (every batch but LOOKUP)",
        "fd writable={} frozen={}", file.f_mode.can_write, map.is_frozen());
    let ops = map.ops().map_batch_ops();
    let which = match cmd {
        BpfCmd::MAP_LOOKUP_BATCH => ops.lookup,
        BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH => ops.lookup_and_delete,
        BpfCmd::MAP_UPDATE_BATCH => ops.update,
        _ => ops.delete,
    };
    let b = Batch {
        in_batch: attr.u64(off::IN_BATCH),
        out_batch: attr.u64(off::OUT_BATCH),
        keys: attr.u64(off::KEYS),
        values: attr.u64(off::VALUES),
        count: attr.u32(off::COUNT),
        elem_flags: attr.u64(off::ELEM_FLAGS),
        flags: attr.u64(off::FLAGS),
        ucount: uattr.wrapping_add(off::COUNT as u64),
    };
    match (which, cmd) {
        (BatchImpl::None, _) => Err(ctx.fail(
            F,
            FILE,
            "the map type has this batch op",
            Errno::ENOTSUPP,
            || format!("{:?} has no {}", map.desc.map_type, cmd.full_name()),
        )),
        (BatchImpl::Htab, BpfCmd::MAP_LOOKUP_BATCH) => htab_lookup_batch(ctx, map, &b, false),
        (BatchImpl::Htab, _) => htab_lookup_batch(ctx, map, &b, true),
        (BatchImpl::Rhtab, BpfCmd::MAP_LOOKUP_BATCH) => rhtab_lookup_batch(ctx, map, &b, false),
        (BatchImpl::Rhtab, _) => rhtab_lookup_batch(ctx, map, &b, true),
        (BatchImpl::Generic, BpfCmd::MAP_LOOKUP_BATCH) => generic_map_lookup_batch(ctx, map, &b),
        (BatchImpl::Generic, BpfCmd::MAP_UPDATE_BATCH) => generic_map_update_batch(ctx, map, &b),
        (BatchImpl::Generic, _) => generic_map_delete_batch(ctx, map, &b),
    }
}

/// The `elem_flags` rule: 6.x accepts only BPF_F_LOCK (with a spin lock); 7.2's generic
/// lookup and update go through `bpf_map_check_op_flags` with more flags allowed.
fn elem_flags_ok(
    ctx: &mut Ctx,
    func: &'static str,
    map: &BpfMap,
    flags: u64,
    allowed_72: Option<u64>,
) -> Result<(), Errno> {
    if let (true, Some(allowed)) = (ctx.profile().percpu_cpu_flags, allowed_72) {
        return bpf_map_check_op_flags(ctx, map, flags, allowed);
    }
    check!(ctx, func, flags & !BPF_F_LOCK != 0 => Errno::EINVAL,
        "elem_flags are 0 or BPF_F_LOCK", "elem_flags={flags:#x}");
    check!(ctx, func, flags & BPF_F_LOCK != 0 && !map.desc.has_spin_lock => Errno::EINVAL,
        "BPF_F_LOCK needs a bpf_spin_lock in the value",
        "elem_flags={flags:#x} has_spin_lock={}", map.desc.has_spin_lock);
    Ok(())
}

/// `put_user(0, &uattr->batch.count)`, done before any element.
fn zero_count(ctx: &mut Ctx, func: &'static str, b: &Batch) -> Result<(), Errno> {
    ctx.copy_to_user(
        func,
        "put_user(0, count): the attr is writable",
        b.ucount,
        &0u32.to_le_bytes(),
    )
}

fn value_size(ctx: &Ctx, map: &BpfMap, flags: u64) -> usize {
    if ctx.profile().percpu_cpu_flags && flags & (BPF_F_CPU | BPF_F_ALL_CPUS) != 0 {
        map.desc.value_size as usize
    } else {
        bpf_map_value_size(&map.desc, ctx.profile().num_possible_cpus)
    }
}

/// `generic_map_lookup_batch()`: walk with get_next_key from `in_batch` (a key).
fn generic_map_lookup_batch(ctx: &mut Ctx, map: &BpfMap, b: &Batch) -> Result<(), Errno> {
    const F: &str = "generic_map_lookup_batch";
    ctx.enter(F, FILE, String::new);
    elem_flags_ok(ctx, F, map, b.elem_flags, Some(BPF_F_LOCK | BPF_F_CPU))?;
    let vsize = value_size(ctx, map, b.elem_flags);
    if b.count == 0 {
        ctx.note(F, FILE, "count 0: nothing to do", String::new);
        return Ok(());
    }
    zero_count(ctx, F, b)?;
    let ksize = map.desc.key_size as usize;
    // The kernel's two buffers, allocated once for the whole batch: the previous key, and
    // the key and value of this step; the keys swap places after each step.
    let mut prev = vec![0u8; ksize];
    let mut have_prev = false;
    if b.in_batch != 0 {
        ctx.copy_from_user_into(F, "in_batch (a key) is readable", b.in_batch, &mut prev)?;
        have_prev = true;
    }
    let mut key = vec![0u8; ksize];
    let mut value = vec![0u8; vsize];
    let mut cp = 0u32;
    let mut err: Result<(), Errno> = Ok(());
    while cp < b.count {
        // A run of keys whose lookups would each be ENOENT (unset slots) is passed in one step:
        // walking it one key at a time changes nothing else.
        let skip = map
            .ops()
            .map_last_absent_after(&map.desc, have_prev.then_some(&prev[..]));
        if let Some(last) = skip {
            ctx.note(F, FILE, "keys whose lookup is ENOENT are skipped", || {
                format!("up to key {}", crate::trace::hex(&last))
            });
            prev = last;
            have_prev = true;
        }
        let r =
            map.ops()
                .map_get_next_key(ctx, &map.desc, have_prev.then_some(&prev[..]), &mut key);
        if let Err(e) = r {
            err = Err(e);
            break;
        }
        let r = map
            .ops()
            .map_lookup_elem_sys(ctx, &map.desc, &key, &mut value, b.elem_flags);
        match r {
            Err(Errno::ENOENT) => {
                // The element went away between the walk and the read: skip it.
                err = Err(Errno::ENOENT);
            }
            Err(e) => return Err(e),
            Ok(()) => {
                err = Ok(());
                ctx.copy_to_user(
                    F,
                    "the keys array is writable",
                    b.keys.wrapping_add(cp as u64 * ksize as u64),
                    &key,
                )?;
                ctx.copy_to_user(
                    F,
                    "the values array is writable",
                    b.values.wrapping_add(cp as u64 * vsize as u64),
                    &value,
                )?;
                cp += 1;
            }
        }
        std::mem::swap(&mut prev, &mut key);
        have_prev = true;
    }
    ctx.copy_to_user(
        F,
        "copy_to_user(count): the attr is writable",
        b.ucount,
        &cp.to_le_bytes(),
    )?;
    if cp > 0 {
        ctx.copy_to_user(F, "out_batch is writable for a key", b.out_batch, &prev)?;
    }
    err
}

/// `generic_map_update_batch()`: one update per (key, value), stopping at the first error.
fn generic_map_update_batch(ctx: &mut Ctx, map: &BpfMap, b: &Batch) -> Result<(), Errno> {
    const F: &str = "generic_map_update_batch";
    ctx.enter(F, FILE, String::new);
    elem_flags_ok(
        ctx,
        F,
        map,
        b.elem_flags,
        Some(BPF_F_LOCK | BPF_F_CPU | BPF_F_ALL_CPUS),
    )?;
    let vsize = value_size(ctx, map, b.elem_flags);
    if b.count == 0 {
        return Ok(());
    }
    zero_count(ctx, F, b)?;
    let ksize = map.desc.key_size as usize;
    let mut cp = 0u32;
    let mut err = Ok(());
    while cp < b.count {
        let key = ctx.copy_from_user(
            F,
            "the keys array is readable",
            b.keys.wrapping_add(cp as u64 * ksize as u64),
            ksize,
        );
        let value = match key {
            Ok(_) => ctx.copy_from_user(
                F,
                "the values array is readable",
                b.values.wrapping_add(cp as u64 * vsize as u64),
                vsize,
            ),
            Err(e) => Err(e),
        };
        let (Ok(key), Ok(value)) = (key, value) else {
            err = Err(Errno::EFAULT);
            break;
        };
        let r = map
            .ops()
            .map_update_elem(ctx, &map.desc, &key, &value, b.elem_flags);
        if let Err(e) = r {
            err = Err(e);
            break;
        }
        cp += 1;
    }
    ctx.copy_to_user(
        F,
        "copy_to_user(count): the attr is writable",
        b.ucount,
        &cp.to_le_bytes(),
    )?;
    err
}

/// `generic_map_delete_batch()`: one delete per key, stopping at the first error.
fn generic_map_delete_batch(ctx: &mut Ctx, map: &BpfMap, b: &Batch) -> Result<(), Errno> {
    const F: &str = "generic_map_delete_batch";
    ctx.enter(F, FILE, String::new);
    elem_flags_ok(ctx, F, map, b.elem_flags, None)?;
    if b.count == 0 {
        return Ok(());
    }
    zero_count(ctx, F, b)?;
    let ksize = map.desc.key_size as usize;
    let mut cp = 0u32;
    let mut err = Ok(());
    while cp < b.count {
        let key = match ctx.copy_from_user(
            F,
            "the keys array is readable",
            b.keys.wrapping_add(cp as u64 * ksize as u64),
            ksize,
        ) {
            Ok(k) => k,
            Err(e) => {
                err = Err(e);
                break;
            }
        };
        let r = map.ops().map_delete_elem(ctx, &map.desc, &key);
        if let Err(e) = r {
            err = Err(e);
            break;
        }
        cp += 1;
    }
    ctx.copy_to_user(
        F,
        "copy_to_user(count): the attr is writable",
        b.ucount,
        &cp.to_le_bytes(),
    )?;
    err
}

/// `__htab_map_lookup_and_delete_batch()`: whole buckets from the bucket index in `in_batch`.
fn htab_lookup_batch(ctx: &mut Ctx, map: &BpfMap, b: &Batch, delete: bool) -> Result<(), Errno> {
    const F: &str = "__htab_map_lookup_and_delete_batch";
    const H: &str = "kernel/bpf/hashtab.c";
    ctx.enter(F, H, || {
        if delete {
            "lookup and delete".into()
        } else {
            "lookup".into()
        }
    });
    elem_flags_ok(ctx, F, map, b.elem_flags, None)?;
    check!(ctx, F, b.flags != 0 => Errno::EINVAL, "batch.flags is 0", "flags={:#x}", b.flags);
    if b.count == 0 {
        return Ok(());
    }
    zero_count(ctx, F, b)?;
    let mut batch = 0u32;
    if b.in_batch != 0 {
        let v = ctx.copy_from_user(
            F,
            "in_batch (a u32 bucket index) is readable",
            b.in_batch,
            4,
        )?;
        batch = u32::from_le_bytes([v[0], v[1], v[2], v[3]]);
    }
    let ksize = map.desc.key_size as usize;
    let vsize = bpf_map_value_size(&map.desc, ctx.profile().num_possible_cpus);
    let mut total = 0u32;
    let mut first = true;
    let result;
    // One bucket's keys and values at a time, as the kernel's buffers hold them.
    let (mut keys, mut values) = (Vec::new(), Vec::new());
    loop {
        keys.clear();
        values.clear();
        let step = map.ops().htab_batch_step(
            batch,
            b.count - total,
            delete,
            vsize,
            &mut keys,
            &mut values,
        );
        let starting = std::mem::replace(&mut first, false);
        match step {
            Some(HtabStep::End { n_buckets }) => {
                if starting && batch >= n_buckets {
                    return Err(ctx.fail(
                        F,
                        H,
                        "in_batch is a bucket index below n_buckets",
                        Errno::ENOENT,
                        || format!("bucket {batch} of {n_buckets}"),
                    ));
                }
                batch = n_buckets;
                result = Err(ctx.fail(
                    F,
                    H,
                    "buckets remain past this batch",
                    Errno::ENOENT,
                    || format!("the walk reached bucket {n_buckets} of {n_buckets}"),
                ));
                break;
            }
            Some(HtabStep::NoRoom { bucket }) => {
                batch = bucket;
                result = if total == 0 {
                    Err(ctx.fail(
                        F,
                        H,
                        "the first bucket fits in count",
                        Errno::ENOSPC,
                        || format!("bucket {bucket}"),
                    ))
                } else {
                    Ok(())
                };
                break;
            }
            Some(HtabStep::Taken {
                bucket,
                n,
                n_buckets,
            }) => {
                ctx.copy_to_user(
                    F,
                    "the keys array is writable",
                    b.keys.wrapping_add(total as u64 * ksize as u64),
                    &keys,
                )?;
                ctx.copy_to_user(
                    F,
                    "the values array is writable",
                    b.values.wrapping_add(total as u64 * vsize as u64),
                    &values,
                )?;
                total += n;
                batch = bucket + 1;
                if batch >= n_buckets {
                    result = Err(ctx.fail(
                        F,
                        H,
                        "buckets remain past this batch",
                        Errno::ENOENT,
                        || format!("the walk reached bucket {batch} of {n_buckets}"),
                    ));
                    break;
                }
            }
            None => return Err(Errno::ENOTSUPP),
        }
    }
    ctx.copy_to_user(
        F,
        "out_batch is writable for a u32 bucket index",
        b.out_batch,
        &batch.to_le_bytes(),
    )?;
    ctx.copy_to_user(
        F,
        "put_user(total, count): the attr is writable",
        b.ucount,
        &total.to_le_bytes(),
    )?;
    result
}

/// `__rhtab_map_lookup_and_delete_batch()` (7.2, kernel/bpf/hashtab.c): up to `count`
/// elements in walk order from the key in `in_batch`, which must still be in the table
/// (EAGAIN otherwise). `out_batch` gets the key of the next element to return, and only when
/// one follows; the last batch is ENOENT with its elements written. Deleting happens after
/// the walk and before the copies, so elements stay deleted if a copy faults.
fn rhtab_lookup_batch(ctx: &mut Ctx, map: &BpfMap, b: &Batch, delete: bool) -> Result<(), Errno> {
    const F: &str = "__rhtab_map_lookup_and_delete_batch";
    const H: &str = "kernel/bpf/hashtab.c";
    ctx.enter(F, H, || {
        if delete {
            "lookup and delete".into()
        } else {
            "lookup".into()
        }
    });
    bpf_map_check_op_flags(ctx, map, b.elem_flags, BPF_F_LOCK)?;
    check!(ctx, F, b.flags != 0 => Errno::EINVAL, "batch.flags is 0", "flags={:#x}", b.flags);
    if b.count == 0 {
        return Ok(());
    }
    zero_count(ctx, F, b)?;
    let ksize = map.desc.key_size as usize;
    let vsize = map.desc.value_size as usize;
    let mut elem: Option<Vec<u8>> = if b.in_batch != 0 {
        let cursor = ctx.copy_from_user(F, "in_batch (a key) is readable", b.in_batch, ksize)?;
        let mut v = vec![0u8; vsize];
        let r = map
            .ops()
            .map_lookup_elem_sys(ctx, &map.desc, &cursor, &mut v, 0);
        if r.is_err() {
            return Err(ctx.fail(
                F,
                H,
                "the in_batch key is still in the table (else the walk lost its place)",
                Errno::EAGAIN,
                String::new,
            ));
        }
        Some(cursor.into_vec())
    } else {
        first_key(ctx, map, None)
    };
    let (mut keys, mut values, mut taken) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = 0u32;
    while total < b.count {
        let Some(key) = elem.take() else { break };
        let mut v = vec![0u8; vsize];
        map.ops()
            .map_lookup_elem_sys(ctx, &map.desc, &key, &mut v, b.elem_flags)?;
        keys.extend_from_slice(&key);
        values.extend_from_slice(&v);
        elem = first_key(ctx, map, Some(&key));
        taken.push(key);
        total += 1;
    }
    if delete {
        for k in &taken {
            map.ops().map_delete_elem(ctx, &map.desc, k)?;
        }
    }
    if total == 0 {
        return Err(ctx.fail(
            F,
            H,
            "the table has an element from the cursor on",
            Errno::ENOENT,
            String::new,
        ));
    }
    let result = if elem.is_none() {
        ctx.note(
            F,
            H,
            "no element follows: the batch ends with ENOENT",
            String::new,
        );
        Err(Errno::ENOENT)
    } else {
        Ok(())
    };
    ctx.copy_to_user(F, "the keys array is writable", b.keys, &keys)?;
    ctx.copy_to_user(F, "the values array is writable", b.values, &values)?;
    ctx.copy_to_user(
        F,
        "put_user(total, count): the attr is writable",
        b.ucount,
        &total.to_le_bytes(),
    )?;
    if let Some(next) = elem {
        ctx.copy_to_user(F, "out_batch is writable for a key", b.out_batch, &next)?;
    }
    result
}

/// `rhashtable_next_key(ht, key)` for a key that is in the table (or NULL: the first).
fn first_key(ctx: &mut Ctx, map: &BpfMap, key: Option<&[u8]>) -> Option<Vec<u8>> {
    let mut next = vec![0u8; map.desc.key_size as usize];
    map.ops()
        .map_get_next_key(ctx, &map.desc, key, &mut next)
        .ok()
        .map(|()| next)
}
