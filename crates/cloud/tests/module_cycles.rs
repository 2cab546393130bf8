//! Import cycles between the cloud's top-level modules, held to a ratchet.
//!
//! Reads `src/` as text: every `crate::NAME` path (and every `crate::{A, B::..}` group) in a
//! module's non-test code is an arrow from that module to NAME. The strongly connected
//! components of that graph with more than one module are its cycles. `module-cycles.txt`
//! lists the cycles allowed today, one per line; the test fails when
//! - a cycle appears that is not inside one listed line (a new cycle, or one that grew), or
//! - a listed line holds a module that is no longer in that cycle (the list must shrink with
//!   the code, so a cycle once broken stays broken).
//!
//! The goal (issue 16) is an empty list: imports that point down the layers only.
//! docs/architecture.md, "Layers", says how to read and mend a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_import_cycle_beyond_the_listed_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = module_graph(&root.join("src"));
    let found = cycles(&graph);
    let listed_text = std::fs::read_to_string(root.join("module-cycles.txt")).unwrap_or_default();
    let listed: Vec<BTreeSet<String>> = listed_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect();

    let mut problems = Vec::new();
    for cycle in &found {
        if !listed.iter().any(|l| cycle.is_subset(l)) {
            problems.push(format!(
                "new or grown import cycle: {}\n  arrows inside it: {}",
                join(cycle),
                arrows_within(&graph, cycle)
            ));
        }
    }
    for line in &listed {
        let still: BTreeSet<String> = found
            .iter()
            .filter(|c| c.is_subset(line))
            .flatten()
            .cloned()
            .collect();
        let gone: Vec<&String> = line.difference(&still).collect();
        if !gone.is_empty() {
            problems.push(format!(
                "module-cycles.txt lists {} in a cycle, but no longer: write the line as `{}`",
                gone.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                join(&still)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n(crates/cloud/module-cycles.txt; docs/architecture.md, \"Layers\")",
        problems.join("\n")
    );
}

#[test]
fn the_reader_sees_groups_and_skips_tests_comments_and_strings() {
    let text = r#"
use crate::{alpha::A, beta, gamma::{x, y}};
// crate::in_comment
/// crate::in_doc
const S: &str = "crate::in_string {";
fn f() -> char { '{' }
use crate::delta::D;
#[cfg(test)]
mod tests {
    use crate::in_test;
    const T: &str = "}";
}
#[cfg(test)]
fn helper() { crate::in_test_fn::x(); }
fn g() { crate::epsilon::e(); }
"#;
    let got = imports_of(text);
    let want: BTreeSet<String> = ["alpha", "beta", "gamma", "delta", "epsilon"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn cycles_are_strongly_connected_components() {
    let mut g = Graph::new();
    let mut arrow = |a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    };
    arrow("a", "b");
    arrow("b", "c");
    arrow("c", "a");
    arrow("c", "d");
    arrow("d", "e");
    let found = cycles(&g);
    assert_eq!(found.len(), 1);
    assert_eq!(join(&found[0]), "a b c");
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().map(String::as_str).collect::<Vec<_>>().join(" ")
}

fn arrows_within(graph: &Graph, cycle: &BTreeSet<String>) -> String {
    let mut out = Vec::new();
    for from in cycle {
        for to in graph.get(from).into_iter().flatten() {
            if cycle.contains(to) {
                out.push(format!("{from}->{to}"));
            }
        }
    }
    out.join(" ")
}

/// Top-level module -> the top-level modules its non-test code names.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    collect_rs(src, &mut files);
    let test_only = test_only_files(&files);
    let mut graph = Graph::new();
    for file in &files {
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let rel = file.strip_prefix(src).unwrap_or(file);
        let Some(first) = rel.components().next() else {
            continue;
        };
        let top = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let entry = graph.entry(top.clone()).or_default();
        for to in imports_of(&text) {
            if to != top {
                entry.insert(to);
            }
        }
    }
    // Only arrows to modules with non-test code (`crate::NAME` may name an item of lib.rs,
    // or a test-only module from test code the reader did not see as such).
    let names: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|t| names.contains(t));
    }
    graph
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The files (and module folders) of modules declared `#[cfg(test)] mod NAME;`.
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in files {
        let Some(dir) = module_dir(file) else {
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for name in test_only_modules(&text) {
            out.push(dir.join(format!("{name}.rs")));
            out.push(dir.join(&name));
        }
    }
    out
}

/// Where the files of `file`'s child modules live.
fn module_dir(file: &Path) -> Option<PathBuf> {
    let parent = file.parent()?;
    let stem = file.file_stem()?.to_string_lossy();
    Some(match stem.as_ref() {
        "lib" | "main" | "mod" => parent.to_path_buf(),
        other => parent.join(other),
    })
}

/// Modules that `text` declares out of line under `#[cfg(test)]`.
fn test_only_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut after_cfg_test = false;
    for line in text.lines().map(str::trim) {
        if line == "#[cfg(test)]" {
            after_cfg_test = true;
            continue;
        }
        if after_cfg_test {
            if let Some(name) = line
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ")
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
            {
                out.insert(name.trim().to_owned());
            }
            if !line.starts_with("#[") {
                after_cfg_test = false;
            }
        }
    }
    out
}

/// The top-level modules named by `crate::` paths in `text`, outside comments, string and char
/// literals and `#[cfg(test)]` items.
fn imports_of(text: &str) -> BTreeSet<String> {
    let code = without_tests(&code_only(text));
    let mut out = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // The first segment of each entry at depth 0 of the group.
            let mut depth = 0usize;
            let mut at_entry_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_entry_start = true,
                    c if at_entry_start && (c.is_alphanumeric() || c == '_') => {
                        out.insert(ident_at(&group[i..]));
                        at_entry_start = false;
                    }
                    c if c.is_whitespace() => {}
                    _ => at_entry_start = false,
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn ident_at(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `text` with comments removed and string and char literals emptied.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0usize;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !prev_is_ident(&chars, i)
            && raw_string_hashes(&chars, i + 1).is_some()
        {
            let hashes = raw_string_hashes(&chars, i + 1).unwrap_or(0);
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|k| chars.get(i + 1 + k) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// For `r` at i-1: the number of `#` before the opening quote, if a raw string starts here.
fn raw_string_hashes(chars: &[char], mut i: usize) -> Option<usize> {
    let mut n = 0;
    while chars.get(i) == Some(&'#') {
        n += 1;
        i += 1;
    }
    (chars.get(i) == Some(&'"')).then_some(n)
}

/// `code` without the items that follow a `#[cfg(test)]` attribute (up to the end of their
/// braces, or of the line for one-line items).
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let brace = item.find('{');
        let semi = item.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => match matching_brace(&item[b..]) {
                Some(close) => b + close + 1,
                None => item.len(),
            },
            (None, Some(s)) => s + 1,
            (None, None) => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<BTreeSet<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(lw));
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low[v];
                    self.low.insert(v, lv.min(iw));
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.insert(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}
