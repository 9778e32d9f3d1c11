//! Pacing: jitp spaces its own calls per AWS operation so that it stays under the account's API quotas instead
//! of bouncing off them.
//!
//! AWS IoT enforces a quota (requests per second, per account and region) on every control-plane API, shared by
//! every caller in the account. A burst of first connections sends the same few calls for every device; without
//! pacing, most of them come back ThrottlingException, are retried, and starve every other tool in the account.
//!
//! [`Quotas`] is the account's table: AWS's published defaults ([`Quotas::aws_defaults`]), overridden per
//! operation for accounts with raised quotas. A [`Pacer`] holds one lane per operation, shared by every event of
//! the process, each at `quota x share`: in Lambda, N concurrent instances share the account, so each instance
//! paces at `1/N` of every quota (the share comes from the function's maximum concurrency, which infra/ passes),
//! and N of them together stay under it.
//!
//! A lane is a GCRA scheduler: a call reserves the next free slot (`max(now, next)`; `next` moves on by
//! `1/rate`), sleeps until it, then goes out. Slots are handed out in order, so a queue of events drains at the
//! rate and no call is refused by the pacer itself. On the throttles that still happen (other tools share the
//! account; a quota lower than configured) the lane halves its rate, at most once a second
//! (multiplicative decrease), and every admitted call adds back a step until it is at its ceiling again
//! (additive increase), about [`RECOVERY`] after a cut.
//!
//! governor (the usual Rust rate limiter) fixes a limiter's quota at construction (its issues #39 and #273), and
//! AIMD needs to change the rate of a live lane, so the lanes are written here: a mutex-guarded slot per operation.
//! Time is tokio's clock (the system's, unless a test pauses it).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::registry::Operation;

/// The highest quota jitp accepts for an operation (requests per second): above any AWS IoT quota.
pub const MAX_QUOTA: f64 = 10_000.0;
/// The lowest: one call in 100 seconds.
pub const MIN_QUOTA: f64 = 0.01;
/// How long a lane takes to climb back from a cut to its ceiling, at its rate.
pub const RECOVERY: Duration = Duration::from_secs(5);
/// How long one event retries transient failures (throttling, AWS IoT unavailable) before it is handed back for
/// redelivery: the default of jitp-core's `engine::Settings` and of every binary's `JITP_RETRY_DEADLINE_MS`, here
/// so that a binary that does not link the workflow (the connect guard) names the same.
pub const DEFAULT_RETRY_DEADLINE: Duration = Duration::from_secs(20);
/// The first retry's backoff (it doubles per retry, with full jitter): `JITP_RETRY_BASE_MS`'s default.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_millis(25);
/// The backoffs' ceiling: `JITP_RETRY_MAX_MS`'s default.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(2);
/// How long a registered CA's description is trusted before it is asked for again (the workflow's CA cache, the
/// guard's CA refresh): `JITP_CA_CACHE_TTL_SECS`'s default.
pub const DEFAULT_CA_CACHE_TTL: Duration = Duration::from_secs(300);
/// A lane never goes below this fraction of its ceiling.
const FLOOR: f64 = 1.0 / 16.0;
/// At most one multiplicative decrease per this long: the throttles of calls already in flight are one signal.
const CUT_INTERVAL: Duration = Duration::from_secs(1);

/// Requests per second per AWS operation, for the account.
#[derive(Debug, Clone, PartialEq)]
pub struct Quotas(BTreeMap<Operation, f64>);

impl Quotas {
    /// AWS IoT Core's published default quotas for the APIs jitp calls (Service Quotas, "AWS IoT Core", API
    /// throttling limits). DetachThingPrincipal, not listed separately, takes AttachThingPrincipal's; ListTargetsForPolicy,
    /// ListCACertificates and ListCertificatesByCA, not listed either, take the list APIs' 10 a second.
    pub fn aws_defaults() -> Self {
        use Operation as O;
        let rate = |op: Operation| match op {
            O::DescribeCACertificate
            | O::UpdateCertificate
            | O::CreatePolicy
            | O::CreatePolicyVersion
            | O::DeletePolicyVersion
            | O::SetDefaultPolicyVersion
            | O::ListPolicyVersions
            | O::ListThingPrincipals
            | O::ListThings
            | O::ListThingsInThingGroup
            | O::ListTargetsForPolicy
            | O::ListCACertificates
            | O::ListCertificatesByCA
            // Service Quotas L-06E76376, L-8996ACA8, L-D127B7BE ("TagResource API TPS" and the others).
            | O::TagResource
            | O::UntagResource
            | O::ListTagsForResource => 10.0,
            O::AttachPolicy
            | O::AttachThingPrincipal
            | O::DetachThingPrincipal
            | O::GetPolicy
            | O::ListAttachedPolicies
            | O::CreateThing
            | O::UpdateThing => 15.0,
            O::DescribeCertificate | O::DescribeThing | O::AddThingToThingGroup => 100.0,
        };
        Self(Operation::ALL.iter().map(|op| (*op, rate(*op))).collect())
    }

    /// No quotas at all (an empty table: nothing paced).
    pub fn none() -> Self {
        Self(BTreeMap::new())
    }

    /// These quotas with `overrides` replacing the operations they name.
    pub fn with(mut self, overrides: &BTreeMap<Operation, f64>) -> Self {
        self.0.extend(overrides.iter().map(|(op, rate)| (*op, *rate)));
        self
    }

    /// Every quota multiplied by `factor`.
    pub fn scaled(&self, factor: f64) -> Self {
        Self(self.0.iter().map(|(op, rate)| (*op, rate * factor)).collect())
    }

    /// The quota of `op`, if it has one.
    pub fn get(&self, op: Operation) -> Option<f64> {
        self.0.get(&op).copied()
    }

    /// Every operation with its quota.
    pub fn iter(&self) -> impl Iterator<Item = (Operation, f64)> + '_ {
        self.0.iter().map(|(op, rate)| (*op, *rate))
    }

    /// Parse `Operation=rate` pairs separated by commas (`JITP_QUOTAS`), each checked by [`check_quota`].
    pub fn parse_overrides(text: &str) -> Result<BTreeMap<Operation, f64>, String> {
        let mut out = BTreeMap::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let Some((op, rate)) = pair.split_once('=') else {
                return Err(format!("{pair:?} is not Operation=rate (for example CreatePolicy=20)"));
            };
            let op: Operation =
                op.parse().map_err(|_| format!("{op:?} is not an AWS IoT operation jitp calls ({})", op_names()))?;
            let rate: f64 = rate.parse().map_err(|_| format!("{op}: {rate:?} is not a number"))?;
            out.insert(op, check_quota(op, rate)?);
        }
        Ok(out)
    }
}

fn op_names() -> String {
    Operation::ALL.iter().map(|op| op.as_str()).collect::<Vec<_>>().join(", ")
}

/// A quota must be a finite number of requests per second from [`MIN_QUOTA`] to [`MAX_QUOTA`].
pub fn check_quota(op: Operation, rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (MIN_QUOTA..=MAX_QUOTA).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("the quota of {op} is {rate}; it must be from {MIN_QUOTA} to {MAX_QUOTA} requests per second"))
    }
}

/// What a pacer is sized from: the account's quotas and this process's share of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacing {
    /// The quotas to start from: AWS's defaults, unless the deployment knows better.
    pub quotas: Quotas,
    /// The deployment's overrides (`JITP_QUOTAS`): they win over jitp.toml's `[quotas]`.
    pub overrides: BTreeMap<Operation, f64>,
    /// Processes that share those quotas at once (Lambda: the function's maximum concurrency); each paces at
    /// `1/instances` of every quota.
    pub instances: u32,
}

impl Default for Pacing {
    /// AWS's default quotas, no overrides, one instance.
    fn default() -> Self {
        Self { quotas: Quotas::aws_defaults(), overrides: BTreeMap::new(), instances: 1 }
    }
}

impl Pacing {
    /// The account's quotas: [`Pacing::quotas`], then jitp.toml's `[quotas]` (`configured`), then the overrides.
    pub fn resolve(&self, configured: &BTreeMap<Operation, f64>) -> Quotas {
        self.quotas.clone().with(configured).with(&self.overrides)
    }
}

#[derive(Debug)]
struct Lane {
    ceiling: f64,
    rate: f64,
    next: Instant,
    last_cut: Option<Instant>,
}

impl Lane {
    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate)
    }
}

/// A slot did not come within the time the caller could wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoSlot {
    /// How long the caller would have had to wait.
    pub wait: Duration,
    /// The lane's rate at the time (requests per second).
    pub rate: f64,
}

/// One lane per paced operation, shared by every event of the process. Safe to use from many tasks.
#[derive(Debug)]
pub struct Pacer {
    lanes: HashMap<Operation, Mutex<Lane>>,
}

impl Pacer {
    /// Lanes at `quota / instances` for every operation of `quotas`.
    pub fn new(quotas: &Quotas, instances: u32) -> Self {
        let share = 1.0 / f64::from(instances.max(1));
        let now = Instant::now();
        let lanes = quotas
            .iter()
            .filter(|(_, rate)| rate.is_finite() && *rate > 0.0)
            .map(|(op, rate)| {
                let ceiling = rate * share;
                (op, Mutex::new(Lane { ceiling, rate: ceiling, next: now, last_cut: None }))
            })
            .collect();
        Self { lanes }
    }

    /// A pacer that paces nothing.
    pub fn unpaced() -> Self {
        Self { lanes: HashMap::new() }
    }

    /// Wait for `op`'s next slot, if it comes within `limit` (or within one interval of the lane: the next slot
    /// of an idle lane is always taken, whatever the limit), and return how long that was. A slot farther is not
    /// taken (the next caller gets it) and the answer is [`NoSlot`].
    pub async fn admit(&self, op: Operation, limit: Duration) -> Result<Duration, NoSlot> {
        let Some(lane) = self.lanes.get(&op) else { return Ok(Duration::ZERO) };
        let now = Instant::now();
        let slot = {
            let mut lane = lane.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let slot = lane.next.max(now);
            let wait = slot - now;
            if wait > limit.max(lane.interval()) {
                return Err(NoSlot { wait, rate: lane.rate });
            }
            lane.next = slot + lane.interval();
            slot
        };
        if slot > now {
            tokio::time::sleep_until(slot).await;
        }
        Ok(slot - now)
    }

    /// AWS throttled a call of `op`: halve its rate (once a second at most) and push its next slot back.
    pub fn throttled(&self, op: Operation) {
        let Some(lane) = self.lanes.get(&op) else { return };
        let mut lane = lane.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        if lane.last_cut.is_some_and(|at| now.duration_since(at) < CUT_INTERVAL) {
            return;
        }
        lane.last_cut = Some(now);
        lane.rate = (lane.rate / 2.0).max(lane.ceiling * FLOOR);
        let next = now + lane.interval();
        lane.next = lane.next.max(next);
        tracing::debug!(operation = %op, rate = lane.rate, "throttled: pacing slower");
    }

    /// A call of `op` got through the quota: climb back towards the ceiling by one step.
    pub fn admitted(&self, op: Operation) {
        let Some(lane) = self.lanes.get(&op) else { return };
        let mut lane = lane.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lane.rate < lane.ceiling {
            // From half the ceiling back to it in RECOVERY: (c/2) / (RECOVERY x ~3c/4 calls a second).
            let step = (2.0 / (3.0 * RECOVERY.as_secs_f64())).min(lane.ceiling / 2.0);
            lane.rate = (lane.rate + step).min(lane.ceiling);
        }
    }

    /// The current rate of `op`'s lane (requests per second), if it is paced.
    pub fn rate(&self, op: Operation) -> Option<f64> {
        self.lanes.get(&op).map(|lane| lane.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rate)
    }

    /// The ceiling of `op`'s lane: its quota times this process's share.
    pub fn ceiling(&self, op: Operation) -> Option<f64> {
        self.lanes.get(&op).map(|lane| lane.lock().unwrap_or_else(std::sync::PoisonError::into_inner).ceiling)
    }

    /// The devices per second these lanes allow for a workflow making `calls_per_device` calls of each
    /// operation, and the operation that sets it (the slowest lane for its calls). `None` if nothing is paced.
    pub fn bound(&self, calls_per_device: &BTreeMap<Operation, f64>) -> Option<Bound> {
        calls_per_device
            .iter()
            .filter(|(_, calls)| **calls > 0.0)
            .filter_map(|(op, calls)| {
                self.ceiling(*op).map(|rate| Bound { operation: *op, devices_per_second: rate / calls })
            })
            .min_by(|a, b| a.devices_per_second.total_cmp(&b.devices_per_second))
    }
}

/// The pace a workflow can keep under the quotas, and which operation sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// The operation whose lane is slowest for the calls a device needs.
    pub operation: Operation,
    /// Devices per second at that lane's ceiling.
    pub devices_per_second: f64,
}

/// The calls one first provisioning makes of each operation (per-thing policy mode, CA cached): the figures a
/// [`Pacer::bound`] starts from before any event has been measured.
pub fn first_provisioning_calls(per_thing_policy: bool) -> BTreeMap<Operation, f64> {
    use Operation as O;
    let mut calls: BTreeMap<Operation, f64> =
        [O::DescribeCertificate, O::CreateThing, O::AttachPolicy, O::AttachThingPrincipal, O::UpdateCertificate]
            .into_iter()
            .map(|op| (op, 1.0))
            .collect();
    if per_thing_policy {
        calls.insert(O::CreatePolicy, 1.0);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(op: Operation, rate: f64) -> Pacer {
        Pacer::new(&Quotas::none().with(&BTreeMap::from([(op, rate)])), 1)
    }

    #[tokio::test(start_paused = true)]
    async fn slots_are_spaced_at_the_rate_and_handed_out_in_order() {
        let pacer = one(Operation::CreatePolicy, 10.0);
        let start = tokio::time::Instant::now();
        let mut waits = Vec::new();
        for _ in 0..5 {
            waits.push(pacer.admit(Operation::CreatePolicy, Duration::from_secs(10)).await.unwrap());
        }
        // First at once, then one every 100 ms.
        assert_eq!(waits[0], Duration::ZERO);
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(399) && elapsed <= Duration::from_millis(401), "{elapsed:?}");
        // Unpaced operations never wait.
        assert_eq!(pacer.admit(Operation::DescribeThing, Duration::ZERO).await, Ok(Duration::ZERO));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_beyond_the_limit_is_refused_and_not_taken() {
        let op = Operation::UpdateCertificate;
        let pacer = one(op, 1.0);
        pacer.admit(op, Duration::ZERO).await.unwrap();
        // The lane's next slot is one interval (1 s) away: taken even with no time left.
        let mut second = Box::pin(pacer.admit(op, Duration::ZERO));
        assert!(futures::poll!(&mut second).is_pending(), "it reserved its slot and sleeps");
        // Now the next free slot is 2 s away (a queue): refused with 500 ms left, and not taken.
        let refused = pacer.admit(op, Duration::from_millis(500)).await.unwrap_err();
        assert!(refused.wait >= Duration::from_millis(1999), "{refused:?}");
        assert_eq!(second.await, Ok(Duration::from_secs(1)));
        // The refused caller left the slot at 2 s for the next one (now is 1 s: it waits 1 s).
        assert_eq!(pacer.admit(op, Duration::from_secs(2)).await, Ok(Duration::from_secs(1)));
    }

    #[test]
    fn a_share_divides_every_quota() {
        let pacer = Pacer::new(&Quotas::aws_defaults(), 4);
        assert_eq!(pacer.ceiling(Operation::UpdateCertificate), Some(2.5));
        assert_eq!(pacer.ceiling(Operation::DescribeCertificate), Some(25.0));
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_halve_the_rate_once_a_second_and_admissions_climb_back() {
        let pacer = one(Operation::CreateThing, 16.0);
        pacer.throttled(Operation::CreateThing);
        pacer.throttled(Operation::CreateThing); // the same burst: one cut
        assert_eq!(pacer.rate(Operation::CreateThing), Some(8.0));
        tokio::time::advance(CUT_INTERVAL).await;
        for _ in 0..10 {
            pacer.throttled(Operation::CreateThing);
            tokio::time::advance(CUT_INTERVAL).await;
        }
        assert_eq!(pacer.rate(Operation::CreateThing), Some(16.0 * FLOOR), "never below the floor");
        let mut admitted = 0;
        while pacer.rate(Operation::CreateThing) < Some(16.0) {
            pacer.admitted(Operation::CreateThing);
            admitted += 1;
            assert!(admitted < 1000);
        }
        assert_eq!(pacer.rate(Operation::CreateThing), Some(16.0), "never above the ceiling");
        // From the floor, about RECOVERY x rate calls (the rate climbs from 1 to 16 a second).
        assert!((100..=115).contains(&admitted), "{admitted}");
    }

    #[test]
    fn the_deployment_overrides_jitp_toml_which_overrides_the_defaults() {
        let pacing = Pacing { overrides: BTreeMap::from([(Operation::CreatePolicy, 50.0)]), ..Pacing::default() };
        let configured = BTreeMap::from([(Operation::CreatePolicy, 20.0), (Operation::UpdateCertificate, 30.0)]);
        let quotas = pacing.resolve(&configured);
        assert_eq!(quotas.get(Operation::CreatePolicy), Some(50.0));
        assert_eq!(quotas.get(Operation::UpdateCertificate), Some(30.0));
        assert_eq!(quotas.get(Operation::CreateThing), Some(15.0));
    }

    #[test]
    fn overrides_parse_and_every_bad_one_is_named() {
        let parsed = Quotas::parse_overrides("CreatePolicy=20,UpdateCertificate=0.5").unwrap();
        assert_eq!(parsed.get(&Operation::CreatePolicy), Some(&20.0));
        assert_eq!(parsed.get(&Operation::UpdateCertificate), Some(&0.5));
        assert!(Quotas::parse_overrides("").unwrap().is_empty());
        for (bad, says) in [
            ("CreatePolicy", "is not Operation=rate"),
            ("CreatePolicies=20", "is not an AWS IoT operation"),
            ("CreatePolicy=fast", "is not a number"),
            ("CreatePolicy=0", "must be from 0.01"),
            ("CreatePolicy=NaN", "must be from 0.01"),
            ("CreatePolicy=inf", "must be from 0.01"),
            ("CreatePolicy=20000", "to 10000"),
            ("createpolicy=20", "is not an AWS IoT operation"),
        ] {
            let err = Quotas::parse_overrides(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_bound_is_the_slowest_lane_for_the_calls_a_device_needs() {
        let pacer = Pacer::new(&Quotas::aws_defaults(), 1);
        let bound = pacer.bound(&first_provisioning_calls(true)).unwrap();
        assert_eq!(bound.devices_per_second, 10.0);
        assert!(matches!(bound.operation, Operation::UpdateCertificate | Operation::CreatePolicy));
        let retries = BTreeMap::from([(Operation::CreateThing, 2.0), (Operation::UpdateCertificate, 0.5)]);
        let bound = pacer.bound(&retries).unwrap();
        assert_eq!((bound.operation, bound.devices_per_second), (Operation::CreateThing, 7.5));
        assert!(Pacer::unpaced().bound(&first_provisioning_calls(true)).is_none());
    }
}
