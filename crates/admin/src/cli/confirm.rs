//! Asking before a destructive change: on a terminal, the CLI says what will happen and waits
//! for `y`; `--yes` skips the question; a script (no terminal on stdin) is not asked, as
//! before this question existed.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

/// Whether to go on with `what`: true without a terminal to ask on, else the answer.
pub(super) fn ask(what: &str) -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(true);
    }
    let mut err = std::io::stderr();
    write!(err, "{what}? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

/// Whether a typed answer agrees.
pub(super) fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_yes_agrees() {
        for y in ["y", "Y\n", " yes "] {
            assert!(super::is_yes(y), "{y:?}");
        }
        for n in ["", "\n", "n", "no", "yep", "ja"] {
            assert!(!super::is_yes(n), "{n:?}");
        }
    }
}
