//! kernel/bpf/map_in_map.c: the inner-map template of ARRAY_OF_MAPS and HASH_OF_MAPS, and the
//! check that a map stored in one matches it.

use crate::bpf_types::{map_meta_equal_kind, MetaEqual};
use crate::ctx::Ctx;
use crate::errno::Errno;
use crate::map::BpfMap;
use crate::syscall::bpf_map_get;
use crate::uapi::{map_flags::BPF_F_INNER_MAP, MapType};
use std::sync::Arc;

const FILE: &str = "kernel/bpf/map_in_map.c";

/// What `bpf_map_meta_alloc` copies from the template map (`inner_map_meta`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InnerMapMeta {
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub map_flags: u32,
    pub max_entries: u32,
    /// Which `map_meta_equal` the template's type has.
    pub equal: MetaEqual,
}

/// `bpf_map_meta_alloc(inner_map_fd)`.
pub fn bpf_map_meta_alloc(ctx: &mut Ctx, inner_map_ufd: u32) -> Result<InnerMapMeta, Errno> {
    const F: &str = "bpf_map_meta_alloc";
    ctx.enter(F, FILE, || format!("inner_map_fd={}", inner_map_ufd as i32));
    let fd = bpf_map_get(ctx, F, inner_map_ufd)?;
    let inner = fd.parts().1.clone();
    if inner.desc.inner_meta.is_some() {
        return Err(ctx.fail(
            F,
            FILE,
            "the template is not itself a map-in-map (one level only)",
            Errno::EINVAL,
            || format!("{:?}", inner.desc.map_type),
        ));
    }
    if inner.desc.excl {
        return Err(ctx.fail(
            F,
            FILE,
            "the template is not an exclusive map",
            Errno::ENOTSUPP,
            String::new,
        ));
    }
    let equal = map_meta_equal_kind(inner.desc.map_type, ctx.profile());
    if equal == MetaEqual::None {
        return Err(ctx.fail(
            F,
            FILE,
            "the template's type has map_meta_equal",
            Errno::ENOTSUPP,
            || format!("{:?} has none", inner.desc.map_type),
        ));
    }
    let d = &inner.desc;
    Ok(InnerMapMeta {
        map_type: d.map_type,
        key_size: d.key_size,
        value_size: d.value_size,
        map_flags: d.map_flags,
        max_entries: d.max_entries,
        equal,
    })
}

impl InnerMapMeta {
    /// The template type's `map_meta_equal(meta, inner)`: `bpf_map_meta_equal` compares type,
    /// sizes and flags; `array_map_meta_equal` also max_entries, unless BPF_F_INNER_MAP.
    pub fn equal(&self, m: &BpfMap) -> bool {
        let d = &m.desc;
        let base = self.map_type == d.map_type
            && self.key_size == d.key_size
            && self.value_size == d.value_size
            && self.map_flags == d.map_flags;
        match self.equal {
            MetaEqual::Array => {
                base && (self.map_flags & BPF_F_INNER_MAP != 0 || self.max_entries == d.max_entries)
            }
            _ => base,
        }
    }
}

/// `bpf_map_fd_get_ptr()`: the map behind a value fd, if it matches the template.
pub fn bpf_map_fd_get_ptr(
    ctx: &mut Ctx,
    meta: &InnerMapMeta,
    ufd: u32,
) -> Result<Arc<BpfMap>, Errno> {
    const F: &str = "bpf_map_fd_get_ptr";
    let fd = bpf_map_get(ctx, F, ufd)?;
    let inner = fd.parts().1.clone();
    if inner.desc.excl {
        return Err(ctx.fail(
            F,
            FILE,
            "the map is not an exclusive map",
            Errno::ENOTSUPP,
            String::new,
        ));
    }
    if !meta.equal(&inner) {
        return Err(ctx.fail(F, FILE, "map_meta_equal(): the map matches the inner-map template", Errno::EINVAL, || {
            format!(
                "template {:?} key {} value {} flags {:#x} max {}; map {:?} key {} value {} flags {:#x} max {}",
                meta.map_type, meta.key_size, meta.value_size, meta.map_flags, meta.max_entries,
                inner.desc.map_type, inner.desc.key_size, inner.desc.value_size, inner.desc.map_flags,
                inner.desc.max_entries
            )
        }));
    }
    Ok(inner)
}
