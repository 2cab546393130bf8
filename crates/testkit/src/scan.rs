//! The password scan: proves that no test password reached the cloud store, a log or an
//! agent state dir. Each password is looked for as UTF-8; as UTF-16LE (how Windows and AD
//! spell strings); as standard and URL-safe base64 of its UTF-8 bytes at each of the three
//! alignments it can have inside a longer encoded stream; percent-encoded (URLs and HTML
//! forms: `%XX` in upper or lower case hex, `+` or `%20` for a space, under the literal
//! character sets real encoders use); and as a JSON string body (`\"`, `\\`, `\/`,
//! `\uXXXX` for control, non-ASCII and HTML-sensitive characters).
//!
//! Every spelling is one more needle of the same Aho-Corasick automaton, so each file is still
//! read once, whatever the number of passwords and encodings.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// A password found where it must not be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: PathBuf,
    /// Which encoding matched.
    pub encoding: &'static str,
    /// Index of the password in the list scanned for (never the password itself).
    pub password_index: usize,
}

/// The base64 characters that encode `bytes` wherever they sit in a longer stream whose
/// encoding began `shift` bytes (0, 1 or 2, modulo 3) before them: the characters that also
/// carry bits of the bytes before or after are left out, so the needle matches whatever
/// surrounds the password.
fn base64_at(engine: &impl base64::Engine, bytes: &[u8], shift: usize) -> Vec<u8> {
    let mut prefixed = vec![0u8; shift];
    prefixed.extend_from_slice(bytes);
    let encoded = engine.encode(&prefixed);
    // The first character holding only the password's bits, and the end of the last one.
    let start = [0, 2, 3][shift % 3];
    let end = (8 * prefixed.len()) / 6;
    encoded
        .as_bytes()
        .get(start..end)
        .unwrap_or_default()
        .to_vec()
}

/// Characters that percent encoders leave as they are, besides ASCII letters and digits: an
/// HTML form (WHATWG `application/x-www-form-urlencoded`), RFC 3986's unreserved set,
/// JavaScript's `encodeURIComponent`, and encoders that escape everything else.
const PERCENT_LITERALS: [&[u8]; 4] = [b"*-._", b"-._~", b"-_.!~*'()", b""];

fn hex_digit(nibble: u8, upper: bool) -> u8 {
    match (nibble, upper) {
        (0..=9, _) => b'0' + nibble,
        (_, true) => b'A' + nibble - 10,
        (_, false) => b'a' + nibble - 10,
    }
}

/// `bytes` percent-encoded: `literals` (and ASCII alphanumerics) kept, a space as `+` or
/// `%20`, every other byte as `%XX` in upper or lower case hex.
fn percent(bytes: &[u8], literals: &[u8], plus_for_space: bool, upper: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || literals.contains(&b) {
            out.push(b);
        } else if b == b' ' && plus_for_space {
            out.push(b'+');
        } else {
            out.extend([b'%', hex_digit(b >> 4, upper), hex_digit(b & 0xf, upper)]);
        }
    }
    out
}

/// How a JSON encoder may spell a string's body.
#[derive(Clone, Copy)]
struct JsonStyle {
    /// Non-ASCII characters as `\uXXXX` (UTF-16, so surrogate pairs beyond the BMP).
    ascii_only: bool,
    /// `/` as `\/`.
    escape_slash: bool,
    /// `<`, `>`, `&` and `'` as `\uXXXX` (encoders that make JSON safe inside HTML).
    html_safe: bool,
    /// Hex digits of `\uXXXX` in upper case.
    upper: bool,
}

/// The body of the JSON string `text` (without the quotes) in `style`.
fn json_body(text: &str, style: JsonStyle) -> Vec<u8> {
    let mut out = String::with_capacity(text.len() + 8);
    let unicode = |out: &mut String, unit: u16| {
        out.push_str("\\u");
        for shift in [12, 8, 4, 0] {
            // The nibble is below 16, so the cast is exact.
            out.push(char::from(hex_digit(
                ((unit >> shift) & 0xf) as u8,
                style.upper,
            )));
        }
    };
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if style.escape_slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\'' if style.html_safe => unicode(&mut out, c as u16),
            c if c.is_control() || (style.ascii_only && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    unicode(&mut out, *unit);
                }
            }
            c => out.push(c),
        }
    }
    out.into_bytes()
}

/// Every spelling of `password` the scan looks for, each named by its encoding. A spelling
/// equal to an earlier one (a password with nothing to escape) is listed once.
fn needles(password: &str) -> Vec<(&'static str, Vec<u8>)> {
    let bytes = password.as_bytes();
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut all = vec![("utf-8", bytes.to_vec()), ("utf-16le", utf16)];
    for shift in 0..3 {
        all.push(("base64", base64_at(&STANDARD_NO_PAD, bytes, shift)));
        all.push(("base64url", base64_at(&URL_SAFE_NO_PAD, bytes, shift)));
    }
    for literals in PERCENT_LITERALS {
        for plus_for_space in [true, false] {
            for upper in [true, false] {
                all.push(("percent", percent(bytes, literals, plus_for_space, upper)));
            }
        }
    }
    for bits in 0u8..16 {
        let style = JsonStyle {
            ascii_only: bits & 1 != 0,
            escape_slash: bits & 2 != 0,
            html_safe: bits & 4 != 0,
            upper: bits & 8 != 0,
        };
        all.push(("json", json_body(password, style)));
    }
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::with_capacity(all.len());
    for (encoding, needle) in all {
        if !needle.is_empty() && !out.iter().any(|(_, n)| *n == needle) {
            out.push((encoding, needle));
        }
    }
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
        // One finding per password and encoding in a file, however many spellings matched.
        let mut seen = std::collections::BTreeSet::new();
        for m in matcher.find_overlapping_iter(&bytes) {
            if let Some((i, enc, _)) = patterns.get(m.pattern().as_usize()) {
                seen.insert((*i, *enc));
            }
        }
        for (i, enc) in seen {
            findings.push(Finding {
                file: file.clone(),
                encoding: enc,
                password_index: i,
            });
        }
    }
    Ok((files.len(), findings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use base64::Engine as _;

    /// The encodings the scan names for `password` in a directory holding only `contents`.
    fn found_in(contents: &[u8], password: &str) -> std::io::Result<Vec<&'static str>> {
        let dir = std::env::temp_dir().join(format!("passthru-scan-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("f"), contents)?;
        let result = scan(&dir, &[password.to_string()]);
        std::fs::remove_dir_all(&dir)?;
        let (files, findings) = result?;
        assert_eq!(files, 1);
        Ok(findings.into_iter().map(|f| f.encoding).collect())
    }

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

    #[test]
    fn finds_base64_at_every_offset_inside_a_longer_stream() -> std::io::Result<()> {
        // 13 UTF-8 bytes: not a multiple of 3, so the last character of its own encoding
        // also carries bits of whatever follows it.
        let pw = "Pässw0rd*()?";
        for before in 0..6 {
            for after in ["", "x", "yz", "tail of the token"] {
                let mut stream = b"\x01\xff{\"##"[..before].to_vec();
                stream.extend_from_slice(pw.as_bytes());
                stream.extend_from_slice(after.as_bytes());
                let std_b64 = STANDARD.encode(&stream);
                assert_eq!(
                    found_in(format!("token={std_b64};").as_bytes(), pw)?,
                    vec!["base64"],
                    "{before} bytes before, {after:?} after"
                );
                let url_b64 = URL_SAFE.encode(&stream);
                let found = found_in(url_b64.as_bytes(), pw)?;
                // Where the password's stretch has no `+` or `/`, both alphabets agree and
                // the needle is listed once, as base64.
                assert!(
                    !found.is_empty() && found.iter().all(|e| e.starts_with("base64")),
                    "{before} bytes before, {after:?} after: {found:?}"
                );
            }
        }
        // Another password's encoding, shifted the same ways, is not reported.
        let other = STANDARD.encode("\u{1}Pässw1rd*()?");
        assert!(found_in(other.as_bytes(), pw)?.is_empty());
        Ok(())
    }

    #[test]
    fn finds_percent_and_form_encoding() -> std::io::Result<()> {
        let pw = "Pä ss/w0rd&=+~!";
        // An HTML form body (WHATWG form encoding: upper-case hex, `+` for a space).
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("username", "alice@corp.example.test")
            .append_pair("password", pw)
            .finish();
        assert!(form.contains("P%C3%A4+ss%2Fw0rd%26%3D%2B%7E%21"), "{form}");
        assert_eq!(found_in(form.as_bytes(), pw)?, vec!["percent"]);
        // The same in lower-case hex.
        let lower = "password=P%c3%a4+ss%2fw0rd%26%3d%2b%7e%21&x=1";
        assert_eq!(found_in(lower.as_bytes(), pw)?, vec!["percent"]);
        // A URL query: `%20` for the space, RFC 3986's unreserved `~` kept.
        let query = "GET /cb?pw=P%C3%A4%20ss%2Fw0rd%26%3D%2B~%21 HTTP/1.1";
        assert_eq!(found_in(query.as_bytes(), pw)?, vec!["percent"]);
        // JavaScript's encodeURIComponent keeps `!` and `~`.
        let js = "p=P%C3%A4%20ss%2Fw0rd%26%3D%2B~!";
        assert_eq!(found_in(js.as_bytes(), pw)?, vec!["percent"]);
        // Everything but letters and digits escaped, lower case.
        let all = "P%c3%a4%20ss%2fw0rd%26%3d%2b%7e%21";
        assert_eq!(found_in(all.as_bytes(), pw)?, vec!["percent"]);
        assert!(found_in(b"P%C3%A4+ss%2Fw0rd%26%3D%2B%7E%22", pw)?.is_empty());
        Ok(())
    }

    #[test]
    fn finds_json_escapes() -> std::io::Result<()> {
        let pw = "Pä\"s\\s/w<0>rd😀";
        // serde_json: only `"` and `\` escaped.
        let serde = serde_json::to_string(&serde_json::json!({ "password": pw }))
            .map_err(std::io::Error::other)?;
        assert_eq!(found_in(serde.as_bytes(), pw)?, vec!["json"]);
        // ASCII-only encoders (Python's json.dumps): `\uXXXX` and a surrogate pair.
        let ascii = r#"{"password": "P\u00e4\"s\\s/w<0>rd\ud83d\ude00"}"#;
        assert_eq!(found_in(ascii.as_bytes(), pw)?, vec!["json"]);
        // Upper-case hex, `\/`, and HTML-safe escapes of `<` and `>`.
        let html = r#"{"p":"P\u00E4\"s\\s\/w\u003C0\u003Erd\uD83D\uDE00"}"#;
        assert_eq!(found_in(html.as_bytes(), pw)?, vec!["json"]);
        // `\/` alone, non-ASCII as it is.
        let slash = "{\"p\":\"Pä\\\"s\\\\s\\/w<0>rd😀\"}";
        assert_eq!(found_in(slash.as_bytes(), pw)?, vec!["json"]);
        assert!(found_in(br#""P\u00e4\"s\\s/w<0>rd\ud83d\ude01""#, pw)?.is_empty());
        Ok(())
    }

    #[test]
    fn a_password_with_nothing_to_escape_has_few_needles() {
        let n = needles("plainpassword1");
        let names: Vec<&str> = n.iter().map(|(e, _)| *e).collect();
        // UTF-8 (also every percent and JSON spelling), UTF-16LE, three base64 alignments
        // (the URL-safe alphabet spells this password the same way).
        assert_eq!(
            names,
            vec!["utf-8", "utf-16le", "base64", "base64", "base64"],
            "{names:?}"
        );
    }
}
