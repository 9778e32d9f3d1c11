//! A log captured in memory, to pin how often something is logged: a tracing subscriber writing to a buffer.
//!
//! ```ignore
//! let log = CapturedLog::default();
//! let _guard = tracing::subscriber::set_default(log.subscriber()); // this thread (a current_thread runtime)
//! // ...
//! assert_eq!(log.count("CRL ignored"), 1);
//! ```

use std::sync::{Arc, Mutex, PoisonError};

/// What was logged, as fmt writes it (no colours).
#[derive(Debug, Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// A subscriber that writes everything at INFO and above here.
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish()
    }

    /// How many times `needle` appears in what was logged.
    pub fn count(&self, needle: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).matches(needle).count()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
