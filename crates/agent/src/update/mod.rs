//! Signed auto-update.
//!
//! A release is a package (the `passthru-agent` executable) and its manifest (version,
//! SHA-256, size, platform, oldest cloud version) signed with the publisher's Ed25519 key
//! ([`passthru_proto::release`]; `passthru-agent release keygen` and `release sign`, in
//! [`publish`]). The public half is pinned in the agent, at build time
//! (`PASSTHRU_UPDATE_PUBLIC_KEY`) or install time (`[updates] public_key` or
//! `public_key_file`), never taken from the cloud, which only stores releases and offers them.
//!
//! The steps, each one line of the admin log:
//! 1. [`updater`]: about every `check_interval_seconds` the agent asks the cloud over its
//!    connection (`UpdateCheck`); an offer (`UpdateOffer`, the signed manifest) is verified
//!    with the pinned key ([`verify`]) and refused when it is not newer than this agent, for
//!    another platform, or rolled back before;
//! 2. [`download`]: the package is fetched over HTTPS with the agent's client certificate,
//!    at most its signed size, and its SHA-256 checked;
//! 3. [`staging`]: it is staged in `STATE_DIR/updates/` (the state dir is the one place the
//!    agent may write under systemd);
//! 4. [`trial`]: `run` drains, lets go of its locks and starts the new version as its child;
//!    when that connects within `rollback_after_seconds`, `updates/current` is pointed at it,
//!    systemd is told its pid (`MAINPID`), and the old process exits; otherwise the child is
//!    stopped, the version recorded as refused, and the old process serves again;
//! 5. [`launcher`]: every later start of the installed binary starts the staged `current`
//!    instead, once verified again.

pub mod download;
pub mod launcher;
pub mod publish;
pub mod staging;
pub mod trial;
pub mod updater;
pub mod verify;

pub use updater::{Staged, Updater, UpdaterSetup};

/// `command.spawn()`, tried again a few times while the program is "text file busy"
/// (`ETXTBSY`: another thread of this process forked while the file, just written, was
/// still open for writing; the fork's copy closes at its exec).
pub(crate) fn spawn_retrying(
    command: &mut std::process::Command,
) -> std::io::Result<std::process::Child> {
    const ETXTBSY: i32 = 26;
    let mut tries = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
