//! strace-style decoding of a bpf(2) call: `bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_HASH,
//! key_size=4, value_size=8, max_entries=16, map_flags=0, ...}, 72) = 3`.
//!
//! The attr is decoded with the layout of `union bpf_attr` for its command, up to the `size`
//! the call passed (what the kernel copies). The leading fields every reader expects are always
//! shown; later ones only when they are not zero, with `...` standing for the zero ones left
//! out. Nonzero bytes past the last known field (the tail the kernel checks is zero) are shown
//! as a comment. Pointers print as addresses, as strace prints them.

use crate::exec::CallRecord;
use syscall_model::uapi::{elem_flags, map_flags, BpfCmd, MapType};
use syscall_model::Errno;

/// How a field's bytes read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    U32,
    /// A signed 32-bit number (fds that may be -1, numa_node).
    S32,
    U64,
    /// A user pointer (`__aligned_u64`).
    Ptr,
    MapType,
    MapFlags,
    /// The flags of an element command or of a batch's elements.
    ElemFlags,
    /// `char map_name[BPF_OBJ_NAME_LEN]`.
    Name,
}

impl Kind {
    fn width(self) -> usize {
        match self {
            Kind::U32 | Kind::S32 | Kind::MapType | Kind::MapFlags => 4,
            Kind::U64 | Kind::Ptr | Kind::ElemFlags => 8,
            Kind::Name => 16,
        }
    }
}

/// A field of the attr: its name, offset and kind.
type Field = (&'static str, usize, Kind);

/// The fields of `union bpf_attr` a command reads, and how many lead (always shown).
fn layout(cmd: BpfCmd) -> Option<(&'static [Field], usize)> {
    use Kind::*;
    const MAP_CREATE: &[Field] = &[
        ("map_type", 0, MapType),
        ("key_size", 4, U32),
        ("value_size", 8, U32),
        ("max_entries", 12, U32),
        ("map_flags", 16, MapFlags),
        ("inner_map_fd", 20, U32),
        ("numa_node", 24, S32),
        ("map_name", 28, Name),
        ("map_ifindex", 44, U32),
        ("btf_fd", 48, U32),
        ("btf_key_type_id", 52, U32),
        ("btf_value_type_id", 56, U32),
        ("btf_vmlinux_value_type_id", 60, U32),
        ("map_extra", 64, U64),
        ("value_type_btf_obj_fd", 72, S32),
        ("map_token_fd", 76, S32),
        ("excl_prog_hash", 80, Ptr),
        ("excl_prog_hash_size", 88, U32),
    ];
    const ELEM: &[Field] = &[
        ("map_fd", 0, U32),
        ("key", 8, Ptr),
        ("value", 16, Ptr),
        ("flags", 24, ElemFlags),
    ];
    const NEXT_KEY: &[Field] = &[("map_fd", 0, U32), ("key", 8, Ptr), ("next_key", 16, Ptr)];
    const FREEZE: &[Field] = &[("map_fd", 0, U32)];
    const BATCH: &[Field] = &[
        ("in_batch", 0, Ptr),
        ("out_batch", 8, Ptr),
        ("keys", 16, Ptr),
        ("values", 24, Ptr),
        ("count", 32, U32),
        ("map_fd", 36, U32),
        ("elem_flags", 40, ElemFlags),
        ("flags", 48, U64),
    ];
    const OBJ: &[Field] = &[
        ("pathname", 0, Ptr),
        ("bpf_fd", 8, U32),
        ("file_flags", 12, MapFlags),
        ("path_fd", 16, S32),
    ];
    const NEXT_ID: &[Field] = &[
        ("start_id", 0, U32),
        ("next_id", 4, U32),
        ("open_flags", 8, MapFlags),
    ];
    const BY_ID: &[Field] = &[
        ("map_id", 0, U32),
        ("next_id", 4, U32),
        ("open_flags", 8, MapFlags),
    ];
    const INFO: &[Field] = &[("bpf_fd", 0, U32), ("info_len", 4, U32), ("info", 8, Ptr)];
    Some(match cmd {
        BpfCmd::MAP_CREATE => (MAP_CREATE, 5),
        BpfCmd::MAP_LOOKUP_ELEM
        | BpfCmd::MAP_UPDATE_ELEM
        | BpfCmd::MAP_DELETE_ELEM
        | BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM => (ELEM, 4),
        BpfCmd::MAP_GET_NEXT_KEY => (NEXT_KEY, 3),
        BpfCmd::MAP_FREEZE => (FREEZE, 1),
        BpfCmd::MAP_LOOKUP_BATCH
        | BpfCmd::MAP_LOOKUP_AND_DELETE_BATCH
        | BpfCmd::MAP_UPDATE_BATCH
        | BpfCmd::MAP_DELETE_BATCH => (BATCH, 8),
        BpfCmd::OBJ_PIN | BpfCmd::OBJ_GET => (OBJ, 3),
        BpfCmd::MAP_GET_NEXT_ID | BpfCmd::PROG_GET_NEXT_ID | BpfCmd::BTF_GET_NEXT_ID => {
            (NEXT_ID, 1)
        }
        BpfCmd::MAP_GET_FD_BY_ID => (BY_ID, 1),
        BpfCmd::OBJ_GET_INFO_BY_FD => (INFO, 3),
        _ => return None,
    })
}

fn value(kind: Kind, b: &[u8], cmd: BpfCmd) -> String {
    let u = b.iter().rev().fold(0u64, |acc, x| acc << 8 | u64::from(*x));
    match kind {
        Kind::U32 | Kind::U64 => u.to_string(),
        Kind::S32 => (u as u32 as i32).to_string(),
        Kind::Ptr if u == 0 => "NULL".into(),
        Kind::Ptr => format!("{u:#x}"),
        Kind::MapType => MapType(u as u32).full_name(),
        Kind::MapFlags => prefixed(
            u,
            "BPF_F_",
            map_flags::NAMES.iter().map(|(n, b)| (*n, u64::from(*b))),
        ),
        Kind::ElemFlags
            if u == 0
                && matches!(
                    cmd,
                    BpfCmd::MAP_UPDATE_ELEM
                        | BpfCmd::MAP_LOOKUP_ELEM
                        | BpfCmd::MAP_LOOKUP_AND_DELETE_ELEM
                ) =>
        {
            "BPF_ANY".into()
        }
        Kind::ElemFlags => prefixed(u, "BPF_", elem_flags::NAMES.iter().copied()),
        Kind::Name => {
            let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
            let mut s = String::from("\"");
            for c in &b[..end] {
                match *c {
                    b'"' | b'\\' => {
                        s.push('\\');
                        s.push(*c as char);
                    }
                    0x20..=0x7e => s.push(*c as char),
                    _ => s.push_str(&format!("\\x{c:02x}")),
                }
            }
            s.push('"');
            s
        }
    }
}

/// Flag bits by name with `prefix`, unknown bits in hex, `0` for none.
fn prefixed(flags: u64, prefix: &str, names: impl Iterator<Item = (&'static str, u64)>) -> String {
    if flags == 0 {
        return "0".into();
    }
    let mut rest = flags;
    let mut parts = Vec::new();
    for (n, bit) in names {
        if bit != 0 && rest & bit == bit {
            parts.push(format!("{prefix}{n}"));
            rest &= !bit;
        }
    }
    if rest != 0 {
        parts.push(format!("{rest:#x}"));
    }
    parts.join("|")
}

/// The attr as strace shows it: `{map_fd=3, key=0x7f0000000ffc, ...}`, or its address when the
/// runner did not write it (`NULL`, an unmapped address).
pub fn attr(cmd: BpfCmd, bytes: Option<&[u8]>, addr: u64, size: u32) -> String {
    let Some(bytes) = bytes else {
        return if addr == 0 {
            "NULL".into()
        } else {
            format!("{addr:#x}")
        };
    };
    let seen = &bytes[..bytes.len().min(size as usize)];
    let Some((fields, lead)) = layout(cmd) else {
        // A command without a layout here: its bytes, as strace prints an undecoded struct.
        return format!("{addr:#x} /* {} */", short_hex(seen));
    };
    let mut parts = Vec::new();
    let mut elided = false;
    let mut end = 0;
    for (i, (name, off, kind)) in fields.iter().enumerate() {
        let w = kind.width();
        if off + w > seen.len() {
            break;
        }
        end = off + w;
        let b = &seen[*off..off + w];
        if i >= lead && b.iter().all(|x| *x == 0) {
            elided = true;
            continue;
        }
        parts.push(format!("{name}={}", value(*kind, b, cmd)));
    }
    if elided {
        parts.push("...".into());
    }
    // Bytes between the fields (padding) and past the last one: the kernel wants them zero.
    let stray: Vec<usize> = (0..seen.len())
        .filter(|i| seen[*i] != 0 && !covered(fields, *i, end))
        .collect();
    if let (Some(first), Some(last)) = (stray.first(), stray.last()) {
        parts.push(format!(
            "/* nonzero bytes at {first}..{}: {} */",
            last + 1,
            short_hex(&seen[*first..=*last])
        ));
    }
    format!("{{{}}}", parts.join(", "))
}

/// Whether byte `i` belongs to a field that lies inside the first `end` bytes.
fn covered(fields: &[Field], i: usize, end: usize) -> bool {
    fields
        .iter()
        .any(|(_, off, k)| off + k.width() <= end && (*off..off + k.width()).contains(&i))
}

fn short_hex(b: &[u8]) -> String {
    if b.len() <= 32 {
        syscall_model::trace::hex(b)
    } else {
        format!(
            "{}... ({} bytes)",
            syscall_model::trace::hex(&b[..32]),
            b.len()
        )
    }
}

/// The result as strace shows it: `= 3`, `= -1 EINVAL (Invalid argument)`.
pub fn result(r: &Result<i32, Errno>) -> String {
    match r {
        Ok(v) => format!("= {v}"),
        Err(e) => format!("= -1 {} ({})", e.symbol(), e.description()),
    }
}

/// A recorded run as strace would log it: every bpf(2) call of every statement, one a line;
/// a statement that makes none (close, mkdir, fdinfo...) as a `#` comment with its outcome.
pub fn render_run(records: &[crate::exec::StmtRecord]) -> String {
    let mut out = String::new();
    for r in records {
        if r.calls.is_empty() {
            let first = r.outcome.lines().next().unwrap_or("");
            out.push_str(&format!("# {first}\n"));
        }
        for c in &r.calls {
            out.push_str(&call(c));
            out.push('\n');
        }
    }
    out
}

/// One call: `bpf(CMD, ATTR, SIZE) = RESULT`.
pub fn call(c: &CallRecord) -> String {
    let cmd = BpfCmd(c.cmd as u32);
    let name = match cmd.short_name() {
        Some(_) => cmd.full_name(),
        None => format!("{:#x} /* BPF_??? */", c.cmd),
    };
    let mut a = attr(cmd, c.attr.as_deref(), c.attr_addr, c.size);
    // strace shows the string a pathname points to, not its address.
    if let (Some(p), true) = (&c.path, a.starts_with("{pathname=")) {
        if let Some(end) = a.find(", ").or_else(|| a.find('}')) {
            a = format!("{{pathname={p:?}{}", &a[end..]);
        }
    }
    format!("bpf({name}, {a}, {}) {}", c.size, result(&c.result))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cmd: BpfCmd, attr: Vec<u8>, size: u32, result: Result<i32, Errno>) -> CallRecord {
        CallRecord {
            cmd: cmd.0 as i32,
            attr_addr: 0x7f00_0000_0000,
            attr: Some(attr),
            size,
            result,
            path: None,
            steps: Vec::new(),
        }
    }

    #[test]
    fn map_create_shows_the_leading_fields_and_elides_zero_ones() {
        let mut a = vec![0u8; 72];
        a[0] = 1;
        a[4] = 4;
        a[8] = 8;
        a[12] = 16;
        let c = record(BpfCmd::MAP_CREATE, a, 72, Ok(3));
        assert_eq!(
            call(&c),
            "bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_HASH, key_size=4, value_size=8, \
             max_entries=16, map_flags=0, ...}, 72) = 3"
        );
    }

    #[test]
    fn names_flags_and_errors_decode() {
        let mut a = vec![0u8; 72];
        a[0] = 1;
        a[16] = 0x41;
        a[28..31].copy_from_slice(b"cnt");
        let c = record(BpfCmd::MAP_CREATE, a, 72, Err(Errno::EINVAL));
        let s = call(&c);
        assert!(
            s.contains("map_flags=BPF_F_NO_PREALLOC|BPF_F_ZERO_SEED"),
            "{s}"
        );
        assert!(s.contains("map_name=\"cnt\""), "{s}");
        assert!(s.ends_with("= -1 EINVAL (Invalid argument)"), "{s}");
    }

    #[test]
    fn element_calls_show_pointers_and_flag_names() {
        let mut a = vec![0u8; 32];
        a[0] = 3;
        a[8..16].copy_from_slice(&0x7f00_0000_0ffcu64.to_le_bytes());
        a[24] = 1;
        let c = record(BpfCmd::MAP_UPDATE_ELEM, a, 32, Err(Errno::EEXIST));
        assert_eq!(
            call(&c),
            "bpf(BPF_MAP_UPDATE_ELEM, {map_fd=3, key=0x7f0000000ffc, value=NULL, \
             flags=BPF_NOEXIST}, 32) = -1 EEXIST (File exists)"
        );
    }

    #[test]
    fn only_the_bytes_within_size_are_decoded_and_a_dirty_tail_shows() {
        let mut a = vec![0u8; 40];
        a[0] = 3;
        a[36] = 0xff;
        let short = record(BpfCmd::MAP_FREEZE, a.clone(), 4, Err(Errno::EBADF));
        assert!(call(&short).starts_with("bpf(BPF_MAP_FREEZE, {map_fd=3}, 4)"));
        let long = record(BpfCmd::MAP_FREEZE, a, 40, Err(Errno::EINVAL));
        assert!(
            call(&long).contains("/* nonzero bytes at 36..37: ff */"),
            "{}",
            call(&long)
        );
    }

    #[test]
    fn an_attr_given_as_an_address_prints_as_one() {
        let c = CallRecord {
            attr: None,
            attr_addr: 0,
            ..record(BpfCmd::MAP_CREATE, vec![], 72, Err(Errno::EFAULT))
        };
        assert_eq!(
            call(&c),
            "bpf(BPF_MAP_CREATE, NULL, 72) = -1 EFAULT (Bad address)"
        );
        let odd = record(BpfCmd(1000), vec![1, 2], 2, Err(Errno::EINVAL));
        assert!(call(&odd).starts_with("bpf(0x3e8 /* BPF_??? */, 0x7f0000000000 /* 0102 */, 2)"));
    }

    #[test]
    fn a_pathname_shows_as_the_string_it_points_to() {
        let mut a = vec![0u8; 20];
        a[0..8].copy_from_slice(&0x7f00_0000_0fe1u64.to_le_bytes());
        a[8] = 3;
        let c = CallRecord {
            path: Some("/sys/fs/bpf/counts".into()),
            ..record(BpfCmd::OBJ_PIN, a, 20, Ok(0))
        };
        assert_eq!(
            call(&c),
            "bpf(BPF_OBJ_PIN, {pathname=\"/sys/fs/bpf/counts\", bpf_fd=3, file_flags=0, ...}, 20) = 0"
        );
    }
}
