//! The wall clock, read in one place; everything that depends on time takes `now` as a
//! parameter so that it can be tested with a fixed clock.

use time::OffsetDateTime;

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Now, as a UTC date-time.
pub fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
