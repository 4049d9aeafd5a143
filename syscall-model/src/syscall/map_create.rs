//! `map_create()` and what it calls on the way: `bpf_get_file_flag`, the type table
//! (`find_and_alloc_map` in older kernels), `bpf_obj_name_cpy`, the BTF and exclusive-hash
//! checks, `bpf_map_alloc_id` and `bpf_map_new_fd`.

use super::{check_attr, FILE};
use crate::bpf_types::{bpf_map_types, map_priv, MapPriv, MapTypeEntry};
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::fd::{FMode, File, FileKind};
use crate::kernel::cap;
use crate::map::BpfMap;
use crate::uapi::{map_flags::*, off, Attr, BpfCmd, MapCreateAttr, MapType, NUMA_NO_NODE};
use std::sync::Arc;

/// `SHA256_DIGEST_SIZE`: the only accepted `excl_prog_hash_size`.
const SHA256_DIGEST_SIZE: u32 = 32;

/// `map_create(attr)`: returns the new map's fd.
pub fn map_create(ctx: &mut Ctx, attr: &mut Attr) -> Result<i32, Errno> {
    const F: &str = "map_create";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_CREATE, attr)?;

    // BPF_F_TOKEN_FD is remembered and removed, so no type's flag mask trips on it. A kernel
    // without tokens (6.1) leaves bit 16 in the flags, for the type's mask to refuse.
    let mut token_flag = false;
    if ctx.profile().bpf_token {
        token_flag = attr.u32(off::MAP_FLAGS) & BPF_F_TOKEN_FD != 0;
        let flags = attr.u32(off::MAP_FLAGS) & !BPF_F_TOKEN_FD;
        attr.set_u32(off::MAP_FLAGS, flags);
    }
    let a = MapCreateAttr::decode(attr);
    let t = a.map_type();

    if a.btf_vmlinux_value_type_id != 0 {
        check!(ctx, F, t != MapType::STRUCT_OPS || a.btf_key_type_id != 0 || a.btf_value_type_id != 0
            => Errno::EINVAL,
            "btf_vmlinux_value_type_id only for struct_ops maps, and without key/value type ids",
            "map_type={t:?} btf_key_type_id={} btf_value_type_id={}", a.btf_key_type_id, a.btf_value_type_id);
    } else {
        check!(ctx, F, a.btf_key_type_id != 0 && a.btf_value_type_id == 0 => Errno::EINVAL,
            "a btf_key_type_id needs a btf_value_type_id",
            "btf_key_type_id={} btf_value_type_id={}", a.btf_key_type_id, a.btf_value_type_id);
    }

    let extra_ok = ctx.profile().map_extra_types;
    check!(ctx, F, a.map_extra != 0 && !extra_ok.contains(&t) => Errno::EINVAL,
        "map_extra is 0 unless the type uses it (bloom filter hashes, arena address)",
        "map_type={t:?} map_extra={:#x}", a.map_extra);

    let late_file_flag = ctx.profile().file_flag_check_after_alloc;
    let early_mode = if late_file_flag {
        None
    } else {
        Some(bpf_get_file_flag(ctx, a.map_flags)?)
    };

    let numa_node = a.numa_node();
    let nr_node_ids = ctx.profile().nr_node_ids;
    check!(ctx, F, numa_node != NUMA_NO_NODE && (numa_node as u32 >= nr_node_ids) => Errno::EINVAL,
        "a BPF_F_NUMA_NODE node exists and is online",
        "numa_node={numa_node} nr_node_ids={nr_node_ids}");

    // find map type and init map: in 6.1 the steps from here to map_alloc are
    // find_and_alloc_map()'s.
    let fam: &'static str = if ctx.profile().find_and_alloc_map {
        ctx.enter("find_and_alloc_map", FILE, || {
            format!("map_type={}", a.map_type)
        });
        "find_and_alloc_map"
    } else {
        F
    };
    let nr_types = ctx.profile().nr_map_types;
    check!(ctx, fam, a.map_type >= nr_types => Errno::EINVAL,
        "map_type < __MAX_BPF_MAP_TYPE", "map_type={} __MAX_BPF_MAP_TYPE={nr_types}", a.map_type);
    let ops = match bpf_map_types(t) {
        MapTypeEntry::Modelled(ops) => ops,
        MapTypeEntry::NoOps => {
            return Err(ctx.fail(
                fam,
                FILE,
                "bpf_map_types[map_type] has ops",
                Errno::EINVAL,
                || format!("{t:?} has no ops"),
            ))
        }
        MapTypeEntry::NotModelled => {
            return Err(ctx.fail(
                fam,
                FILE,
                "the model implements this map type",
                Errno::ENOSYS,
                || format!("{t:?} is a kernel map type the model does not implement yet"),
            ))
        }
    };
    ctx.note(fam, FILE, "bpf_map_types[map_type]", || {
        format!("{} ({})", ops.name, ops.file)
    });
    if let Some(alloc_check) = ops.map_alloc_check {
        alloc_check(ctx, &a)?;
    }
    if a.map_ifindex != 0 {
        // The offload ops take over; every type has map_mem_usage in this kernel.
        ctx.note(
            fam,
            FILE,
            "map_ifindex != 0: the offload ops take over",
            || format!("map_ifindex={}", a.map_ifindex),
        );
    }

    if token_flag {
        bpf_token_get_from_fd(ctx, a.map_token_fd)?;
    }

    let cred = ctx.cred().clone();
    // 6.1 asked this in __sys_bpf, before anything else.
    let unpriv_disabled = if ctx.profile().unpriv_disabled_checked_in_sys_bpf {
        0
    } else {
        ctx.profile().unprivileged_bpf_disabled
    };
    check!(ctx, F, unpriv_disabled != 0 && !cred.bpf_capable() => Errno::EPERM,
        "with kernel.unprivileged_bpf_disabled, creating maps needs CAP_BPF",
        "unprivileged_bpf_disabled={unpriv_disabled} bpf_capable={}", cred.bpf_capable());
    let need = map_priv(t);
    let has = match need {
        MapPriv::Unprivileged => true,
        MapPriv::Bpf => cred.bpf_capable(),
        MapPriv::NetAdmin => cred.capable(cap::CAP_NET_ADMIN) || cred.capable(cap::CAP_SYS_ADMIN),
    };
    check!(ctx, F, !has => Errno::EPERM,
        "the caller has the capability this map type needs", "{t:?} needs {need:?} caller_has={has}");

    let (mut desc, storage) = if a.map_ifindex != 0 {
        return Err(bpf_map_offload_map_alloc(ctx, &a));
    } else {
        (ops.map_alloc)(ctx, &a)?
    };
    // bpf_map_area_alloc() and friends inside the type's map_alloc: what the map preallocates
    // must fit in the machine (the model itself allocates what is stored, and a preallocated
    // hash or LRU map's room when its first element arrives).
    let need = storage.map_mem_usage(&desc);
    let have = ctx.profile().mem_total;
    check!(ctx, "bpf_map_area_alloc", need > have => Errno::ENOMEM,
        "the map's preallocated memory fits in the machine's",
        "the map needs {need} bytes at creation, the machine has {have}");

    bpf_obj_name_cpy(ctx, &a.map_name)?;
    desc.name = a.map_name;
    let name_end = desc.name.iter().position(|b| *b == 0).unwrap_or(16);
    desc.name[name_end..].fill(0);

    if a.btf_key_type_id != 0 || a.btf_value_type_id != 0 || a.btf_vmlinux_value_type_id != 0 {
        // btf_get_by_fd(): the model has no BTF objects, so whatever the fd is, it is not one.
        return Err(btf_get_by_fd(ctx, a.btf_fd));
    }

    if a.excl_prog_hash != 0 {
        check!(ctx, F, a.excl_prog_hash_size != SHA256_DIGEST_SIZE => Errno::EINVAL,
            "excl_prog_hash_size is SHA256_DIGEST_SIZE (32)", "excl_prog_hash_size={}", a.excl_prog_hash_size);
        ctx.copy_from_user(
            F,
            "the excl_prog_hash digest is readable",
            a.excl_prog_hash,
            32,
        )?;
        desc.excl = true;
    } else {
        check!(ctx, F, a.excl_prog_hash_size != 0 => Errno::EINVAL,
            "no excl_prog_hash_size without excl_prog_hash", "excl_prog_hash_size={}", a.excl_prog_hash_size);
    }

    let f_mode = match early_mode {
        Some(m) => m,
        // 7.2: only now, after the whole allocation.
        None => bpf_get_file_flag(ctx, a.map_flags)?,
    };

    let map = Arc::new(BpfMap::new(desc, storage, &ctx.kernel.map_idr));
    let id = ctx.kernel.map_idr().alloc(&map);
    let id = match id {
        Ok(id) => id,
        Err(e) => return Err(ctx.fail("bpf_map_alloc_id", FILE, "a free map id", e, String::new)),
    };
    map.set_id(id);
    ctx.note(
        "bpf_map_alloc_id",
        FILE,
        "idr_alloc_cyclic(&map_idr, 1, INT_MAX)",
        || format!("id {id}"),
    );

    // bpf_map_new_fd(): an anon inode "bpf-map" file with the mode from the flags.
    let fd = ctx.process.fds().install(File {
        kind: FileKind::BpfMap(map),
        f_mode,
    });
    match fd {
        Ok(fd) => {
            ctx.note(
                "bpf_map_new_fd",
                FILE,
                "anon_inode_getfd(\"bpf-map\"): the lowest free fd",
                || format!("fd {fd}"),
            );
            Ok(fd)
        }
        Err(e) => Err(ctx.fail(
            "bpf_map_new_fd",
            FILE,
            "a free fd below RLIMIT_NOFILE",
            e,
            String::new,
        )),
    }
}

/// `bpf_get_file_flag()`: the fd's access mode from BPF_F_RDONLY / BPF_F_WRONLY.
pub(crate) fn bpf_get_file_flag(ctx: &mut Ctx, flags: u32) -> Result<FMode, Errno> {
    const F: &str = "bpf_get_file_flag";
    let (rd, wr) = (flags & BPF_F_RDONLY != 0, flags & BPF_F_WRONLY != 0);
    check!(ctx, F, rd && wr => Errno::EINVAL,
        "not both BPF_F_RDONLY and BPF_F_WRONLY", "flags={flags:#x}");
    Ok(if rd {
        FMode::RDONLY
    } else if wr {
        FMode::WRONLY
    } else {
        FMode::RDWR
    })
}

/// `bpf_obj_name_cpy()`: letters, digits, `_` and `.` up to a NUL within the 16 bytes.
fn bpf_obj_name_cpy(ctx: &mut Ctx, name: &[u8; 16]) -> Result<(), Errno> {
    const F: &str = "bpf_obj_name_cpy";
    let end = name.iter().position(|b| *b == 0);
    let used = &name[..end.unwrap_or(16)];
    let bad = used
        .iter()
        .position(|c| !(c.is_ascii_alphanumeric() || *c == b'_' || *c == b'.'));
    let chars = || match bad {
        Some(i) => format!(": byte {i} is {:#04x}", used.get(i).copied().unwrap_or(0)),
        None => format!(" ({} bytes, all allowed)", used.len()),
    };
    check!(ctx, F, bad.is_some() => Errno::EINVAL,
        "map_name holds only letters, digits, '_' and '.'",
        "name={:?}{}", String::from_utf8_lossy(used), chars());
    let nul = || match end {
        Some(i) => format!("first NUL at byte {i}"),
        None => "no NUL in the 16 bytes".to_string(),
    };
    check!(ctx, F, end.is_none() => Errno::EINVAL,
        "map_name has a NUL within its 16 bytes", "{}", nul());
    Ok(())
}

/// `btf_get_by_fd()`: EBADF if not open, EINVAL if not a BTF object. The model has no BTF
/// objects yet, so every open fd is the second case.
fn btf_get_by_fd(ctx: &mut Ctx, fd: u32) -> Errno {
    const F: &str = "btf_get_by_fd";
    let file = ctx.process.fds().get(fd);
    match file {
        None => ctx.fail(
            F,
            "kernel/bpf/btf.c",
            "btf_fd is open",
            Errno::EBADF,
            || format!("fd {} is not open", fd as i32),
        ),
        Some(f) => ctx.fail(
            F,
            "kernel/bpf/btf.c",
            "btf_fd is a BTF object",
            Errno::EINVAL,
            || format!("fd {} is {}", fd as i32, f.describe()),
        ),
    }
}

/// `bpf_token_get_from_fd()`: EBADF if not open, EINVAL if not a token (the model has none).
fn bpf_token_get_from_fd(ctx: &mut Ctx, fd: u32) -> Result<(), Errno> {
    const F: &str = "bpf_token_get_from_fd";
    let file = ctx.process.fds().get(fd);
    Err(match file {
        None => ctx.fail(
            F,
            "kernel/bpf/token.c",
            "map_token_fd is open",
            Errno::EBADF,
            || format!("fd {} is not open", fd as i32),
        ),
        Some(f) => ctx.fail(
            F,
            "kernel/bpf/token.c",
            "map_token_fd is a bpf token",
            Errno::EINVAL,
            || format!("fd {} is {}", fd as i32, f.describe()),
        ),
    })
}

/// `bpf_map_offload_map_alloc()` (kernel/bpf/offload.c): the model's machine has no device
/// that offloads maps, so this always fails; the errno says which check stopped it.
fn bpf_map_offload_map_alloc(ctx: &mut Ctx, a: &MapCreateAttr) -> Errno {
    const F: &str = "bpf_map_offload_map_alloc";
    const OFF: &str = "kernel/bpf/offload.c";
    if !ctx.cred().capable(cap::CAP_SYS_ADMIN) {
        return ctx.fail(
            F,
            OFF,
            "offloaded maps need CAP_SYS_ADMIN",
            Errno::EPERM,
            String::new,
        );
    }
    let t = a.map_type();
    if t != MapType::ARRAY && t != MapType::HASH {
        return ctx.fail(
            F,
            OFF,
            "only ARRAY and HASH maps can be offloaded",
            Errno::EINVAL,
            || format!("map_type={t:?}"),
        );
    }
    let dev = ctx
        .kernel
        .netdevs
        .iter()
        .find(|d| d.ifindex == a.map_ifindex)
        .cloned();
    match dev {
        None => ctx.fail(
            "bpf_dev_offload_check",
            OFF,
            "map_ifindex names a device",
            Errno::EINVAL,
            || format!("no device with ifindex {}", a.map_ifindex),
        ),
        Some(d) if !d.has_ndo_bpf => ctx.fail(
            "bpf_dev_offload_check",
            OFF,
            "the device's driver has ndo_bpf",
            Errno::EOPNOTSUPP,
            || format!("{} (ifindex {}) has no ndo_bpf", d.name, d.ifindex),
        ),
        Some(d) => ctx.fail(
            F,
            OFF,
            "the device is registered for offload",
            Errno::EINVAL,
            || format!("{} is not an offload device", d.name),
        ),
    }
}
