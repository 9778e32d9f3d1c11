//! Time as the decision sees it: Unix seconds, shown as RFC 3339.
//!
//! The bottom layer with [`crate::ids`]: every other module may use it, it uses nothing of the crate. The one
//! clock of every binary is here too ([`system_clock`]).

/// `unix` (seconds since the epoch, UTC) as RFC 3339 (`2026-01-01T00:00:00Z`); the number itself if it is
/// outside the years the `time` crate can show.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The current time as the workflow takes it: Unix seconds. Binaries use [`system_clock`]; tests pin one.
pub type Clock = std::sync::Arc<dyn Fn() -> i64 + Send + Sync>;

/// Now, Unix seconds, from the system clock.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    std::sync::Arc::new(now)
}
