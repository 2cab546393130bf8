//! Passthru's end-to-end tests: `tests/*.rs`, each an integration test against the real
//! `passthru-cloud` and `passthru-agent` binaries, real TLS, the real SQLite store and the
//! Samba AD test bed (`passthru_testkit`), and the Python programs some of them run
//! (`tests/*.py`: MSAL for Python, an Authlib relying party, Selenium with headless Chromium).
//!
//! The library holds only what several of these tests share and no other crate needs:
//!
//! - [`chromium`]: the browser scripts of `tests/` started from Rust, headless Chromium driven
//!   step by step, TOTP codes, PKCE requests.

pub mod chromium;

/// Path of one of the files of this crate's `tests/` directory (the Python programs).
pub fn test_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name)
}
