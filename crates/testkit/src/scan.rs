//! The password scan: proves that no test password reached the cloud store, a log or an
//! agent state dir. Each password is looked for as UTF-8, as UTF-16LE (how Windows and AD
//! spell strings) and as standard and URL-safe base64 of its UTF-8 bytes.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// A password found where it must not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// Which encoding matched.
    pub encoding: &'static str,
    /// Index of the password in the list scanned for (never the password itself).
    pub password_index: usize,
}

fn needles(password: &str) -> Vec<(&'static str, Vec<u8>)> {
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut b64 = STANDARD.encode(password.as_bytes());
    // Without padding, so that the password's encoding matches inside a longer string.
    while b64.ends_with('=') {
        b64.pop();
    }
    let b64url = URL_SAFE_NO_PAD.encode(password.as_bytes());
    let mut out = vec![("utf-8", password.as_bytes().to_vec()), ("utf-16le", utf16)];
    if b64url != b64 {
        out.push(("base64url", b64url.into_bytes()));
    }
    out.push(("base64", b64.into_bytes()));
    out
}

/// Every file below `root` (links are not followed).
pub fn files_below(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// Scans every file below `root` for every password (passwords shorter than 6 characters
/// are skipped: they would match by chance).
pub fn scan(root: &Path, passwords: &[String]) -> std::io::Result<(usize, Vec<Finding>)> {
    let patterns: Vec<(usize, &'static str, Vec<u8>)> = passwords
        .iter()
        .enumerate()
        .filter(|(_, p)| p.chars().count() >= 6)
        .flat_map(|(i, p)| needles(p).into_iter().map(move |(enc, n)| (i, enc, n)))
        .collect();
    // One pass over each file for every needle at once (Aho-Corasick): a plain search per
    // needle made the scan of a full test run take minutes.
    let matcher = aho_corasick::AhoCorasick::new(patterns.iter().map(|(_, _, n)| n))
        .map_err(std::io::Error::other)?;
    let files = files_below(root);
    let mut findings = Vec::new();
    for file in &files {
        let bytes = std::fs::read(file)?;
        let mut seen = std::collections::BTreeSet::new();
        for m in matcher.find_overlapping_iter(&bytes) {
            seen.insert(m.pattern().as_usize());
        }
        for p in seen {
            if let Some((i, enc, _)) = patterns.get(p) {
                findings.push(Finding {
                    file: file.clone(),
                    encoding: enc,
                    password_index: *i,
                });
            }
        }
    }
    Ok((files.len(), findings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_encoding_and_nothing_else() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-scan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(dir.join("sub"))?;
        let pw = "Pässw0rd*()".to_string();
        std::fs::write(dir.join("clean.log"), b"nothing to see")?;
        std::fs::write(dir.join("sub/a.log"), format!("x{pw}y"))?;
        let utf16: Vec<u8> = pw.encode_utf16().flat_map(u16::to_le_bytes).collect();
        std::fs::write(dir.join("sub/b.db"), utf16)?;
        std::fs::write(
            dir.join("c.json"),
            format!("{{\"p\":\"{}\"}}", STANDARD.encode(&pw)),
        )?;
        let (n, found) = scan(&dir, &[pw, "short".into()])?;
        assert_eq!(n, 4);
        let mut encs: Vec<&str> = found.iter().map(|f| f.encoding).collect();
        encs.sort();
        assert_eq!(encs, vec!["base64", "utf-16le", "utf-8"]);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
