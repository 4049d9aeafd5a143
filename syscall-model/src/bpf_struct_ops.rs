//! kernel/bpf/bpf_struct_ops.c: BPF_MAP_TYPE_STRUCT_OPS, a map whose one value is a kernel
//! struct of function pointers (`struct bpf_struct_ops_tcp_congestion_ops` and the like).
//!
//! The value type is named by `btf_vmlinux_value_type_id`, an id in the kernel's vmlinux BTF
//! (or, with BPF_F_VTYPE_BTF_OBJ_FD, in a module's BTF given by `value_type_btf_obj_fd`). The
//! model's vmlinux BTF holds only the struct_ops value types of the profile
//! ([`KernelProfile::struct_ops_value_types`](crate::profile::KernelProfile)), under ids of its
//! own ([`btf_vmlinux_type_id`]); a scenario names them with `btf_id(NAME)`, which each backend
//! resolves in its own kernel's BTF.
//!
//! Creation always ends in an error in the model: after the allocation `map_create` wants
//! `btf_fd` to be a BTF object the program loaded, and the model has none. So no struct_ops map
//! ever reaches the element commands.

use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::profile::KernelProfile;
use crate::uapi::{map_flags::*, MapCreateAttr};

const FILE: &str = "kernel/bpf/bpf_struct_ops.c";

/// The first BTF id the model gives its vmlinux struct_ops value types (far past every id of
/// a real vmlinux, so a scenario's raw small ids such as 1 are never one of them).
const MODEL_BTF_ID_BASE: u32 = 0x0100_0000;

/// The id of a vmlinux BTF type in the model's BTF: only the profile's struct_ops value types
/// exist there.
pub fn btf_vmlinux_type_id(profile: &KernelProfile, name: &str) -> Option<u32> {
    profile
        .struct_ops_value_types
        .iter()
        .position(|(n, _)| *n == name)
        .map(|i| MODEL_BTF_ID_BASE + i as u32)
}

/// `bpf_struct_ops_find_value(btf_vmlinux, value_id)` (kernel/bpf/btf.c): the value type's
/// name and size, if the id is one of the registered struct_ops value types.
fn bpf_struct_ops_find_value(
    profile: &KernelProfile,
    value_id: u32,
) -> Option<(&'static str, u32)> {
    let i = value_id.checked_sub(MODEL_BTF_ID_BASE)? as usize;
    profile.struct_ops_value_types.get(i).copied()
}

/// `bpf_struct_ops_map_alloc_check()`.
pub fn bpf_struct_ops_map_alloc_check(ctx: &mut Ctx, attr: &MapCreateAttr) -> Result<(), Errno> {
    const F: &str = "bpf_struct_ops_map_alloc_check";
    ctx.enter(F, FILE, String::new);
    // LINK and VTYPE_BTF_OBJ_FD on 6.12 and later; 6.1 takes no flag at all.
    let allowed = ctx.profile().struct_ops_map_flags;
    check!(ctx, F, attr.key_size != 4 || attr.max_entries != 1
            || attr.map_flags & !allowed != 0
            || attr.btf_vmlinux_value_type_id == 0 => Errno::EINVAL,
        "key_size 4, max_entries 1, map_flags within the kernel's struct_ops flags (LINK and VTYPE_BTF_OBJ_FD; none on 6.1), and a btf_vmlinux_value_type_id",
        "key_size={} max_entries={} map_flags={:#x} btf_vmlinux_value_type_id={}",
        attr.key_size, attr.max_entries, attr.map_flags, attr.btf_vmlinux_value_type_id);
    Ok(())
}

/// `bpf_struct_ops_map_alloc()`.
pub fn bpf_struct_ops_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "bpf_struct_ops_map_alloc";
    ctx.enter(F, FILE, String::new);
    if attr.has(BPF_F_VTYPE_BTF_OBJ_FD) {
        // btf_get_by_fd(value_type_btf_obj_fd): the value type lives in a module's BTF. The
        // model loads no BTF, so whatever the fd is, it is not one.
        let fd = attr.value_type_btf_obj_fd;
        let file = ctx.process.fds().get(fd);
        return Err(match file {
            None => ctx.fail(
                "btf_get_by_fd",
                "kernel/bpf/btf.c",
                "value_type_btf_obj_fd is open",
                Errno::EBADF,
                || format!("fd {} is not open", fd as i32),
            ),
            Some(f) => ctx.fail(
                "btf_get_by_fd",
                "kernel/bpf/btf.c",
                "value_type_btf_obj_fd is a BTF object (of a module)",
                Errno::EINVAL,
                || format!("fd {} is {}", fd as i32, f.describe()),
            ),
        });
    }
    // bpf_get_btf_vmlinux(): every profiled kernel has CONFIG_DEBUG_INFO_BTF.
    let id = attr.btf_vmlinux_value_type_id;
    let found = bpf_struct_ops_find_value(ctx.profile(), id);
    let Some((name, size)) = found else {
        return Err(ctx.fail(
            F,
            FILE,
            "btf_vmlinux_value_type_id is a struct_ops value type of the vmlinux BTF",
            Errno::ENOTSUPP,
            || format!("id {id} is no registered bpf_struct_ops_* type"),
        ));
    };
    check!(ctx, F, attr.value_size != size => Errno::EINVAL,
        "value_size is the size of the struct_ops value type",
        "value_size={} sizeof(struct {name})={size}", attr.value_size);
    Ok((MapDesc::from_attr(attr), Box::new(StructOpsMap)))
}

/// `struct bpf_struct_ops_map`. `map_create` rejects every btf_fd of the model right after the
/// allocation, so none of these ever runs; they only complete the ops table.
struct StructOpsMap;

impl BpfMapOps for StructOpsMap {
    fn map_lookup_elem_sys(
        &mut self,
        _ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &mut [u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(Errno::ENOENT)
    }

    fn map_update_elem(
        &mut self,
        _ctx: &mut Ctx,
        _m: &MapDesc,
        _k: &[u8],
        _v: &[u8],
        _f: u64,
    ) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    fn map_delete_elem(&mut self, _ctx: &mut Ctx, _m: &MapDesc, _k: &[u8]) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }

    fn map_get_next_key(
        &mut self,
        _ctx: &mut Ctx,
        _m: &MapDesc,
        _k: Option<&[u8]>,
        _n: &mut [u8],
    ) -> Result<(), Errno> {
        Err(Errno::ENOENT)
    }

    fn map_mem_usage(&self, _map: &MapDesc) -> u64 {
        0
    }
}
