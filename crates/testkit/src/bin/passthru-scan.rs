//! `passthru-scan --root DIR --passwords FILE [--passwords FILE ...]`: fails (exit 1) when any
//! password listed in the files (one per line, or a testbed.json whose users carry
//! `password` fields) appears below DIR as UTF-8, UTF-16LE, base64 (at any offset inside a
//! longer encoded string), percent/form encoding or a JSON string. Prints no password.

use std::path::PathBuf;
use std::process::ExitCode;

fn passwords_from(path: &PathBuf) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
        let mut out = Vec::new();
        collect(&v, &mut out);
        return Ok(out);
    }
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    (k, serde_json::Value::String(s)) if k.contains("password") => {
                        out.push(s.clone())
                    }
                    _ => collect(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

fn main() -> ExitCode {
    let mut root = None;
    let mut lists = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next().map(PathBuf::from),
            "--passwords" => lists.extend(args.next().map(PathBuf::from)),
            other => {
                eprintln!("passthru-scan: unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(root) = root else {
        eprintln!("usage: passthru-scan --root DIR --passwords FILE [--passwords FILE ...]");
        return ExitCode::from(2);
    };
    let mut passwords = Vec::new();
    for l in &lists {
        match passwords_from(l) {
            Ok(p) => passwords.extend(p),
            Err(e) => {
                eprintln!("passthru-scan: {}: {e}", l.display());
                return ExitCode::from(2);
            }
        }
    }
    passwords.sort();
    passwords.dedup();
    if passwords.is_empty() {
        eprintln!("passthru-scan: no passwords to look for: the scan would prove nothing");
        return ExitCode::from(2);
    }
    match passthru_testkit::scan::scan(&root, &passwords) {
        Ok((files, findings)) if findings.is_empty() => {
            println!(
                "password scan: {} passwords, {files} files below {}: none found",
                passwords.len(),
                root.display()
            );
            if files == 0 {
                eprintln!("passthru-scan: no files scanned: the scan would prove nothing");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Ok((files, findings)) => {
            eprintln!(
                "password scan: FOUND {} occurrence(s) in {files} files:",
                findings.len()
            );
            for f in findings {
                eprintln!(
                    "  {} ({}, password #{})",
                    f.file.display(),
                    f.encoding,
                    f.password_index
                );
            }
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("passthru-scan: {e}");
            ExitCode::FAILURE
        }
    }
}
