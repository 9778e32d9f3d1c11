//! The offline policy evaluator's cost per check (issue 24: at most 5 µs): the repository's sensor policy as
//! provisioning renders it for one device (per-thing: the thing name written in) and as the shared policy
//! (`${iot:Connection.Thing.ThingName}`), for a request it allows, one it denies after every statement, and
//! `explain` (the same with the variables resolved); plus parsing the document, paid once per policy; and what
//! `jitp reconcile --plan` adds per device with a policy change: the access diff of the sensor template's
//! `events/*` -> `events/alarm` narrowing (two documents parsed, every request they name evaluated under both).
//!
//! `cargo bench -p jitp-bench --bench policy_eval`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark harness

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jitp_policy_eval::{Account, Action, Context, Policy, Request, Thing, evaluate, explain};

/// templates/policies/sensor.json.tera with `{{ thing_name }}` replaced by `name`.
fn sensor_policy(name: &str) -> String {
    let arn = "arn:aws:iot:eu-west-1:123456789012";
    format!(
        r#"{{"Version": "2012-10-17", "Statement": [
  {{"Sid": "ConnectAsOwnThing", "Effect": "Allow", "Action": "iot:Connect", "Resource": "{arn}:client/{name}"}},
  {{"Sid": "PublishOwnTopics", "Effect": "Allow", "Action": "iot:Publish", "Resource": [
    "{arn}:topic/things/{name}/telemetry", "{arn}:topic/things/{name}/events/*",
    "{arn}:topic/$aws/things/{name}/shadow/*", "{arn}:topic/$aws/things/{name}/jobs/*"]}},
  {{"Sid": "SubscribeOwnTopics", "Effect": "Allow", "Action": "iot:Subscribe", "Resource": [
    "{arn}:topicfilter/things/{name}/commands/*", "{arn}:topicfilter/$aws/things/{name}/shadow/*",
    "{arn}:topicfilter/$aws/things/{name}/jobs/*"]}},
  {{"Sid": "ReceiveOwnTopics", "Effect": "Allow", "Action": "iot:Receive", "Resource": [
    "{arn}:topic/things/{name}/commands/*", "{arn}:topic/$aws/things/{name}/shadow/*",
    "{arn}:topic/$aws/things/{name}/jobs/*"]}}]}}"#
    )
}

fn benches(c: &mut Criterion) {
    let account = Account { partition: "aws".into(), region: "eu-west-1".into(), account_id: "123456789012".into() };
    let mut ctx = Context::new("sensor-0123456789ab");
    ctx.thing = Some(Thing { name: "sensor-0123456789ab".into(), exclusive: true, ..Thing::default() });
    let per_thing = sensor_policy("sensor-0123456789ab");
    let shared = sensor_policy("${iot:Connection.Thing.ThingName}");
    let publish = Request::on(Action::Publish, &account, "things/sensor-0123456789ab/events/boot").unwrap();
    let foreign = Request::on(Action::Subscribe, &account, "things/sensor-ffffffffffff/commands/#").unwrap();

    let mut group = c.benchmark_group("policy_eval");
    for (label, text) in [("per_thing", &per_thing), ("shared", &shared)] {
        let policies = [Policy::parse(text).unwrap()];
        assert!(evaluate(&policies, &publish, &ctx).is_allowed());
        assert!(evaluate(&policies, &foreign, &ctx).is_denied());
        group.bench_function(format!("{label}/allowed"), |b| {
            b.iter(|| evaluate(black_box(&policies), black_box(&publish), black_box(&ctx)))
        });
        group.bench_function(format!("{label}/implicit_deny"), |b| {
            b.iter(|| evaluate(black_box(&policies), black_box(&foreign), black_box(&ctx)))
        });
        group.bench_function(format!("{label}/explain"), |b| {
            b.iter(|| explain(black_box(&policies), black_box(&publish), black_box(&ctx)))
        });
        group.bench_function(format!("{label}/parse"), |b| b.iter(|| Policy::parse(black_box(text))));
    }
    let before = per_thing.clone();
    let after = per_thing.replace("/events/*\"", "/events/alarm\"");
    assert_ne!(before, after);
    let diff = jitp_core::reconcile::access::access_diff(Some(&before), &after, "sensor-0123456789ab");
    assert_eq!(diff.lost, vec!["iot:Publish things/{{ thing_name }}/events/x"]);
    group.bench_function("reconcile_access_diff", |b| {
        b.iter(|| {
            jitp_core::reconcile::access::access_diff(
                Some(black_box(&before)),
                black_box(&after),
                black_box("sensor-0123456789ab"),
            )
        })
    });
    group.finish();
}

criterion_group!(policy_eval_benches, benches);
criterion_main!(policy_eval_benches);
