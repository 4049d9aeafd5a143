//! Framing of the guest's results on the serial console.
//!
//! The console also carries whatever the kernel prints, so each record travels as one line
//! `@@BPFM <seq> <kind> <crc32> <base64>` of at most a few hundred bytes. The host keeps the
//! lines that parse and whose CRC matches, joins the chunks of each record by sequence
//! number, and notices any gap. A record is `kind` plus bytes; big records are split into
//! `DATA` chunks closed by the record itself.

use std::fmt::Write as _;

pub const MARK: &str = "@@BPFM";
/// Payload bytes per console line.
const CHUNK: usize = 192;

/// CRC-32 (IEEE), as zlib computes it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
        }
    }
    !crc
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for c in s.chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &ch in c {
            let v = match ch {
                b'A'..=b'Z' => ch - b'A',
                b'a'..=b'z' => ch - b'a' + 26,
                b'0'..=b'9' => ch - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                b'=' => {
                    pad += 1;
                    0
                }
                _ => return None,
            };
            n = n << 6 | v as u32;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    Some(out)
}

/// Turns records into console lines. `seq` numbers every line of a run.
#[derive(Default)]
pub struct Encoder {
    seq: u64,
}

impl Encoder {
    /// The lines for one record: `DATA` chunks, then the record's own line with the rest.
    pub fn record(&mut self, kind: &str, data: &[u8]) -> String {
        let mut out = String::new();
        let chunks: Vec<&[u8]> = if data.is_empty() {
            vec![&[]]
        } else {
            data.chunks(CHUNK).collect()
        };
        let last = chunks.len() - 1;
        for (i, c) in chunks.into_iter().enumerate() {
            let k = if i == last { kind } else { "DATA" };
            let _ = writeln!(
                out,
                "{MARK} {} {k} {:08x} {}",
                self.seq,
                crc32(c),
                base64_encode(c)
            );
            self.seq += 1;
        }
        out
    }
}

/// A record read back from the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub kind: String,
    pub data: Vec<u8>,
}

/// What the host makes of a console log: the records, and how many lines were lost.
#[derive(Debug, Default)]
pub struct Decoded {
    pub records: Vec<Record>,
    /// Sequence numbers that never arrived intact (a line garbled by kernel output).
    pub missing: Vec<u64>,
}

/// Reads every intact frame line of a console log.
pub fn decode(log: &str) -> Decoded {
    let mut lines = std::collections::BTreeMap::new();
    for l in log.lines() {
        let Some(pos) = l.find(MARK) else { continue };
        let mut f = l[pos + MARK.len()..].split_whitespace();
        let (Some(seq), Some(kind), Some(crc)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let payload = f.next().unwrap_or("");
        let (Ok(seq), Ok(crc)) = (seq.parse::<u64>(), u32::from_str_radix(crc, 16)) else {
            continue;
        };
        let Some(data) = base64_decode(payload) else {
            continue;
        };
        if crc32(&data) != crc {
            continue;
        }
        lines.insert(seq, (kind.to_string(), data));
    }
    let mut out = Decoded::default();
    let max = lines.keys().next_back().copied();
    if let Some(max) = max {
        out.missing = (0..=max).filter(|s| !lines.contains_key(s)).collect();
    }
    let mut pending = Vec::new();
    for (_, (kind, data)) in lines {
        pending.extend_from_slice(&data);
        if kind != "DATA" {
            out.records.push(Record {
                kind,
                data: std::mem::take(&mut pending),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..10 {
            let d: Vec<u8> = (0..n).map(|i| (i * 77) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&d)), Some(d));
        }
        assert_eq!(base64_encode(b"foob"), "Zm9vYg==");
    }

    #[test]
    fn records_survive_kernel_noise_and_chunking() {
        let mut e = Encoder::default();
        let big: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut log = String::from("[    0.1] Linux version ...\n");
        log += &e.record("HELLO", b"hi");
        log += "[    1.2] random kernel line\n";
        log += &e.record("RESULT", &big);
        let d = decode(&log);
        assert!(d.missing.is_empty());
        assert_eq!(
            d.records,
            vec![
                Record {
                    kind: "HELLO".into(),
                    data: b"hi".to_vec()
                },
                Record {
                    kind: "RESULT".into(),
                    data: big
                },
            ]
        );
    }

    #[test]
    fn a_garbled_line_is_reported_missing() {
        let mut e = Encoder::default();
        let log = e.record("A", b"one") + &e.record("B", b"two").replace("dHdv", "dHdX");
        let d = decode(&log);
        assert_eq!(
            d.missing,
            Vec::<u64>::new(),
            "the last line is lost without a gap"
        );
        assert_eq!(d.records.len(), 1);
        let log = e.record("C", b"x").replace(" C ", " C garbage");
        assert_eq!(decode(&log).records.len(), 0);
    }
}
