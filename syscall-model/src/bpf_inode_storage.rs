//! kernel/bpf/bpf_inode_storage.c: BPF_MAP_TYPE_INODE_STORAGE, a value per inode, keyed from
//! user space by a file's fd. The type exists with CONFIG_BPF_LSM, and its maps only when the
//! BPF LSM was initialized at boot; the rest of creation is the shared local storage path
//! ([`crate::bpf_local_storage`]), which the model can never finish (it needs BTF).

use crate::bpf_local_storage::bpf_local_storage_map_alloc;
use crate::check;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::MapCreateAttr;

const FILE: &str = "kernel/bpf/bpf_inode_storage.c";

/// `inode_storage_map_alloc()`: without the BPF LSM the inode security blob has no room for
/// the storage pointer.
pub fn inode_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    const F: &str = "inode_storage_map_alloc";
    ctx.enter(F, FILE, String::new);
    let lsm = ctx.profile().bpf_lsm_initialized;
    check!(ctx, F, !lsm => Errno::EOPNOTSUPP,
        "the BPF LSM was initialized at boot (bpf in the lsm= list)", "bpf_lsm_initialized={lsm}");
    bpf_local_storage_map_alloc(ctx, attr)
}
