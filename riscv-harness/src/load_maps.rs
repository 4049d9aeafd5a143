//! `bpfmodel load-maps OBJ.o`: the maps of a BPF ELF object, created as a loader would.
//!
//! Two declarations are read, as their loaders read them:
//! - SEC("maps"): the old samples/bpf `struct bpf_map_def` entries (type, key_size,
//!   value_size, max_entries, map_flags, ...), one per symbol of the section, each
//!   `section size / symbols` bytes long, as bpf_load.c's `load_elf_maps_section` sized them.
//! - SEC(".maps"): libbpf's BTF-defined maps. The `.maps` DATASEC of the object's `.BTF` lists
//!   one variable per map; its struct's members carry the attributes in their types:
//!   `__uint(name, N)` is a pointer to an array of N elements, `__type(name, T)` a pointer to T
//!   (whose size is the key or value size).
//!
//! The maps become `map_create` statements of a scenario (named after their symbols, the
//! name truncated to 15 bytes as libbpf does), so they run on the model, the host kernel or
//! both through the same runner as every scenario.

use anyhow::{bail, Context};
use object::{Object, ObjectSection, ObjectSymbol};

/// One map as the object declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    /// `maps` (bpf_map_def) or `.maps` (BTF).
    pub section: &'static str,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub numa_node: Option<u32>,
    pub map_extra: u64,
}

impl MapDef {
    /// The map as a scenario statement.
    pub fn statement(&self) -> String {
        let name: String = self.name.chars().take(15).collect();
        let t = syscall_model::uapi::MapType(self.map_type);
        let ty = t
            .short_name()
            .map_or_else(|| self.map_type.to_string(), str::to_string);
        let mut s = format!(
            "{} = map_create(type={ty}, key_size={}, value_size={}, max_entries={}, flags={}",
            ident(&self.name),
            self.key_size,
            self.value_size,
            self.max_entries,
            syscall_model::uapi::map_flags_name(self.map_flags)
        );
        if let Some(n) = self.numa_node {
            s.push_str(&format!(", numa_node={n}"));
        }
        if self.map_extra != 0 {
            s.push_str(&format!(", map_extra={}", self.map_extra));
        }
        s.push_str(&format!(", name={name:?})"));
        s
    }
}

/// A symbol name as a scenario name: letters, digits and `_`.
fn ident(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) || s.is_empty() {
        format!("m_{s}")
    } else {
        s
    }
}

/// Reads every map an object declares, SEC("maps") first, in symbol order, then SEC(".maps")
/// in DATASEC order.
pub fn read_maps(data: &[u8]) -> anyhow::Result<Vec<MapDef>> {
    let file = object::File::parse(data).context("not an ELF object")?;
    if file.architecture() != object::Architecture::Bpf {
        bail!(
            "not a BPF object (architecture {:?}; compile with clang -target bpf)",
            file.architecture()
        );
    }
    let mut maps = Vec::new();
    if let Some(sec) = file.section_by_name("maps") {
        maps.extend(legacy_maps(&file, &sec)?);
    }
    if file.section_by_name(".maps").is_some() {
        let btf = file
            .section_by_name(".BTF")
            .context("the object has a .maps section but no .BTF (compile with -g)")?;
        let btf = btf.data().context("reading .BTF")?;
        maps.extend(btf_maps(btf).context("reading the .maps declarations from .BTF")?);
    }
    Ok(maps)
}

/// bpf_load.c's reading of SEC("maps").
fn legacy_maps(file: &object::File, sec: &object::Section) -> anyhow::Result<Vec<MapDef>> {
    let data = sec.data().context("reading the maps section")?;
    let mut syms: Vec<(u64, String)> = file
        .symbols()
        .filter(|s| s.section_index() == Some(sec.index()) && !s.name().unwrap_or("").is_empty())
        .filter(|s| s.kind() != object::SymbolKind::Section)
        .map(|s| (s.address(), s.name().unwrap_or("").to_string()))
        .collect();
    syms.sort();
    if syms.is_empty() {
        return Ok(Vec::new());
    }
    let each = data.len() / syms.len();
    if each < 16 {
        bail!(
            "SEC(\"maps\") holds {} bytes for {} maps: less than the 16 bytes of a bpf_map_def",
            data.len(),
            syms.len()
        );
    }
    let word = |b: &[u8], i: usize| -> u32 {
        b.get(i * 4..i * 4 + 4)
            .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
    };
    let mut out = Vec::new();
    for (off, name) in syms {
        let start = usize::try_from(off).unwrap_or(usize::MAX);
        let def = data
            .get(start..start.saturating_add(each))
            .with_context(|| format!("map {name} lies outside SEC(\"maps\")"))?;
        out.push(MapDef {
            name,
            section: "maps",
            map_type: word(def, 0),
            key_size: word(def, 1),
            value_size: word(def, 2),
            max_entries: word(def, 3),
            map_flags: word(def, 4),
            // bpf_load.c's longer bpf_load_map_def: inner_map_idx (5), numa_node (6), used
            // with BPF_F_NUMA_NODE.
            numa_node: (each >= 28 && word(def, 4) & 4 != 0).then(|| word(def, 6)),
            map_extra: 0,
        });
    }
    Ok(out)
}

/// The BTF kinds this reader needs (`BTF_KIND_*`).
mod kind {
    pub const INT: u32 = 1;
    pub const PTR: u32 = 2;
    pub const ARRAY: u32 = 3;
    pub const STRUCT: u32 = 4;
    pub const UNION: u32 = 5;
    pub const ENUM: u32 = 6;
    pub const FWD: u32 = 7;
    pub const TYPEDEF: u32 = 8;
    pub const VOLATILE: u32 = 9;
    pub const CONST: u32 = 10;
    pub const RESTRICT: u32 = 11;
    pub const FUNC: u32 = 12;
    pub const FUNC_PROTO: u32 = 13;
    pub const VAR: u32 = 14;
    pub const DATASEC: u32 = 15;
    pub const FLOAT: u32 = 16;
    pub const DECL_TAG: u32 = 17;
    pub const TYPE_TAG: u32 = 18;
    pub const ENUM64: u32 = 19;
}

/// One BTF type: its name, kind, `size_or_type` and trailing records (as u32 words).
#[derive(Clone, Debug)]
struct BtfType {
    name: String,
    kind: u32,
    size_or_type: u32,
    extra: Vec<u32>,
}

struct Btf {
    /// Index 0 is `void`.
    types: Vec<BtfType>,
    /// The string section (names are offsets into it).
    strs: Vec<u8>,
}

impl Btf {
    fn parse(b: &[u8]) -> anyhow::Result<Btf> {
        let u16_at = |o: usize| b.get(o..o + 2).map(|w| u16::from_le_bytes([w[0], w[1]]));
        let u32_at = |o: usize| {
            b.get(o..o + 4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        };
        if u16_at(0) != Some(0xeb9f) {
            bail!("no BTF magic (0xeb9f, little-endian)");
        }
        let hdr_len = u32_at(4).context("short BTF header")? as usize;
        let type_off = u32_at(8).context("short BTF header")? as usize;
        let type_len = u32_at(12).context("short BTF header")? as usize;
        let str_off = u32_at(16).context("short BTF header")? as usize;
        let str_len = u32_at(20).context("short BTF header")? as usize;
        let types_at = hdr_len.saturating_add(type_off);
        let strs_at = hdr_len.saturating_add(str_off);
        let strs = b
            .get(strs_at..strs_at.saturating_add(str_len))
            .context("the BTF string section lies outside .BTF")?;
        let name = |off: u32| str_at(strs, off);
        let end = types_at.saturating_add(type_len);
        if end > b.len() {
            bail!("the BTF type section lies outside .BTF");
        }
        let mut types = vec![BtfType {
            name: "void".into(),
            kind: 0,
            size_or_type: 0,
            extra: Vec::new(),
        }];
        let mut o = types_at;
        while o + 12 <= end {
            let (name_off, info, size_or_type) = (
                u32_at(o).unwrap_or(0),
                u32_at(o + 4).unwrap_or(0),
                u32_at(o + 8).unwrap_or(0),
            );
            o += 12;
            let k = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let words = match k {
                kind::INT | kind::VAR | kind::DECL_TAG => 1,
                kind::ARRAY => 3,
                kind::STRUCT | kind::UNION | kind::DATASEC | kind::ENUM64 => 3 * vlen,
                kind::ENUM | kind::FUNC_PROTO => 2 * vlen,
                kind::PTR
                | kind::FWD
                | kind::TYPEDEF
                | kind::VOLATILE
                | kind::CONST
                | kind::RESTRICT
                | kind::FUNC
                | kind::FLOAT
                | kind::TYPE_TAG => 0,
                other => bail!("BTF type {} has an unknown kind {other}", types.len()),
            };
            let mut extra = Vec::with_capacity(words);
            for _ in 0..words {
                extra.push(u32_at(o).context("a BTF type runs past its section")?);
                o += 4;
            }
            types.push(BtfType {
                name: name(name_off),
                kind: k,
                size_or_type,
                extra,
            });
        }
        Ok(Btf {
            types,
            strs: strs.to_vec(),
        })
    }

    fn name(&self, off: u32) -> String {
        str_at(&self.strs, off)
    }

    fn get(&self, id: u32) -> anyhow::Result<&BtfType> {
        self.types
            .get(id as usize)
            .with_context(|| format!("BTF type id {id} does not exist"))
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn skip_mods(&self, mut id: u32) -> anyhow::Result<u32> {
        for _ in 0..64 {
            let t = self.get(id)?;
            match t.kind {
                kind::TYPEDEF | kind::VOLATILE | kind::CONST | kind::RESTRICT | kind::TYPE_TAG => {
                    id = t.size_or_type
                }
                _ => return Ok(id),
            }
        }
        bail!("BTF type {id}: a loop of typedefs")
    }

    /// `btf__resolve_size`: the byte size of a type.
    fn size(&self, id: u32) -> anyhow::Result<u64> {
        self.size_within(id, 32)
    }

    /// [`Btf::size`] through at most `depth` nested arrays (a malformed object may loop).
    fn size_within(&self, id: u32, depth: u32) -> anyhow::Result<u64> {
        if depth == 0 {
            bail!("BTF type {id}: arrays nested too deep (a loop?)");
        }
        let t = self.get(self.skip_mods(id)?)?;
        Ok(match t.kind {
            kind::INT | kind::STRUCT | kind::UNION | kind::ENUM | kind::ENUM64 | kind::FLOAT => {
                u64::from(t.size_or_type)
            }
            kind::PTR => 8,
            kind::ARRAY => {
                let elem = t.extra.first().copied().unwrap_or(0);
                let n = t.extra.get(2).copied().unwrap_or(0);
                self.size_within(elem, depth - 1)?
                    .saturating_mul(u64::from(n))
            }
            other => bail!("BTF type {id} (kind {other}) has no size"),
        })
    }

    /// `__uint(name, N)`: a pointer to an array of N elements; N.
    fn uint_attr(&self, member_type: u32, what: &str) -> anyhow::Result<u32> {
        let p = self.get(self.skip_mods(member_type)?)?;
        if p.kind != kind::PTR {
            bail!("{what} is not declared with __uint (a pointer to an array)");
        }
        let a = self.get(self.skip_mods(p.size_or_type)?)?;
        if a.kind != kind::ARRAY {
            bail!("{what} is not declared with __uint (a pointer to an array)");
        }
        Ok(a.extra.get(2).copied().unwrap_or(0))
    }

    /// `__type(name, T)`: a pointer to T; sizeof(T).
    fn type_attr(&self, member_type: u32, what: &str) -> anyhow::Result<u32> {
        let p = self.get(self.skip_mods(member_type)?)?;
        if p.kind != kind::PTR {
            bail!("{what} is not declared with __type (a pointer to the type)");
        }
        u32::try_from(self.size(p.size_or_type)?).with_context(|| format!("{what} is too big"))
    }
}

/// libbpf's reading of SEC(".maps") (`bpf_object__init_user_btf_map`).
fn btf_maps(data: &[u8]) -> anyhow::Result<Vec<MapDef>> {
    let btf = Btf::parse(data)?;
    let Some(sec) = btf
        .types
        .iter()
        .find(|t| t.kind == kind::DATASEC && t.name == ".maps")
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for var_info in sec.extra.chunks(3) {
        let var = btf.get(var_info[0])?;
        if var.kind != kind::VAR {
            bail!("entry {} of .maps is not a variable", var_info[0]);
        }
        let name = var.name.clone();
        let def = btf.get(btf.skip_mods(var.size_or_type)?)?;
        if def.kind != kind::STRUCT {
            bail!("map {name}: its definition is not a struct");
        }
        let mut m = MapDef {
            name: name.clone(),
            section: ".maps",
            map_type: 0,
            key_size: 0,
            value_size: 0,
            max_entries: 0,
            map_flags: 0,
            numa_node: None,
            map_extra: 0,
        };
        for member in def.extra.chunks(3) {
            let field = btf.name(member[0]);
            let what = format!("map {name}: {field}");
            let ty = member[1];
            match field.as_str() {
                "type" => m.map_type = btf.uint_attr(ty, &what)?,
                "max_entries" => m.max_entries = btf.uint_attr(ty, &what)?,
                "map_flags" => m.map_flags = btf.uint_attr(ty, &what)?,
                "numa_node" => m.numa_node = Some(btf.uint_attr(ty, &what)?),
                "key_size" => m.key_size = btf.uint_attr(ty, &what)?,
                "value_size" => m.value_size = btf.uint_attr(ty, &what)?,
                "map_extra" => m.map_extra = u64::from(btf.uint_attr(ty, &what)?),
                "key" => m.key_size = btf.type_attr(ty, &what)?,
                "value" => m.value_size = btf.type_attr(ty, &what)?,
                // Pinning, inner maps (`values`) and the rest are the loader's business after
                // BPF_MAP_CREATE, or need programs: not map attributes.
                _ => {}
            }
        }
        out.push(m);
    }
    Ok(out)
}

/// The NUL-terminated string at `off` of a BTF string section.
fn str_at(strs: &[u8], off: u32) -> String {
    let s = strs.get(off as usize..).unwrap_or(&[]);
    let end = s.iter().position(|c| *c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end]).into_owned()
}

/// The scenario that creates the object's maps: a comment naming the object, then one
/// `map_create` per map.
pub fn scenario_text(object: &str, maps: &[MapDef]) -> String {
    let mut s = format!("# The maps of {object}, created as their loader would.\n");
    for m in maps {
        s.push_str(&format!("# {} (SEC(\"{}\"))\n", m.name, m.section));
        s.push_str(&m.statement());
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .BTF section of `types` (each: name_off, info, size_or_type, extra words) and no
    /// strings but the empty one.
    fn btf(types: &[&[u32]]) -> Vec<u8> {
        let body: Vec<u8> = types
            .iter()
            .flat_map(|t| t.iter().flat_map(|w| w.to_le_bytes()))
            .collect();
        let mut b = Vec::new();
        b.extend(0xeb9fu16.to_le_bytes());
        b.extend([1u8, 0]);
        for w in [24u32, 0, body.len() as u32, body.len() as u32, 1] {
            b.extend(w.to_le_bytes());
        }
        b.extend(&body);
        b.push(0);
        b
    }

    #[test]
    fn a_self_referencing_array_is_an_error_not_a_stack_overflow() {
        // Type 1: an array of type 1.
        let b = btf(&[&[0, 3 << 24, 0, 1, 1, 4]]);
        let parsed = Btf::parse(&b).expect("parses");
        let e = parsed.size(1).unwrap_err();
        assert!(format!("{e}").contains("nested too deep"), "{e}");
    }

    #[test]
    fn truncated_or_foreign_btf_is_refused() {
        assert!(Btf::parse(b"\x9f\xeb").is_err());
        assert!(Btf::parse(b"not btf at all, really").is_err());
        let mut b = btf(&[&[0, 1 << 24, 4, 32]]);
        b.truncate(30);
        assert!(Btf::parse(&b).is_err());
    }
}
