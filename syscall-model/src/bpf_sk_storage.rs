//! net/core/bpf_sk_storage.c: BPF_MAP_TYPE_SK_STORAGE, a value per socket, keyed from user
//! space by a socket fd. Creation is the shared local storage path
//! ([`crate::bpf_local_storage`]), which the model can never finish (it needs BTF).

use crate::bpf_local_storage::bpf_local_storage_map_alloc;
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::{BpfMapOps, MapDesc};
use crate::uapi::MapCreateAttr;

const FILE: &str = "net/core/bpf_sk_storage.c";

/// `bpf_sk_storage_map_alloc()`.
pub fn bpf_sk_storage_map_alloc(
    ctx: &mut Ctx,
    attr: &MapCreateAttr,
) -> Result<(MapDesc, Box<dyn BpfMapOps>), Errno> {
    ctx.enter("bpf_sk_storage_map_alloc", FILE, String::new);
    bpf_local_storage_map_alloc(ctx, attr)
}
