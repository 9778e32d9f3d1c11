//! The progress bar of `jitp demo` and the burst bench: events done, and the ETA the pacing implies.
//!
//! The ETA is not extrapolated from the rate so far (which a full quota bucket inflates at the start and a
//! throttle storm deflates): it is what the pacer's lanes allow for the calls a device needs, the slowest lane
//! for those calls ([`jitp_registry::pacing::Pacer::bound`]). The calls per device start from a first
//! provisioning's and are replaced by the average of the events done so far as they come in.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use jitp_registry::pacing::{Bound, Pacer, first_provisioning_calls};
use jitp_registry::registry::Operation;

/// A progress bar over `total` events, paced by a [`Pacer`].
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    calls: Mutex<Observed>,
}

#[derive(Debug, Default)]
struct Observed {
    events: u64,
    by_operation: BTreeMap<Operation, u64>,
}

impl Progress {
    /// A bar on stderr for `total` events (hidden when stderr is not a terminal).
    pub fn new(total: usize) -> Self {
        let bar = ProgressBar::new(total as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, calls: Mutex::default() }
    }

    /// One event is done, having made `api_calls` (its audit record's): count them, move the bar, and show the
    /// ETA `pacer` implies for the rest.
    pub fn done(&self, api_calls: &BTreeMap<Operation, u32>, pacer: &Pacer) {
        self.bar.inc(1);
        let remaining = self.bar.length().unwrap_or(0).saturating_sub(self.bar.position());
        let bound = {
            let mut observed = self.calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            observed.events += 1;
            for (op, n) in api_calls {
                *observed.by_operation.entry(*op).or_default() += u64::from(*n);
            }
            let per_device: BTreeMap<Operation, f64> =
                observed.by_operation.iter().map(|(op, n)| (*op, *n as f64 / observed.events as f64)).collect();
            pacer.bound(&per_device)
        };
        self.bar.set_message(eta(remaining, bound));
    }

    /// Show the ETA before the first event is done, from a first provisioning's calls.
    pub fn start(&self, pacer: &Pacer, per_thing_policy: bool) {
        let remaining = self.bar.length().unwrap_or(0);
        self.bar.set_message(eta(remaining, pacer.bound(&first_provisioning_calls(per_thing_policy))));
    }

    /// Clear the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// "ETA 3m20s at 10.0 devices/s (paced by UpdateCertificate)", or nothing without pacing.
pub fn eta(remaining: u64, bound: Option<Bound>) -> String {
    match bound {
        Some(Bound { operation, devices_per_second }) if devices_per_second > 0.0 => {
            let secs = remaining as f64 / devices_per_second;
            format!(
                "ETA {} at {devices_per_second:.1} devices/s (paced by {operation})",
                human(Duration::from_secs_f64(secs.min(1e9)))
            )
        }
        _ => String::new(),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_the_remaining_events_at_the_slowest_lane() {
        let bound = Bound { operation: Operation::UpdateCertificate, devices_per_second: 10.0 };
        assert_eq!(eta(2000, Some(bound)), "ETA 3m20s at 10.0 devices/s (paced by UpdateCertificate)");
        assert_eq!(eta(5, Some(bound)), "ETA 0s at 10.0 devices/s (paced by UpdateCertificate)");
        assert_eq!(eta(100_000, Some(bound)), "ETA 2h46m at 10.0 devices/s (paced by UpdateCertificate)");
        assert_eq!(eta(10, None), "");
    }
}
