//! The pinned kernels of images/kernels.manifest: fetched from the Debian archive named in the
//! machine's apt configuration, checked against their SHA256, unpacked into a git-ignored
//! cache, and reused from there.
//!
//! Downloads go through `curl`, unpacking through `dpkg-deb` and `tar`, and the Packages index
//! through `xz`: the tools every Debian machine has (the Makefile installs what is missing).

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One package of a kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deb {
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// The family with `*` where the kernel version goes, for the fallback.
    pub pattern: String,
}

/// One kernel of the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    pub name: String,
    /// The kernel's architecture as the harness names it: `riscv64` or `x86_64`.
    pub arch: String,
    pub suite: String,
    pub debs: Vec<Deb>,
    pub image: String,
    pub config: String,
    /// `optional WHY`: pinned and checked, but not part of the default `qemu-test` run (the
    /// RISC-V porters' job); it runs when named (`--kernel NAME`), which `make test` does.
    pub optional: Option<String>,
}

impl KernelSpec {
    /// Debian's name for the architecture, as the archive's index paths use it.
    pub fn deb_arch(&self) -> &str {
        match self.arch.as_str() {
            "x86_64" => "amd64",
            a => a,
        }
    }
}

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct KernelFiles {
    pub spec: KernelSpec,
    pub image: PathBuf,
    pub config: PathBuf,
    /// `6.12.107`, from the config's header.
    pub version: String,
}

/// Parses the manifest; errors name the line.
pub fn parse_manifest(path: &Path, text: &str) -> anyhow::Result<Vec<KernelSpec>> {
    let mut out: Vec<KernelSpec> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let w: Vec<&str> = line.split_whitespace().collect();
        let cur = out.last_mut();
        match (w[0], cur) {
            ("kernel", _) if w.len() == 3 => out.push(KernelSpec {
                name: w[1].into(),
                arch: w[2].into(),
                suite: String::new(),
                debs: Vec::new(),
                image: String::new(),
                config: String::new(),
                optional: None,
            }),
            ("kernel", _) => bail!("{}: expected `kernel NAME ARCH`", at()),
            (_, None) => bail!("{}: `{}` before any `kernel` line", at(), w[0]),
            ("suite", Some(k)) if w.len() == 2 => k.suite = w[1].into(),
            ("deb", Some(k)) if w.len() == 5 => {
                if w[3].len() != 64 || !w[3].bytes().all(|b| b.is_ascii_hexdigit()) {
                    bail!("{}: `{}` is not a SHA256 (64 hex digits)", at(), w[3]);
                }
                k.debs.push(Deb {
                    name: w[1].into(),
                    version: w[2].into(),
                    sha256: w[3].to_ascii_lowercase(),
                    pattern: w[4].into(),
                })
            }
            ("image", Some(k)) if w.len() == 2 => k.image = w[1].into(),
            ("config", Some(k)) if w.len() == 2 => k.config = w[1].into(),
            ("optional", Some(k)) if w.len() >= 2 => k.optional = Some(w[1..].join(" ")),
            (other, _) => bail!("{}: cannot read `{other}` line: {line}", at()),
        }
    }
    for k in &out {
        if k.suite.is_empty() || k.debs.is_empty() || k.image.is_empty() || k.config.is_empty() {
            bail!(
                "{}: kernel {} needs suite, deb, image and config lines",
                path.display(),
                k.name
            );
        }
    }
    Ok(out)
}

pub fn load_manifest(path: &Path) -> anyhow::Result<Vec<KernelSpec>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_manifest(path, &text)
}

/// The Debian archive this machine's apt uses (not the security archive).
pub fn apt_archive() -> anyhow::Result<String> {
    let mut uris = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut files: Vec<_> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if f.extension().is_some_and(|x| x == "sources") {
                for l in text.lines() {
                    if let Some(rest) = l.trim().strip_prefix("URIs:") {
                        uris.extend(rest.split_whitespace().map(String::from));
                    }
                }
            } else if f.extension().is_some_and(|x| x == "list") {
                uris.extend(list_uris(&text));
            }
        }
    }
    uris.extend(list_uris(
        &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    uris.into_iter()
        .find(|u| !u.contains("security") && (u.starts_with("http") || u.starts_with("file:")))
        .map(|u| u.trim_end_matches('/').to_string())
        .context("no Debian archive in /etc/apt/sources.list or /etc/apt/sources.list.d")
}

fn list_uris(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            if w.first() != Some(&"deb") {
                return None;
            }
            w.iter()
                .skip(1)
                .find(|x| x.starts_with("http"))
                .map(|s| s.to_string())
        })
        .collect()
}

pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).with_context(|| format!("reading {}", path.display()))?;
    Ok(syscall_model::trace::hex(&h.finalize()))
}

/// `curl -fsS URL -o DEST`; Ok(false) when the archive says 404.
fn download(url: &str, dest: &Path) -> anyhow::Result<bool> {
    let out = Command::new("curl")
        .args(["-fsSL", "--retry", "3", "-w", "%{http_code}", "-o"])
        .arg(dest)
        .arg(url)
        .output()
        .context("running curl (apt-get install curl)")?;
    let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        return Ok(true);
    }
    // 404 from a server; curl's 37 ("couldn't read file") for a file:// mirror.
    if code == "404" || out.status.code() == Some(37) {
        let _ = std::fs::remove_file(dest);
        return Ok(false);
    }
    bail!(
        "downloading {url} failed (HTTP {code}): {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Debian version comparison (`dpkg --compare-versions`).
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            Some('~') => -1,
            None => 0,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(mut a: &str, mut b: &str) -> std::cmp::Ordering {
        while !a.is_empty() || !b.is_empty() {
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (sa, sb) = (&a[..na], &b[..nb]);
            let (mut ca, mut cb) = (sa.chars(), sb.chars());
            loop {
                let (x, y) = (ca.next(), cb.next());
                if x.is_none() && y.is_none() {
                    break;
                }
                let o = order(x).cmp(&order(y));
                if o.is_ne() {
                    return o;
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let (x, y): (u64, u64) = (a[..da].parse().unwrap_or(0), b[..db].parse().unwrap_or(0));
            if x != y {
                return x.cmp(&y);
            }
            a = &a[da..];
            b = &b[db..];
        }
        std::cmp::Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// `*` matches any run of characters within a name.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, rest)) => {
            let Some(tail) = s.strip_prefix(pre) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob_match(rest, &tail[i..]))
        }
    }
}

/// A package pattern of the manifest: `*` stands for one version component, so it never
/// spans a `-`: `linux-image-6.1.0-*-amd64-unsigned` takes `-50-` but not the `-50-rt-`
/// flavour.
pub fn package_match(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((pre, rest)) => {
            let Some(tail) = s.strip_prefix(pre) else {
                return false;
            };
            let end = tail.find('-').unwrap_or(tail.len());
            (0..=end).any(|i| tail.is_char_boundary(i) && package_match(rest, &tail[i..]))
        }
    }
}

/// A stanza of a Packages index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub package: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
}

pub fn parse_packages(text: &str) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|v| v.trim().to_string())
            })
        };
        if let (Some(package), Some(version), Some(filename), Some(sha256)) = (
            field("Package"),
            field("Version"),
            field("Filename"),
            field("SHA256"),
        ) {
            out.push(IndexEntry {
                package,
                version,
                filename,
                sha256,
            });
        }
    }
    out
}

/// The suite's Packages index for one architecture, checked against the SHA256 its Release file gives.
fn fetch_index(
    archive: &str,
    suite: &str,
    arch: &str,
    work: &Path,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<IndexEntry>> {
    let rel_path = format!("main/binary-{arch}/Packages.xz");
    let release = work.join("Release");
    let url = format!("{archive}/dists/{suite}/Release");
    if !download(&url, &release)? {
        bail!("{url}: not found");
    }
    let text = std::fs::read_to_string(&release)?;
    let want = text
        .split("SHA256:")
        .nth(1)
        .and_then(|s| {
            s.lines().find_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.len() == 3 && w[2] == rel_path).then(|| w[0].to_string())
            })
        })
        .with_context(|| format!("{url} lists no SHA256 for {rel_path}"))?;
    let xz = work.join("Packages.xz");
    let url = format!("{archive}/dists/{suite}/{rel_path}");
    if !download(&url, &xz)? {
        bail!("{url}: not found");
    }
    let got = sha256_file(&xz)?;
    if got != want {
        bail!("{url}: SHA256 {got} does not match the Release file's {want}");
    }
    log(&format!(
        "checked {suite}/{rel_path} against the suite's Release file"
    ));
    let out = Command::new("xz")
        .arg("-dc")
        .arg(&xz)
        .output()
        .context("running xz")?;
    if !out.status.success() {
        bail!(
            "xz -dc {}: {}",
            xz.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(parse_packages(&String::from_utf8_lossy(&out.stdout)))
}

/// Makes sure the kernel's image and config are in `cache/<name>/`, verified, and returns them.
/// `archive` overrides the apt configuration's archive (a mirror, or a test's `file://` tree);
/// `log` receives what is done (downloads, fallbacks).
pub fn fetch(
    spec: &KernelSpec,
    cache: &Path,
    archive: Option<&str>,
    log: &mut dyn FnMut(&str),
) -> anyhow::Result<KernelFiles> {
    let dir = cache.join(&spec.name);
    let stamp = dir.join("ready");
    let (image, config) = (dir.join("Image"), dir.join("config"));
    if stamp.exists() {
        let want = std::fs::read_to_string(&stamp)?;
        let want = want
            .lines()
            .find_map(|l| l.strip_prefix("image-sha256 "))
            .unwrap_or("")
            .to_string();
        let got = sha256_file(&image)
            .with_context(|| format!("the cached kernel of {} is gone", spec.name))?;
        if got != want {
            bail!(
                "the cached kernel image {} is corrupt: SHA256 {got}, expected {want} (truncated or \
                 overwritten?). Remove {} and run `make qemu-fetch` again.",
                image.display(),
                dir.display()
            );
        }
        return files(spec, image, config);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let archive = match archive {
        Some(a) => a.trim_end_matches('/').to_string(),
        None => apt_archive()?,
    };
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let mut index: Option<Vec<IndexEntry>> = None;
    let mut stamp_text = String::new();
    for deb in &spec.debs {
        let file = work.join(format!("{}.deb", deb.name));
        let url = format!(
            "{archive}/pool/main/l/linux/{}_{}_{}.deb",
            deb.name,
            deb.version.replace(':', "%3a"),
            spec.deb_arch()
        );
        log(&format!("fetching {} {}", deb.name, deb.version));
        let (name, version, sha) = if download(&url, &file)? {
            (deb.name.clone(), deb.version.clone(), deb.sha256.clone())
        } else {
            // The pinned version has left the archive: take the newest of its family.
            if index.is_none() {
                index = Some(fetch_index(
                    &archive,
                    &spec.suite,
                    spec.deb_arch(),
                    &work,
                    log,
                )?);
            }
            let newest = index
                .as_ref()
                .into_iter()
                .flatten()
                .filter(|e| package_match(&deb.pattern, &e.package))
                .max_by(|a, b| compare_versions(&a.version, &b.version))
                .with_context(|| {
                    format!(
                        "{} is gone from {} and no package matches {}",
                        deb.name, spec.suite, deb.pattern
                    )
                })?
                .clone();
            log(&format!(
                "WARNING: {} {} is no longer in {}; using {} {} instead. Update images/kernels.manifest.",
                deb.name, deb.version, spec.suite, newest.package, newest.version
            ));
            let url = format!("{archive}/{}", newest.filename);
            if !download(&url, &file)? {
                bail!("{url}: not found");
            }
            (newest.package, newest.version, newest.sha256)
        };
        let got = sha256_file(&file)?;
        if got != sha {
            bail!("{name} {version}: SHA256 mismatch: the download is {got}, the pin says {sha}");
        }
        let _ = writeln!(stamp_text, "deb {name} {version} {sha}");
        let unpack = work.join("root");
        std::fs::create_dir_all(&unpack)?;
        let status = Command::new("sh")
            .arg("-c")
            .arg("dpkg-deb --fsys-tarfile \"$1\" | tar -x -C \"$2\"")
            .arg("sh")
            .arg(&file)
            .arg(&unpack)
            .status()
            .context("running dpkg-deb and tar")?;
        if !status.success() {
            bail!("unpacking {} failed", file.display());
        }
    }
    let root = work.join("root");
    let found_image = find_glob(&root, &spec.image)
        .with_context(|| format!("{}: no {} in the packages", spec.name, spec.image))?;
    let found_config = find_glob(&root, &spec.config)
        .with_context(|| format!("{}: no {} in the packages", spec.name, spec.config))?;
    std::fs::rename(&found_image, &image)?;
    std::fs::rename(&found_config, &config)?;
    let _ = writeln!(stamp_text, "image-sha256 {}", sha256_file(&image)?);
    std::fs::write(&stamp, stamp_text)?;
    std::fs::remove_dir_all(&work)?;
    files(spec, image, config)
}

fn files(spec: &KernelSpec, image: PathBuf, config: PathBuf) -> anyhow::Result<KernelFiles> {
    let text = std::fs::read_to_string(&config)
        .with_context(|| format!("reading {}", config.display()))?;
    // "# Linux/riscv 6.12.107 Kernel Configuration"
    let version = text
        .lines()
        .take(5)
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 3 && w[1].starts_with("Linux/")).then(|| w[2].to_string())
        })
        .with_context(|| format!("{}: no version in the config header", config.display()))?;
    Ok(KernelFiles {
        spec: spec.clone(),
        image,
        config,
        version,
    })
}

/// The first path under `root` matching a `/`-separated glob.
fn find_glob(root: &Path, pattern: &str) -> Option<PathBuf> {
    let mut paths = vec![root.to_path_buf()];
    for comp in pattern.split('/') {
        let mut next = Vec::new();
        for p in paths {
            let Ok(rd) = std::fs::read_dir(&p) else {
                continue;
            };
            let mut names: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            next.extend(
                names
                    .into_iter()
                    .filter(|n| glob_match(comp, n))
                    .map(|n| p.join(n)),
            );
        }
        paths = next;
    }
    paths.into_iter().find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn debian_versions_compare_like_dpkg() {
        assert_eq!(compare_versions("7.2.11-1~bpo13+1", "7.2.11-1"), Less);
        assert_eq!(compare_versions("6.12.107-1", "6.12.94-1"), Greater);
        assert_eq!(compare_versions("1:1.0", "2.0"), Greater);
        assert_eq!(compare_versions("1.0a", "1.0"), Greater);
        assert_eq!(compare_versions("1.0~rc1", "1.0"), Less);
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_match(
            "linux-image-6.12.*+deb13-riscv64",
            "linux-image-6.12.107+deb13-riscv64"
        ));
        assert!(!glob_match(
            "linux-image-6.12.*+deb13-riscv64",
            "linux-image-6.12.107+deb13-riscv64-dbg"
        ));
        assert!(glob_match("vmlinux-*", "vmlinux-6.12"));
    }

    #[test]
    fn a_package_pattern_star_is_one_version_component() {
        let p = "linux-image-6.1.0-*-amd64-unsigned";
        assert!(package_match(p, "linux-image-6.1.0-50-amd64-unsigned"));
        assert!(!package_match(p, "linux-image-6.1.0-50-rt-amd64-unsigned"));
        assert!(!package_match(
            p,
            "linux-image-6.1.0-50-cloud-amd64-unsigned"
        ));
        assert!(package_match(
            "linux-image-6.12.*+deb13-riscv64",
            "linux-image-6.12.107+deb13-riscv64"
        ));
    }

    #[test]
    fn the_manifest_parses_and_errors_name_the_line() {
        let m = load_manifest(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../images/kernels.manifest"),
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].name, "riscv64-6.12");
        assert_eq!(m[1].debs.len(), 2);
        assert_eq!((m[2].arch.as_str(), m[2].deb_arch()), ("x86_64", "amd64"));
        assert!(m[2].optional.is_some());
        let e = parse_manifest(
            Path::new("m"),
            "kernel k riscv64\nsuite s\ndeb a 1 xyz a*\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "m:3: `xyz` is not a SHA256 (64 hex digits)");
        let e = parse_manifest(Path::new("m"), "suite s\n").unwrap_err();
        assert!(e.to_string().starts_with("m:1:"), "{e}");
    }

    #[test]
    fn packages_stanzas_parse() {
        let t =
            "Package: a\nVersion: 1\nFilename: pool/a.deb\nSHA256: ff\n\nPackage: b\nVersion: 2\n";
        assert_eq!(
            parse_packages(t),
            vec![IndexEntry {
                package: "a".into(),
                version: "1".into(),
                filename: "pool/a.deb".into(),
                sha256: "ff".into()
            }]
        );
    }
}
