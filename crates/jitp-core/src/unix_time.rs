//! Time as the decision sees it: Unix seconds, shown as RFC 3339.
//!
//! The bottom layer with [`crate::ids`]: every other module may use it, it uses nothing of the crate.

/// `unix` (seconds since the epoch, UTC) as RFC 3339 (`2026-01-01T00:00:00Z`); the number itself if it is
/// outside the years the `time` crate can show.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}
