//! kernel/bpf/bpf_task_storage.c: BPF_MAP_TYPE_TASK_STORAGE, a value per task, keyed from
//! user space by a pidfd. Creation is the shared local storage path
//! ([`crate::bpf_local_storage`]), which the model can never finish (it needs BTF).

use crate::bpf_local_storage::bpf_local_storage_map_alloc;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::MapCreateAttr;

const FILE: &str = "kernel/bpf/bpf_task_storage.c";

/// `task_storage_map_alloc()`.
pub fn task_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("task_storage_map_alloc", FILE, String::new);
    bpf_local_storage_map_alloc(ctx, attr)
}
