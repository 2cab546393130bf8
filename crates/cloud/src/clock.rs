//! The wall clock, read in one place. Code below the handlers takes `now` as an argument (so
//! that expiry is testable); the handlers and background tasks read it here.

/// Unix seconds now.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Unix milliseconds now.
pub fn unix_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
