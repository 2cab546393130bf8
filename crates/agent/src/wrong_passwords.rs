//! The agent's memory of recent wrong passwords, on premises only: for each user, keyed
//! digests (HMAC-SHA256 with a key the agent makes at start and never stores or sends) of
//! the last [`PER_USER`] passwords AD refused with 1326, for [`WINDOW`]. The same wrong
//! password again is answered 1326 without a bind, so AD's badPwdCount does not grow twice
//! for one mistake (a phone retrying an old password), and the answer says so, so the cloud's
//! smart lockout does not count it twice either. A success forgets the user's digests.
//!
//! Memory is bounded ([`MAX_USERS`]); when full, expired entries are dropped, and if that is
//! not enough, nothing new is remembered (the agent just binds, as without this memory).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ring::hmac;
use subtle::ConstantTimeEq as _;

/// Wrong passwords remembered per user.
pub const PER_USER: usize = 3;
/// How long a wrong password is remembered (the cloud's failure window).
pub const WINDOW: Duration = Duration::from_secs(3600);
/// Users remembered at most.
pub const MAX_USERS: usize = 100_000;

type Tag = [u8; 32];

/// Recent wrong passwords, by user.
pub struct WrongPasswords {
    key: hmac::Key,
    window: Duration,
    users: Mutex<HashMap<String, VecDeque<(Tag, Instant)>>>,
}

impl std::fmt::Debug for WrongPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrongPasswords")
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl WrongPasswords {
    /// A memory with a fresh random key.
    pub fn new(window: Duration) -> Result<WrongPasswords, ring::error::Unspecified> {
        let rng = ring::rand::SystemRandom::new();
        Ok(WrongPasswords {
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng)?,
            window,
            users: Mutex::new(HashMap::new()),
        })
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, VecDeque<(Tag, Instant)>>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn tag(&self, user: &str, password: &str) -> Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&(user.len() as u64).to_be_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    /// Whether `password` is one of `user`'s recent wrong passwords.
    pub fn seen(&self, user: &str, password: &str, now: Instant) -> bool {
        let user = user.to_lowercase();
        let tag = self.tag(&user, password);
        let users = self.users();
        users.get(&user).is_some_and(|recent| {
            recent.iter().any(|(t, at)| {
                now.saturating_duration_since(*at) < self.window && bool::from(t.ct_eq(&tag))
            })
        })
    }

    /// Remembers a password AD refused with 1326.
    pub fn remember(&self, user: &str, password: &str, now: Instant) {
        let user = user.to_lowercase();
        let tag = self.tag(&user, password);
        let mut users = self.users();
        if users.len() >= MAX_USERS && !users.contains_key(&user) {
            let window = self.window;
            users.retain(|_, recent| {
                recent
                    .back()
                    .is_some_and(|(_, at)| now.saturating_duration_since(*at) < window)
            });
            if users.len() >= MAX_USERS {
                return;
            }
        }
        let recent = users.entry(user).or_default();
        recent.retain(|(_, at)| now.saturating_duration_since(*at) < self.window);
        recent.push_back((tag, now));
        while recent.len() > PER_USER {
            recent.pop_front();
        }
    }

    /// Forgets a user's wrong passwords (after a success).
    pub fn forget(&self, user: &str) {
        self.users().remove(&user.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_three_for_the_window_then_forgets() -> Result<(), ring::error::Unspecified>
    {
        let m = WrongPasswords::new(Duration::from_secs(60))?;
        let t0 = Instant::now();
        assert!(!m.seen("a@corp.test", "one", t0));
        m.remember("A@Corp.Test", "one", t0);
        assert!(m.seen("a@corp.test", "one", t0), "user names ignore case");
        assert!(!m.seen("a@corp.test", "ONE", t0), "passwords do not");
        assert!(!m.seen("b@corp.test", "one", t0), "per user");
        for p in ["two", "three", "four"] {
            m.remember("a@corp.test", p, t0);
        }
        assert!(!m.seen("a@corp.test", "one", t0), "only the last three");
        assert!(m.seen("a@corp.test", "two", t0));
        assert!(
            !m.seen("a@corp.test", "two", t0 + Duration::from_secs(61)),
            "the window"
        );
        m.forget("a@corp.test");
        assert!(!m.seen("a@corp.test", "four", t0));
        // A user name that is a prefix of another cannot collide with it.
        m.remember("ab", "c", t0);
        assert!(!m.seen("a", "bc", t0));
        Ok(())
    }

    #[test]
    fn keys_differ_between_agents_and_debug_shows_no_digest() -> Result<(), ring::error::Unspecified>
    {
        let a = WrongPasswords::new(WINDOW)?;
        let b = WrongPasswords::new(WINDOW)?;
        assert_ne!(a.tag("u", "p"), b.tag("u", "p"));
        a.remember("u", "p", Instant::now());
        assert!(!format!("{a:?}").contains("users"));
        Ok(())
    }
}
