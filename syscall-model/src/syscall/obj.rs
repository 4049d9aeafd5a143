//! Objects by id and their info, in kernel/bpf/syscall.c: `bpf_obj_get_next_id` (for maps),
//! `bpf_map_get_fd_by_id`, `bpf_obj_get_info_by_fd` with `bpf_map_get_info_by_fd`, and
//! `bpf_map_show_fdinfo`.

use super::map_create::bpf_get_file_flag;
use super::{bpf_check_uarg_tail_zero, check_attr, FILE};
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::fd::{File, FileKind};
use crate::kernel::cap;
use crate::map::{bpf_map_value_size, round_up, BpfMap, MapDesc};
use crate::profile::KernelProfile;
use crate::uapi::{map_flags::*, Attr, BpfCmd};

/// `BPF_OBJ_FLAG_MASK`: the open flags GET_FD_BY_ID accepts.
const BPF_OBJ_FLAG_MASK: u32 = BPF_F_RDONLY | BPF_F_WRONLY;

/// Offsets of `union bpf_attr` for these commands.
mod off {
    pub const START_ID: usize = 0;
    pub const NEXT_ID: u64 = 4;
    pub const OPEN_FLAGS: usize = 8;
    pub const MAP_ID: usize = 0;
    pub const INFO_BPF_FD: usize = 0;
    pub const INFO_LEN: usize = 4;
    pub const INFO_INFO: usize = 8;
}

/// `bpf_obj_get_next_id(attr, uattr, &map_idr)`: the next map id after `start_id`.
pub fn bpf_obj_get_next_id(ctx: &mut Ctx, attr: &Attr, uattr: u64) -> Result<(), Errno> {
    const F: &str = "bpf_obj_get_next_id";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::MAP_GET_NEXT_ID, attr)?;
    let start = attr.u32(off::START_ID);
    check!(ctx, F, start >= i32::MAX as u32 => Errno::EINVAL, "start_id < INT_MAX", "start_id={start}");
    let admin = ctx.cred().capable(cap::CAP_SYS_ADMIN);
    check!(ctx, F, !admin => Errno::EPERM, "walking ids needs CAP_SYS_ADMIN", "cap_sys_admin={admin}");
    let next = ctx
        .kernel
        .map_idr()
        .ids()
        .into_iter()
        .find(|id| *id > start);
    let Some(next) = next else {
        return Err(ctx.fail(
            F,
            FILE,
            "idr_get_next(): a map id above start_id",
            Errno::ENOENT,
            || format!("no map id above {start}"),
        ));
    };
    // put_user() into the caller's attr.
    ctx.copy_to_user(
        F,
        "put_user(next_id): the attr is writable",
        uattr.wrapping_add(off::NEXT_ID),
        &next.to_le_bytes(),
    )
}

/// `bpf_map_get_fd_by_id()`: a new fd for the map with that id.
pub fn bpf_map_get_fd_by_id(ctx: &mut Ctx, attr: &Attr) -> Result<i32, Errno> {
    const F: &str = "bpf_map_get_fd_by_id";
    ctx.enter(F, FILE, String::new);
    let open_flags = attr.u32(off::OPEN_FLAGS);
    check_attr(ctx, F, BpfCmd::MAP_GET_FD_BY_ID, attr)?;
    check!(ctx, F, open_flags & !BPF_OBJ_FLAG_MASK != 0 => Errno::EINVAL,
        "open_flags within BPF_F_RDONLY | BPF_F_WRONLY", "open_flags={open_flags:#x}");
    let admin = ctx.cred().capable(cap::CAP_SYS_ADMIN);
    check!(ctx, F, !admin => Errno::EPERM, "opening by id needs CAP_SYS_ADMIN", "cap_sys_admin={admin}");
    let f_mode = bpf_get_file_flag(ctx, open_flags)?;
    let id = attr.u32(off::MAP_ID);
    let map = ctx.kernel.map_idr().get(id);
    let Some(map) = map else {
        return Err(
            ctx.fail(F, FILE, "a live map has this id", Errno::ENOENT, || {
                format!("no map with id {id}")
            }),
        );
    };
    let fd = ctx.process.fds().install(File {
        kind: FileKind::BpfMap(map),
        f_mode,
    });
    fd.map_err(|e| {
        ctx.fail(
            "bpf_map_new_fd",
            FILE,
            "a free fd below RLIMIT_NOFILE",
            e,
            String::new,
        )
    })
}

/// `bpf_obj_get_info_by_fd()`: dispatch on what the fd is.
pub fn bpf_obj_get_info_by_fd(ctx: &mut Ctx, attr: &Attr, uattr: u64) -> Result<(), Errno> {
    const F: &str = "bpf_obj_get_info_by_fd";
    ctx.enter(F, FILE, String::new);
    check_attr(ctx, F, BpfCmd::OBJ_GET_INFO_BY_FD, attr)?;
    let fd = attr.u32(off::INFO_BPF_FD);
    let file = ctx.process.fds().get(fd);
    let Some(file) = file else {
        // Not EBADF: this command says EBADFD for an fd that is not open.
        return Err(ctx.fail(F, FILE, "the fd is open", Errno::EBADFD, || {
            format!("fd {} is not open", fd as i32)
        }));
    };
    match file.map() {
        Some(map) => bpf_map_get_info_by_fd(ctx, &map.clone(), attr, uattr),
        None => Err(ctx.fail(
            F,
            FILE,
            "the fd is a bpf prog, map, BTF, link or token",
            Errno::EINVAL,
            || format!("fd {} is {}", fd as i32, file.describe()),
        )),
    }
}

/// `struct bpf_map_info` field offsets.
mod info {
    pub const TYPE: usize = 0;
    pub const ID: usize = 4;
    pub const KEY_SIZE: usize = 8;
    pub const VALUE_SIZE: usize = 12;
    pub const MAX_ENTRIES: usize = 16;
    pub const MAP_FLAGS: usize = 20;
    pub const NAME: usize = 24;
    pub const BTF_VMLINUX_VALUE_TYPE_ID: usize = 44;
    pub const BTF_ID: usize = 64;
    pub const BTF_KEY_TYPE_ID: usize = 68;
    pub const BTF_VALUE_TYPE_ID: usize = 72;
    pub const MAP_EXTRA: usize = 80;
    pub const HASH: usize = 88;
    pub const HASH_SIZE: usize = 96;
}

/// `bpf_map_get_info_by_fd()`.
fn bpf_map_get_info_by_fd(
    ctx: &mut Ctx,
    map: &BpfMap,
    attr: &Attr,
    uattr: u64,
) -> Result<(), Errno> {
    const F: &str = "bpf_map_get_info_by_fd";
    let uinfo = attr.u64(off::INFO_INFO);
    let info_len = attr.u32(off::INFO_LEN);
    let size = ctx.profile().map_info_size;
    let tail_from = ctx.profile().map_info_tail_from;
    bpf_check_uarg_tail_zero(ctx, uinfo, tail_from as usize, info_len)?;
    let len = info_len.min(size) as usize;
    // Room for every field the model knows, whatever the profile's struct size: only `len`
    // bytes (at most that size) go back to the caller.
    let mut buf = vec![0u8; (size as usize).max(info::HASH_SIZE + 4)];
    if ctx.profile().map_info_copy_in {
        // 6.18+: start from the caller's bytes, so fields the kernel leaves alone echo them.
        let mine = ctx.copy_from_user(
            F,
            "the info buffer is readable (it is copied in first)",
            uinfo,
            len,
        )?;
        buf[..len].copy_from_slice(&mine);
    }
    let d = &map.desc;
    let put32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    put32(&mut buf, info::TYPE, d.map_type.0);
    put32(&mut buf, info::ID, map.id());
    put32(&mut buf, info::KEY_SIZE, d.key_size);
    put32(&mut buf, info::VALUE_SIZE, d.value_size);
    put32(&mut buf, info::MAX_ENTRIES, d.max_entries);
    put32(&mut buf, info::MAP_FLAGS, d.map_flags);
    buf[info::MAP_EXTRA..info::MAP_EXTRA + 8].copy_from_slice(&d.map_extra.to_le_bytes());
    buf[info::NAME..info::NAME + 16].copy_from_slice(&d.name);
    // No BTF in the model: btf_id and the type ids are only filled for a map with BTF.
    put32(&mut buf, info::BTF_VMLINUX_VALUE_TYPE_ID, 0);
    let _ = (info::BTF_ID, info::BTF_KEY_TYPE_ID, info::BTF_VALUE_TYPE_ID);
    if ctx.profile().map_info_copy_in {
        let hash = u64::from_le_bytes(buf[info::HASH..info::HASH + 8].try_into().unwrap_or([0; 8]));
        let hash_size = u32::from_le_bytes(
            buf[info::HASH_SIZE..info::HASH_SIZE + 4]
                .try_into()
                .unwrap_or([0; 4]),
        );
        if hash != 0 {
            let digest = map.ops().map_get_hash(d);
            check!(ctx, F, digest.is_none() => Errno::EINVAL,
                "the map type has map_get_hash (only ARRAY)",
                "map_type={:?} has_map_get_hash={}", d.map_type, digest.is_some());
            check!(ctx, F, hash_size != 32 => Errno::EINVAL, "hash_size is 32 (SHA-256)", "hash_size={hash_size}");
            check!(ctx, F, !map.is_frozen() => Errno::EPERM, "the map is frozen (its contents are final)", "frozen={}", map.is_frozen());
            ctx.copy_to_user(
                F,
                "copy_to_user(hash): the hash buffer is writable",
                hash,
                &digest.unwrap_or([0; 32]),
            )?;
        } else {
            check!(ctx, F, hash_size != 0 => Errno::EINVAL, "no hash_size without a hash buffer", "hash_size={hash_size}");
        }
    }
    ctx.copy_to_user(
        F,
        "copy_to_user(info): the info buffer is writable",
        uinfo,
        &buf[..len],
    )?;
    ctx.copy_to_user(
        F,
        "put_user(info_len): the attr is writable",
        uattr.wrapping_add(off::INFO_LEN as u64),
        &(len as u32).to_le_bytes(),
    )
}

/// `bpf_map_show_fdinfo()` with the VFS lines before it: `/proc/<pid>/fdinfo/<fd>` of a map.
/// `mnt_id` and `ino` are the anon inode's; the model reports 0 for both.
pub fn bpf_map_show_fdinfo(map: &BpfMap, file: &File, profile: &KernelProfile) -> String {
    let d = &map.desc;
    let memlock = if profile.fdinfo_memlock_is_footprint {
        bpf_map_memory_footprint(d, profile)
    } else {
        map.mem_usage()
    };
    let o_cloexec = 0o2000000;
    format!(
        "pos:\t0\nflags:\t0{:o}\nmnt_id:\t0\nino:\t0\nmap_type:\t{}\nkey_size:\t{}\nvalue_size:\t{}\n\
         max_entries:\t{}\nmap_flags:\t{:#x}\nmap_extra:\t{:#x}\nmemlock:\t{}\nmap_id:\t{}\nfrozen:\t{}\n",
        o_cloexec | file.f_mode.o_flags(),
        d.map_type.0,
        d.key_size,
        d.value_size,
        d.max_entries,
        d.map_flags,
        d.map_extra,
        memlock,
        map.id(),
        map.is_frozen() as u8,
    )
}

/// `bpf_map_memory_footprint()` (6.1): fdinfo's memlock estimated alike for every type, as
/// `max_entries` slots of `key_size` plus the syscall value size, each rounded up to 8 bytes,
/// the total rounded up to whole pages. The slot size is a 32-bit sum in the kernel.
fn bpf_map_memory_footprint(d: &MapDesc, profile: &KernelProfile) -> u64 {
    let value = bpf_map_value_size(d, profile.num_possible_cpus) as u32;
    let slot = round_up(d.key_size.wrapping_add(value) as u64, 8) as u32;
    round_up(d.max_entries as u64 * slot as u64, profile.page_size as u64)
}

/// Offsets of BPF_OBJ_PIN / BPF_OBJ_GET.
mod pin {
    pub const PATHNAME: usize = 0;
    pub const BPF_FD: usize = 8;
    pub const FILE_FLAGS: usize = 12;
    pub const PATH_FD: usize = 16;
}

/// `getname()`: the NUL-terminated path at `upath` (EFAULT if unreadable, ENAMETOOLONG past
/// PATH_MAX, ENOENT if empty).
fn getname(ctx: &mut Ctx, func: &'static str, upath: u64) -> Result<String, Errno> {
    let mut out = Vec::new();
    loop {
        let b = ctx.copy_from_user(
            func,
            "strncpy_from_user(): the pathname is readable",
            upath.wrapping_add(out.len() as u64),
            1,
        )?;
        if b[0] == 0 {
            break;
        }
        out.push(b[0]);
        if out.len() >= crate::inode::PATH_MAX {
            return Err(ctx.fail(
                func,
                "fs/namei.c",
                "the pathname fits in PATH_MAX",
                Errno::ENAMETOOLONG,
                String::new,
            ));
        }
    }
    check!(ctx, func, out.is_empty() => Errno::ENOENT, "the pathname is not empty", "pathname length={}", out.len());
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The directory a relative path starts from: the cwd, or `path_fd` with BPF_F_PATH_FD.
fn path_base(
    ctx: &mut Ctx,
    func: &'static str,
    path: &str,
    dirfd: Option<u32>,
) -> Result<String, Errno> {
    let Some(fd) = dirfd.filter(|_| !path.starts_with('/')) else {
        return Ok(ctx.process.cwd());
    };
    let file = ctx.process.fds().get(fd);
    match file.map(|f| f.kind.clone()) {
        None => Err(
            ctx.fail(func, "fs/namei.c", "path_fd is open", Errno::EBADF, || {
                format!("fd {}", fd as i32)
            }),
        ),
        Some(FileKind::Dir { path }) => Ok(path),
        Some(_) => Err(ctx.fail(
            func,
            "fs/namei.c",
            "path_fd is a directory",
            Errno::ENOTDIR,
            || format!("fd {}", fd as i32),
        )),
    }
}

/// A failed path operation, reported under the fs/namei.c function that decided it.
fn path_fail(ctx: &mut Ctx, e: crate::inode::PathError, path: &str) -> Errno {
    ctx.fail(e.func, "fs/namei.c", e.rule, e.errno, || path.to_string())
}

/// `bpf_obj_pin()` and `bpf_obj_pin_user()` (kernel/bpf/inode.c).
pub fn bpf_obj_pin(ctx: &mut Ctx, attr: &Attr) -> Result<(), Errno> {
    const F: &str = "bpf_obj_pin";
    ctx.enter(F, FILE, String::new);
    let file_flags = attr.u32(pin::FILE_FLAGS);
    let path_fd = attr.u32(pin::PATH_FD);
    check_attr(ctx, F, BpfCmd::OBJ_PIN, attr)?;
    // 6.1 has no BPF_F_PATH_FD: file_flags must be 0.
    let path_fd_flag = if ctx.profile().obj_path_fd {
        BPF_F_PATH_FD
    } else {
        0
    };
    check!(ctx, F, file_flags & !path_fd_flag != 0 => Errno::EINVAL,
        "file_flags is 0 or BPF_F_PATH_FD (6.1: 0)", "file_flags={file_flags:#x}");
    check!(ctx, F, file_flags & BPF_F_PATH_FD == 0 && path_fd != 0 => Errno::EINVAL,
        "path_fd only with BPF_F_PATH_FD", "file_flags={file_flags:#x} path_fd={}", path_fd as i32);
    // bpf_fd_probe_obj(): a program, a map or a link - anything else, open or not, is EINVAL.
    let ufd = attr.u32(pin::BPF_FD);
    let file = ctx.process.fds().get(ufd);
    let Some(map) = file.as_ref().and_then(|f| f.map().cloned()) else {
        return Err(ctx.fail(
            "bpf_fd_probe_obj",
            "kernel/bpf/inode.c",
            "bpf_fd is a bpf program, map or link",
            Errno::EINVAL,
            || {
                format!(
                    "fd {} is {}",
                    ufd as i32,
                    file.map(|f| f.describe())
                        .unwrap_or_else(|| "not open".into())
                )
            },
        ));
    };
    const I: &str = "kernel/bpf/inode.c";
    let name = getname(ctx, "bpf_obj_do_pin", attr.u64(pin::PATHNAME))?;
    let dirfd = (file_flags & BPF_F_PATH_FD != 0).then_some(path_fd);
    let base = path_base(ctx, "bpf_obj_do_pin", &name, dirfd)?;
    let path = crate::inode::normalize(&base, &name);
    let cred = ctx.cred().clone();
    let vfs = ctx.kernel.vfs();
    let created = vfs.path_create(&cred, &path).cloned();
    drop(vfs);
    let dir = created.map_err(|e| path_fail(ctx, e, &path))?;
    let bpffs = matches!(dir.node, crate::inode::Node::Dir { bpffs: true });
    check!(ctx, "bpf_obj_do_pin", !bpffs => Errno::EPERM,
        "the parent directory is in a bpf filesystem", "path={path} parent_on_bpffs={bpffs}");
    // vfs_mkobj(): the pin is a new inode in the directory, 0600 of the caller.
    crate::inode::Vfs::may_create(&cred, &dir).map_err(|e| path_fail(ctx, e, &path))?;
    ctx.kernel.vfs().insert(
        path.clone(),
        crate::inode::Inode {
            node: crate::inode::Node::Map(map),
            uid: cred.uid,
            gid: cred.gid,
            mode: crate::inode::PIN_MODE,
        },
    );
    ctx.note("bpf_obj_do_pin", I, "pinned", || path);
    Ok(())
}

/// `bpf_obj_get()` and `bpf_obj_get_user()` (kernel/bpf/inode.c).
pub fn bpf_obj_get(ctx: &mut Ctx, attr: &Attr) -> Result<i32, Errno> {
    const F: &str = "bpf_obj_get";
    ctx.enter(F, FILE, String::new);
    let file_flags = attr.u32(pin::FILE_FLAGS);
    let path_fd = attr.u32(pin::PATH_FD);
    let bpf_fd = attr.u32(pin::BPF_FD);
    check_attr(ctx, F, BpfCmd::OBJ_GET, attr)?;
    // 6.1 has no BPF_F_PATH_FD: file_flags within RDONLY and WRONLY.
    let path_fd_flag = if ctx.profile().obj_path_fd {
        BPF_F_PATH_FD
    } else {
        0
    };
    check!(ctx, F, bpf_fd != 0 || file_flags & !(BPF_OBJ_FLAG_MASK | path_fd_flag) != 0 => Errno::EINVAL,
        "bpf_fd is 0 and file_flags within RDONLY, WRONLY and PATH_FD (6.1: no PATH_FD)",
        "bpf_fd={} file_flags={file_flags:#x}", bpf_fd as i32);
    check!(ctx, F, file_flags & BPF_F_PATH_FD == 0 && path_fd != 0 => Errno::EINVAL,
        "path_fd only with BPF_F_PATH_FD", "file_flags={file_flags:#x} path_fd={}", path_fd as i32);
    let f_mode = bpf_get_file_flag(ctx, file_flags)?;
    const G: &str = "bpf_obj_do_get";
    let name = getname(ctx, G, attr.u64(pin::PATHNAME))?;
    let dirfd = (file_flags & BPF_F_PATH_FD != 0).then_some(path_fd);
    let base = path_base(ctx, G, &name, dirfd)?;
    let path = crate::inode::normalize(&base, &name);
    let cred = ctx.cred().clone();
    let found = ctx.kernel.vfs().lookup(&cred, &path).cloned();
    let inode = found.map_err(|e| path_fail(ctx, e, &path))?;
    // path_permission(ACC_MODE(flags)): reading needs r, writing w, in the pin's own mode.
    let mask = match f_mode {
        m if m == crate::fd::FMode::RDONLY => crate::inode::MAY_READ,
        m if m == crate::fd::FMode::WRONLY => crate::inode::MAY_WRITE,
        _ => crate::inode::MAY_READ | crate::inode::MAY_WRITE,
    };
    if let Err(e) = crate::inode::generic_permission(&cred, &inode, mask) {
        return Err(ctx.fail(
            G,
            "kernel/bpf/inode.c",
            "path_permission(): the pin's mode lets the caller open it as file_flags ask",
            e,
            || {
                format!(
                    "{path}: mode {:o} uid {} gid {}",
                    inode.mode, inode.uid, inode.gid
                )
            },
        ));
    }
    let map = match inode.node {
        crate::inode::Node::Map(m) => m,
        _ => {
            return Err(ctx.fail(
                "bpf_inode_type",
                "kernel/bpf/inode.c",
                "the path is a pinned bpf object",
                Errno::EACCES,
                || path.clone(),
            ))
        }
    };
    let fd = ctx.process.fds().install(File {
        kind: FileKind::BpfMap(map),
        f_mode,
    });
    fd.map_err(|e| {
        ctx.fail(
            "bpf_map_new_fd",
            FILE,
            "a free fd below RLIMIT_NOFILE",
            e,
            String::new,
        )
    })
}
