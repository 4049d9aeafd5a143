//! Transcripts: a scenario echoed line by line with the outcome of every call, and the
//! comparison of two of them.

use std::fmt::Write as _;

/// One line of a scenario and what came of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The scenario line (0 for a line that made no call).
    pub line: usize,
    /// The rendered text: the call, ` = result`, written-back buffers, `!!` problems.
    pub text: String,
    /// How many bpf(2) calls the line made.
    pub calls: usize,
}

impl Entry {
    pub fn text(text: String) -> Entry {
        Entry {
            line: 0,
            text,
            calls: 0,
        }
    }

    pub fn error(line: usize, text: String) -> Entry {
        Entry {
            line,
            text,
            calls: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The scenario's name.
    pub scenario: String,
    /// `model` or `kernel`.
    pub backend: String,
    pub entries: Vec<Entry>,
}

impl Transcript {
    /// The transcript as text: the scenario with results.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let _ = writeln!(out, "{}", e.text);
        }
        out
    }

    pub fn calls(&self) -> usize {
        self.entries.iter().map(|e| e.calls).sum()
    }

    /// Lines marked `!!`: failed expectations and scenario errors.
    pub fn problems(&self) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for e in &self.entries {
            for l in e.text.lines() {
                if let Some(p) = l.trim_start().strip_prefix("!! ") {
                    out.push((e.line, p.to_string()));
                }
            }
        }
        out
    }

    /// A compact byte form, to carry a transcript out of a forked child or a guest.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("{}\x1f{}", self.scenario, self.backend);
        for e in &self.entries {
            let _ = write!(out, "\x1e{}\x1f{}\x1f{}", e.line, e.calls, e.text);
        }
        out.into_bytes()
    }

    pub fn decode(b: &[u8]) -> Option<Transcript> {
        let s = std::str::from_utf8(b).ok()?;
        let mut parts = s.split('\x1e');
        let (scenario, backend) = parts.next()?.split_once('\x1f')?;
        let mut entries = Vec::new();
        for p in parts {
            let mut f = p.splitn(3, '\x1f');
            let line = f.next()?.parse().ok()?;
            let calls = f.next()?.parse().ok()?;
            let text = f.next()?.to_string();
            entries.push(Entry { line, text, calls });
        }
        Some(Transcript {
            scenario: scenario.to_string(),
            backend: backend.to_string(),
            entries,
        })
    }
}

/// A line on which two transcripts of one scenario differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub line: usize,
    pub left: String,
    pub right: String,
}

/// Compares two transcripts of the same scenario entry by entry.
pub fn compare(a: &Transcript, b: &Transcript) -> Vec<Divergence> {
    let mut out = Vec::new();
    let n = a.entries.len().max(b.entries.len());
    for i in 0..n {
        let (x, y) = (a.entries.get(i), b.entries.get(i));
        let (xt, yt) = (
            x.map(|e| e.text.as_str()).unwrap_or(""),
            y.map(|e| e.text.as_str()).unwrap_or(""),
        );
        if xt != yt {
            let line = x.or(y).map(|e| e.line).unwrap_or(0);
            out.push(Divergence {
                line,
                left: xt.to_string(),
                right: yt.to_string(),
            });
        }
    }
    out
}

/// Prints a divergence as a small diff under its scenario line.
pub fn render_divergence(path: &str, d: &Divergence, left: &str, right: &str) -> String {
    let mut out = format!("{path}:{}: divergence\n", d.line);
    for l in d.left.lines() {
        let _ = writeln!(out, "  - {left:<6} | {l}");
    }
    for l in d.right.lines() {
        let _ = writeln!(out, "  + {right:<6} | {l}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips() {
        let t = Transcript {
            scenario: "s".into(),
            backend: "kernel".into(),
            entries: vec![
                Entry::text("# hi".into()),
                Entry {
                    line: 3,
                    text: "a = 0\n  !! x".into(),
                    calls: 1,
                },
            ],
        };
        assert_eq!(Transcript::decode(&t.encode()), Some(t.clone()));
        assert_eq!(t.problems(), vec![(3, "x".to_string())]);
    }

    #[test]
    fn compare_reports_differing_lines() {
        let mk = |r: &str| Transcript {
            scenario: "s".into(),
            backend: "b".into(),
            entries: vec![Entry {
                line: 2,
                text: format!("lookup(m) {r}"),
                calls: 1,
            }],
        };
        assert!(compare(&mk("= 0"), &mk("= 0")).is_empty());
        let d = compare(&mk("= 0"), &mk("= -1 ENOENT"));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, 2);
    }
}
