//! kernel/bpf/bpf_cgrp_storage.c: BPF_MAP_TYPE_CGRP_STORAGE, a value per cgroup, keyed from
//! user space by a cgroup directory fd (not to be confused with the older CGROUP_STORAGE of
//! [`crate::local_storage`]). Creation is the shared local storage path
//! ([`crate::bpf_local_storage`]), which the model can never finish (it needs BTF).

use crate::bpf_local_storage::bpf_local_storage_map_alloc;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::MapCreateAttr;

const FILE: &str = "kernel/bpf/bpf_cgrp_storage.c";

/// `cgroup_storage_map_alloc()` of this file.
pub fn cgroup_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("cgroup_storage_map_alloc", FILE, String::new);
    bpf_local_storage_map_alloc(ctx, attr)
}
