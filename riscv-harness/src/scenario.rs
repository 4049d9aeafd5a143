//! The `.bpfs` scenario format: one bpf call a line, read like an strace log.
//!
//! ```text
//! # A comment. The first comment block says what the scenario shows.
//! m = map_create(type=HASH, key_size=4, value_size=8, max_entries=2, flags=ZERO_SEED)
//! update(m, key=u32:1, value=u64:10)
//! update(m, key=u32:1, value=u64:11, flags=NOEXIST) = EEXIST   # an expected result
//! lookup(m, key=u32:1)
//! raw(cmd=1, attr=[fd(m), u32:0, ptr(u32:1), ptr(out(8)), u64:0], size=32)
//! ```
//!
//! A statement is `[name =] call(args) [= expected] [# comment]`. Arguments are positional or
//! `field=value`; `@OFFSET=literal` stores bytes at an attr offset (for CHECK_ATTR rules).
//! Values are integers (`16`, `0x10`, `-1`, `1<<16`), names (a bound fd, a constant such as
//! `HASH` or `NOEXIST`, `NULL`, `BAD` for an unmapped pointer, `never` for an fd that was never
//! opened), flag unions (`NO_PREALLOC|ZERO_SEED`), strings, and byte literals: `u8:` `u16:`
//! `u32:` `u64:` `i32:` `i64:` `be16:` `be32:` `be64:` `hex:`, `zero(N)`, `[a, b, ...]`
//! (concatenation), `fd(name)`, `ptr(literal)`, `out(N)` (a writable buffer of N bytes),
//! `ro(literal)` (a read-only buffer) and `percpu(a, b, ..)` (one slot per possible CPU).
//!
//! Errors name the file, line and column.

use std::fmt;
use std::path::{Path, PathBuf};
use syscall_model::profile::KernelVersion;

/// A parse error: `file:line:col: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.msg
        )
    }
}

impl std::error::Error for ParseError {}

/// A value as written in a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    Int(i128),
    Name(String),
    Str(Vec<u8>),
    /// `a|b|c`
    Or(Vec<Expr>),
    /// `u32:5`, `hex:00ff`: a typed literal, already encoded.
    Bytes(Vec<u8>),
    /// `[a, b]`: concatenation.
    List(Vec<Expr>),
    /// `out(8)`, `ptr(u32:1)`, `fd(m)`, `zero(4)`, `ro(..)`, `percpu(..)`.
    Call(String, Vec<Expr>),
}

/// One argument: positional, `name=value`, or `@offset=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    pub name: Option<String>,
    pub value: Expr,
    pub col: usize,
}

/// What a call is expected to return: one result, or results by kernel version
/// (`= 6.12:EINVAL 6.18:fd`: EINVAL from 6.12 on, a new fd from 6.18 on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    pub cases: Vec<(Option<KernelVersion>, ExpectValue)>,
}

impl Expect {
    /// The expectation for a kernel: the case with the highest version not above it.
    pub fn for_version(&self, v: KernelVersion) -> Option<&ExpectValue> {
        let mut best: Option<(Option<KernelVersion>, &ExpectValue)> = None;
        for (cv, e) in &self.cases {
            if cv.is_some_and(|cv| cv > v) {
                continue;
            }
            if best.is_none_or(|(bv, _)| *cv >= bv) {
                best = Some((*cv, e));
            }
        }
        best.map(|(_, e)| e)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectValue {
    /// `= 0`, `= 3`
    Value(i64),
    /// `= EEXIST`
    Errno(String),
    /// `= fd`: any new fd.
    AnyFd,
}

/// One line of a scenario that does something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub line: usize,
    /// The call as written (without the expectation and the trailing comment).
    pub text: String,
    pub bind: Option<String>,
    pub func: String,
    pub func_col: usize,
    pub args: Vec<Arg>,
    pub expect: Option<Expect>,
}

impl Stmt {
    pub fn arg(&self, name: &str) -> Option<&Arg> {
        self.args.iter().find(|a| a.name.as_deref() == Some(name))
    }

    pub fn positional(&self, i: usize) -> Option<&Arg> {
        self.args.iter().filter(|a| a.name.is_none()).nth(i)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Comment(String),
    Blank,
    Stmt(Stmt),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    pub path: PathBuf,
    /// The file name without `.bpfs`.
    pub name: String,
    pub items: Vec<Item>,
}

impl Scenario {
    pub fn stmts(&self) -> impl Iterator<Item = &Stmt> {
        self.items.iter().filter_map(|i| match i {
            Item::Stmt(s) => Some(s),
            _ => None,
        })
    }

    /// The first comment block, without the `#`.
    pub fn description(&self) -> String {
        let mut out = Vec::new();
        for i in &self.items {
            match i {
                Item::Comment(c) => out.push(c.trim_start_matches('#').trim().to_string()),
                Item::Blank if out.is_empty() => continue,
                _ => break,
            }
        }
        out.join(" ")
    }
}

/// Reads and parses a scenario file.
pub fn parse_file(path: &Path) -> Result<Scenario, ParseError> {
    let src = std::fs::read_to_string(path).map_err(|e| ParseError {
        file: path.to_path_buf(),
        line: 0,
        col: 0,
        msg: format!("cannot read: {e}"),
    })?;
    parse(path, &src)
}

/// Parses scenario text; `path` is used for error messages and the name.
pub fn parse(path: &Path, src: &str) -> Result<Scenario, ParseError> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut items = Vec::new();
    for (i, raw) in src.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            items.push(Item::Blank);
        } else if trimmed.starts_with('#') {
            items.push(Item::Comment(trimmed.to_string()));
        } else {
            let mut p = Parser {
                file: path,
                line,
                src: raw,
                chars: raw.char_indices().collect(),
                pos: 0,
            };
            items.push(Item::Stmt(p.stmt()?));
        }
    }
    Ok(Scenario {
        path: path.to_path_buf(),
        name,
        items,
    })
}

struct Parser<'a> {
    file: &'a Path,
    line: usize,
    src: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl Parser<'_> {
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, ParseError> {
        self.err_at(self.pos, msg)
    }

    fn err_at<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            file: self.file.to_path_buf(),
            line: self.line,
            col: pos + 1,
            msg: msg.into(),
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.1)
    }

    fn peek_at(&self, k: usize) -> Option<char> {
        self.chars.get(self.pos + k).map(|c| c.1)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(c) if c == ' ' || c == '\t') {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            match self.peek() {
                Some(got) => self.err(format!("expected '{c}', found '{got}'")),
                None => self.err(format!("expected '{c}', found the end of the line")),
            }
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let start = self.pos;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        if self.pos == start || self.chars[start].1.is_ascii_digit() {
            self.pos = start;
            return None;
        }
        Some(self.chars[start..self.pos].iter().map(|c| c.1).collect())
    }

    fn byte_offset(&self, pos: usize) -> usize {
        self.chars.get(pos).map(|c| c.0).unwrap_or(self.src.len())
    }

    fn stmt(&mut self) -> Result<Stmt, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let first_col = self.pos;
        let Some(first) = self.ident() else {
            return self
                .err("expected a call such as `lookup(m, key=u32:1)` or `m = map_create(...)`");
        };
        let (bind, func, func_col) = if self.eat('=') {
            let col = {
                self.skip_ws();
                self.pos
            };
            let Some(f) = self.ident() else {
                return self.err("expected a call after `name =`");
            };
            (Some(first), f, col)
        } else {
            (None, first, first_col)
        };
        if !KNOWN_CALLS.contains(&func.as_str()) {
            return self.err_at(
                func_col,
                format!("unknown call `{func}` (known: {})", KNOWN_CALLS.join(", ")),
            );
        }
        self.expect('(')?;
        let mut args = Vec::new();
        if !self.eat(')') {
            loop {
                args.push(self.arg()?);
                if self.eat(')') {
                    break;
                }
                self.expect(',')?;
            }
        }
        let text_end = self.pos;
        let text = self.src[self.byte_offset(start)..self.byte_offset(text_end)]
            .trim()
            .to_string();
        let expect = if self.eat('=') {
            let mut cases = Vec::new();
            loop {
                self.skip_ws();
                if matches!(self.peek(), None | Some('#')) {
                    break;
                }
                cases.push(self.expect_case()?);
            }
            if cases.is_empty() {
                return self.err("expected a result after `=`: an errno name, a number, or `fd`");
            }
            Some(Expect { cases })
        } else {
            None
        };
        self.skip_ws();
        match self.peek() {
            None | Some('#') => {}
            Some(c) => {
                return self.err(format!(
                    "unexpected '{c}' after the call (comments start with #)"
                ))
            }
        }
        Ok(Stmt {
            line: self.line,
            text,
            bind,
            func,
            func_col: func_col + 1,
            args,
            expect,
        })
    }

    /// `[MAJOR.MINOR:]RESULT`
    fn expect_case(&mut self) -> Result<(Option<KernelVersion>, ExpectValue), ParseError> {
        self.skip_ws();
        let at = self.pos;
        let word: String = self.chars[self.pos..]
            .iter()
            .map(|c| c.1)
            .take_while(|c| !c.is_whitespace() && *c != '#')
            .collect();
        let (version, result) = match word.split_once(':') {
            Some((v, r)) => match KernelVersion::parse_release(v) {
                Some(kv) if v.chars().all(|c| c.is_ascii_digit() || c == '.') => {
                    (Some(kv), r.to_string())
                }
                _ => return self.err_at(at, format!("`{v}` is not a kernel version such as 6.12")),
            },
            None => (None, word.clone()),
        };
        self.pos += word.chars().count();
        let value = if result == "fd" {
            ExpectValue::AnyFd
        } else if syscall_model::Errno::from_name(&result).is_some() {
            ExpectValue::Errno(result)
        } else if let Ok(v) = result.parse::<i64>() {
            ExpectValue::Value(v)
        } else {
            return self.err_at(
                at,
                format!("unknown expected result `{result}` (an errno name, a number, or `fd`)"),
            );
        };
        Ok((version, value))
    }

    fn arg(&mut self) -> Result<Arg, ParseError> {
        self.skip_ws();
        let col = self.pos + 1;
        if self.eat('@') {
            let Some(off) = self.int()? else {
                return self.err("expected a byte offset after '@'");
            };
            self.expect('=')?;
            let value = self.expr()?;
            return Ok(Arg {
                name: Some(format!("@{off}")),
                value,
                col,
            });
        }
        let save = self.pos;
        if let Some(id) = self.ident() {
            if self.eat('=') {
                let value = self.expr()?;
                return Ok(Arg {
                    name: Some(id),
                    value,
                    col,
                });
            }
        }
        self.pos = save;
        Ok(Arg {
            name: None,
            value: self.expr()?,
            col,
        })
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        let first = self.atom()?;
        let mut parts = vec![first];
        while self.eat('|') {
            parts.push(self.atom()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::Int(0))
        } else {
            Expr::Or(parts)
        })
    }

    fn int(&mut self) -> Result<Option<i128>, ParseError> {
        self.skip_ws();
        let start = self.pos;
        let neg = self.peek() == Some('-');
        if neg {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let hex = self.peek() == Some('0') && matches!(self.peek_at(1), Some('x') | Some('X'));
        if hex {
            self.pos += 2;
        }
        while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit() || c == '_') {
            if !hex && !self.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == digits_start || (hex && self.pos == digits_start + 2) {
            self.pos = start;
            return Ok(None);
        }
        let text: String = self.chars[digits_start..self.pos]
            .iter()
            .map(|c| c.1)
            .filter(|c| *c != '_')
            .collect();
        let v = if hex {
            i128::from_str_radix(&text[2..], 16)
        } else {
            text.parse::<i128>()
        };
        let Ok(mut v) = v else {
            return self.err_at(start, format!("bad number `{text}`"));
        };
        if neg {
            v = -v;
        }
        if self.peek() == Some('<') && self.peek_at(1) == Some('<') {
            self.pos += 2;
            let Some(sh) = self.int()? else {
                return self.err("expected a shift count after '<<'");
            };
            if !(0..=127).contains(&sh) {
                return self.err_at(start, "shift count out of range");
            }
            v <<= sh;
        }
        Ok(Some(v))
    }

    fn string(&mut self) -> Result<Vec<u8>, ParseError> {
        // The opening quote is current.
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return self.err_at(start, "unterminated string"),
                Some('"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some('0') => out.push(0),
                        Some('n') => out.push(b'\n'),
                        Some('\\') => out.push(b'\\'),
                        Some('"') => out.push(b'"'),
                        Some('x') => {
                            let h: String = self
                                .chars
                                .get(self.pos + 1..self.pos + 3)
                                .unwrap_or(&[])
                                .iter()
                                .map(|c| c.1)
                                .collect();
                            let Ok(b) = u8::from_str_radix(&h, 16) else {
                                return self.err("bad \\x escape (two hex digits)");
                            };
                            out.push(b);
                            self.pos += 2;
                        }
                        _ => return self.err("unknown escape (\\0 \\n \\\\ \\\" \\xHH)"),
                    }
                    self.pos += 1;
                }
                Some(c) => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                    self.pos += 1;
                }
            }
        }
    }

    fn atom(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        let at = self.pos;
        match self.peek() {
            Some('"') => return Ok(Expr::Str(self.string()?)),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(']') {
                    loop {
                        items.push(self.expr()?);
                        if self.eat(']') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                return Ok(Expr::List(items));
            }
            _ => {}
        }
        if let Some(v) = self.int()? {
            return Ok(Expr::Int(v));
        }
        let Some(id) = self.ident() else {
            return match self.peek() {
                Some(c) => self.err(format!("expected a value, found '{c}'")),
                None => self.err("expected a value, found the end of the line"),
            };
        };
        if self.peek() == Some(':') {
            self.pos += 1;
            return self.typed(&id, at);
        }
        if self.eat('(') {
            if !LITERAL_FUNCS.contains(&id.as_str()) {
                return self.err_at(
                    at,
                    format!(
                        "unknown function `{id}` (known: {})",
                        LITERAL_FUNCS.join(", ")
                    ),
                );
            }
            let mut args = Vec::new();
            if !self.eat(')') {
                loop {
                    args.push(self.expr()?);
                    if self.eat(')') {
                        break;
                    }
                    self.expect(',')?;
                }
            }
            return Ok(Expr::Call(id, args));
        }
        Ok(Expr::Name(id))
    }

    fn typed(&mut self, ty: &str, at: usize) -> Result<Expr, ParseError> {
        if ty == "hex" {
            let start = self.pos;
            while matches!(self.peek(), Some(c) if c.is_ascii_hexdigit() || c == '_') {
                self.pos += 1;
            }
            let text: String = self.chars[start..self.pos]
                .iter()
                .map(|c| c.1)
                .filter(|c| *c != '_')
                .collect();
            if !text.len().is_multiple_of(2) {
                return self.err_at(start, "hex: needs an even number of digits");
            }
            let bytes = (0..text.len() / 2)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>();
            return match bytes {
                Ok(b) => Ok(Expr::Bytes(b)),
                Err(_) => self.err_at(start, "bad hex digits"),
            };
        }
        let Some(v) = self.int()? else {
            return self.err(format!("expected a number after `{ty}:`"));
        };
        let (len, signed, be) = match ty {
            "u8" => (1, false, false),
            "u16" => (2, false, false),
            "u32" => (4, false, false),
            "u64" => (8, false, false),
            "i8" => (1, true, false),
            "i16" => (2, true, false),
            "i32" => (4, true, false),
            "i64" => (8, true, false),
            "be16" => (2, false, true),
            "be32" => (4, false, true),
            "be64" => (8, false, true),
            _ => return self.err_at(at, format!("unknown literal type `{ty}:` (u8 u16 u32 u64 i8 i16 i32 i64 be16 be32 be64 hex)")),
        };
        let bits = len * 8;
        let (min, max) = if signed {
            (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
        } else {
            (0, (1i128 << bits) - 1)
        };
        if v < min || v > max {
            return self.err_at(at, format!("{v} does not fit in {ty}"));
        }
        let raw = (v as u128).to_le_bytes();
        let mut bytes = raw[..len].to_vec();
        if be {
            bytes.reverse();
        }
        Ok(Expr::Bytes(bytes))
    }
}

/// The calls a statement can make.
pub const KNOWN_CALLS: &[&str] = &[
    "map_create",
    "lookup",
    "update",
    "delete",
    "get_next_key",
    "lookup_and_delete",
    "freeze",
    "raw",
    "close",
    "open",
    "walk",
    "dump",
    "get_next_id",
    "get_fd_by_id",
    "info",
    "fdinfo",
    "pin",
    "obj_get",
    "mkdir",
    "unlink",
    "lookup_batch",
    "lookup_and_delete_batch",
    "update_batch",
    "delete_batch",
    "cpu",
    "drop_privileges",
];

/// The functions a value can use.
pub const LITERAL_FUNCS: &[&str] = &["out", "ro", "ptr", "fd", "zero", "percpu", "id", "btf_id"];

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Scenario, ParseError> {
        parse(Path::new("t.bpfs"), src)
    }

    #[test]
    fn a_statement_with_binding_args_and_expectation() {
        let s = p("m = map_create(type=HASH, key_size=4, flags=NO_PREALLOC|ZERO_SEED) = fd # c")
            .unwrap();
        let st = s.stmts().next().unwrap();
        assert_eq!(st.bind.as_deref(), Some("m"));
        assert_eq!(st.func, "map_create");
        assert_eq!(
            st.expect,
            Some(Expect {
                cases: vec![(None, ExpectValue::AnyFd)]
            })
        );
        assert_eq!(
            st.text,
            "m = map_create(type=HASH, key_size=4, flags=NO_PREALLOC|ZERO_SEED)"
        );
        assert_eq!(
            st.arg("flags").unwrap().value,
            Expr::Or(vec![
                Expr::Name("NO_PREALLOC".into()),
                Expr::Name("ZERO_SEED".into())
            ])
        );
    }

    #[test]
    fn typed_literals_encode_little_endian() {
        let s = p("update(m, key=u32:258, value=[be16:1, hex:ff], @40=i8:-1)").unwrap();
        let st = s.stmts().next().unwrap();
        assert_eq!(st.arg("key").unwrap().value, Expr::Bytes(vec![2, 1, 0, 0]));
        assert_eq!(
            st.arg("value").unwrap().value,
            Expr::List(vec![Expr::Bytes(vec![0, 1]), Expr::Bytes(vec![0xff])])
        );
        assert_eq!(st.arg("@40").unwrap().value, Expr::Bytes(vec![0xff]));
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = p("# ok\nlookup(m, key=u33:1)").unwrap_err();
        assert_eq!((e.line, e.col), (2, 15));
        assert!(
            e.to_string()
                .starts_with("t.bpfs:2:15: unknown literal type"),
            "{e}"
        );
        let e = p("lookup(m, key=u8:256)").unwrap_err();
        assert!(e.msg.contains("does not fit"), "{e}");
        let e = p("frobnicate(m)").unwrap_err();
        assert_eq!(e.col, 1);
        let e = p("lookup(m key=1)").unwrap_err();
        assert!(e.msg.contains("expected ','"), "{e}");
        let e = p("lookup(m) = EWHAT").unwrap_err();
        assert!(e.msg.contains("EWHAT"), "{e}");
    }

    #[test]
    fn expectations_can_depend_on_the_kernel_version() {
        let s = p("lookup(m) = 6.12:EINVAL 6.18:fd # c").unwrap();
        let e = s.stmts().next().unwrap().expect.clone().unwrap();
        let v = |major, minor| KernelVersion { major, minor };
        assert_eq!(
            e.for_version(v(6, 12)),
            Some(&ExpectValue::Errno("EINVAL".into()))
        );
        assert_eq!(e.for_version(v(7, 2)), Some(&ExpectValue::AnyFd));
        assert_eq!(e.for_version(v(6, 1)), None);
        let e = p("lookup(m) = x.y:fd").unwrap_err();
        assert!(e.msg.contains("kernel version"), "{e}");
    }

    #[test]
    fn shifts_and_negative_numbers() {
        let s = p("raw(cmd=1<<16, size=-1)").unwrap();
        let st = s.stmts().next().unwrap();
        assert_eq!(st.arg("cmd").unwrap().value, Expr::Int(65536));
        assert_eq!(st.arg("size").unwrap().value, Expr::Int(-1));
    }
}
