//! The decision's cost per certificate, in-process: the whole of `decide::decide` for RSA-2048, RSA-4096,
//! P-256 and P-384 device certificates (each issued by a CA of the same algorithm), and each stage on its own,
//! so that BENCHMARKS.md can give each stage's share. Plus what is paid once at start-up, for comparison.
//!
//! `cargo bench -p jitp-bench --bench decide`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)] // benchmark harness

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jitp_bench::{ALGS, Pair, config};
use jitp_core::decide::{self, Input};
use jitp_core::rules::Rules;
use jitp_pki::cert::{self, Certificate, DeviceCheck};
use jitp_pki::ids::CertificateId;
use jitp_policy::policy::{AwsContext, DeviceContext, Scope, lint};
use jitp_profile::profile::Overrides;
use jitp_registry::thing::ThingName;
use jitp_testkit::NOW;
use rustls_pki_types::CertificateDer;

fn benches(c: &mut Criterion) {
    let config = config(&Overrides::default());
    let aws = AwsContext::default();
    let profile = config.profile("sensors").expect("the sensors profile");
    let pairs: Vec<(Pair, &str)> = ALGS.iter().map(|(alg, label)| (Pair::new(*alg), *label)).collect();

    // The whole decision, per algorithm.
    let mut group = c.benchmark_group("decide");
    for (pair, label) in &pairs {
        let ca =
            jitp_profile::judge::RegisteredCa::new(config.config(), pair.ca_id.clone(), pair.ca.cert.pem.as_bytes());
        let input = Input { certificate_pem: pair.device.pem.as_bytes(), ca: &ca, now: NOW, aws: &aws };
        let verdict = decide::decide(&config, &input);
        assert!(verdict.is_ok(), "{label}: {:?}", verdict.err());
        group.bench_function(*label, |b| b.iter(|| decide::decide(black_box(&config), black_box(&input))));
    }
    group.finish();

    // The whole decision for P-256 with the sensors profile listing one CRL of its CA with 1,000 entries (the
    // device not on it): what a CRL adds per event (the lookup, and since issue 21 the CRL's scope against the
    // device's distribution points). Only APIs older than issue 21, so that the same file measures the base.
    let mut group = c.benchmark_group("decide_crl");
    let pair = Pair::new(jitp_testkit::Alg::P256);
    let serials: Vec<Vec<u8>> = (0..1000u32).map(|i| [&[0x40][..], &i.to_be_bytes()].concat()).collect();
    let listed: Vec<&[u8]> = serials.iter().map(Vec::as_slice).collect();
    let dir = jitp_testkit::config_dir::ConfigDir::shipped();
    std::fs::create_dir_all(dir.path().join("crl")).unwrap();
    std::fs::write(dir.path().join("crl/acme.crl"), &pair.ca.crl(&listed, NOW - 86_400, NOW + 7 * 86_400).der).unwrap();
    let path =
        dir.edit_config(|t| t.replacen("name = \"sensors\"\n", "name = \"sensors\"\ncrl = [\"crl/acme.crl\"]\n", 1));
    let with_crl = Rules::load(&path).unwrap();
    let ca = jitp_profile::judge::RegisteredCa::new(with_crl.config(), pair.ca_id.clone(), pair.ca.cert.pem.as_bytes());
    let input = Input { certificate_pem: pair.device.pem.as_bytes(), ca: &ca, now: NOW, aws: &aws };
    let verdict = decide::decide(&with_crl, &input);
    assert!(verdict.is_ok(), "p256 with a CRL: {:?}", verdict.err());
    group.bench_function("p256_1000_entries", |b| b.iter(|| decide::decide(black_box(&with_crl), black_box(&input))));
    // What issue 21 adds to each decision with a CRL, on its own: the device's distribution points (read once per
    // decision), and one CRL's scope against them (once per CRL).
    let device = Certificate::from_pem(pair.device.pem.as_bytes()).unwrap();
    let listed = &with_crl.config().profile("sensors").unwrap().crl[0].crl;
    let points = cert::DistributionPoints::of(&device);
    group.bench_function("distribution_points", |b| b.iter(|| cert::DistributionPoints::of(black_box(&device))));
    group.bench_function("scope_coverage", |b| b.iter(|| listed.scope().coverage(black_box(&points))));
    group.finish();

    // Stage 1: parse the device PEM (PEM, DER, subject, key, SHA-256).
    let mut group = c.benchmark_group("parse");
    for (pair, label) in &pairs {
        let pem = pair.device.pem.as_bytes();
        group.bench_function(*label, |b| b.iter(|| Certificate::from_pem(black_box(pem))));
    }
    group.finish();

    // Stage 2: the device certificate against the CA checked once (its validity window, then webpki: signature,
    // usage, validity).
    let check = DeviceCheck { now: NOW, clock_skew_seconds: config.config().defaults.clock_skew_seconds };
    let mut group = c.benchmark_group("verify");
    for (pair, label) in &pairs {
        let device = Certificate::from_pem(pair.device.pem.as_bytes()).unwrap();
        let trusted = cert::TrustedCa::check(pair.ca_cert.clone()).unwrap();
        group.bench_function(*label, |b| {
            b.iter(|| {
                let ok = black_box(&trusted).valid_at(check)?;
                cert::verify_device(black_box(&device), trusted.certificate(), ok, check)
            })
        });
    }
    group.finish();

    // Key quality (cert::weak_rsa), part of verify above: a good key runs every test (the remainders by the
    // small primes, ROCA's per-prime fast path, the square root and Fermat's rounds); a ROCA key also runs the
    // exact subgroup test.
    let mut group = c.benchmark_group("key_quality");
    for (pair, label) in pairs.iter().filter(|(_, l)| l.starts_with("rsa")) {
        let device = Certificate::from_pem(pair.device.pem.as_bytes()).unwrap();
        assert_eq!(device.rsa_weakness(), None);
        group.bench_function(*label, |b| b.iter(|| black_box(&device).rsa_weakness()));
    }
    let fixture = include_str!("../../jitp-core/tests/data/weak_rsa/moduli.txt");
    let roca = fixture.lines().find(|l| l.starts_with("roca generated-roca-2048")).unwrap();
    let roca = hex_bytes(roca.rsplit(' ').next().unwrap());
    assert_eq!(cert::rsa_weakness(&roca), Some(cert::RsaWeakness::Roca));
    group.bench_function("roca2048", |b| b.iter(|| cert::rsa_weakness(black_box(&roca))));
    group.finish();

    // What depends only on the CA, done once per CA when it enters the workflow's cache.
    let mut group = c.benchmark_group("verify_parts");
    for (pair, label) in &pairs {
        group.bench_function(format!("verify_ca/{label}"), |b| {
            b.iter(|| cert::verify_ca(black_box(&pair.ca_cert), check))
        });
        let pem = pair.ca.cert.pem.as_bytes();
        group.bench_function(format!("registered_ca/{label}"), |b| {
            b.iter(|| jitp_profile::judge::RegisteredCa::new(config.config(), pair.ca_id.clone(), black_box(pem)))
        });
        let der = CertificateDer::from(pair.ca_cert.der());
        group.bench_function(format!("trust_anchor/{label}"), |b| {
            b.iter(|| webpki::anchor_from_trusted_cert(black_box(&der)).map(|a| a.to_owned()))
        });
        group.bench_function(format!("ca_subject_der/{label}"), |b| b.iter(|| black_box(&pair.ca_cert).subject_der()));
    }
    group.finish();

    // Stages 3-5 do not depend on the key algorithm: one P-256 device.
    let (p256, _) = pairs.iter().find(|(_, l)| *l == "p256").expect("p256 pair");
    let device = Certificate::from_pem(p256.device.pem.as_bytes()).unwrap();
    let certificate_id = CertificateId::of_der(device.der());
    let serial = device.serial_hex();
    let cn = device.subject().cn[0].clone();

    // Stage 3: profile match (the CN regex, compiled at load, and the O allow-list).
    let mut group = c.benchmark_group("profile_match");
    group.bench_function("sensors", |b| {
        b.iter(|| {
            let subject = black_box(&device).subject();
            let cn = subject.single("cn").ok().flatten().unwrap_or_default();
            let o = subject.single("o").ok().flatten().unwrap_or_default();
            profile.common_name.is_match(cn)
                && profile.organization.as_ref().is_some_and(|allowed| allowed.iter().any(|a| a == o))
        })
    });
    group.finish();

    // Stage 4: the thing name and attributes (Tera, compiled at load), then the policy. Each bench builds the
    // device's template context (`DeviceContext`) itself, as the decision does once per device.
    let engine = config.templates();
    let new_context =
        || DeviceContext::new(profile, device.subject(), certificate_id.as_str(), &serial, p256.ca_id.as_str());
    let mut group = c.benchmark_group("render");
    group.bench_function("thing_name_and_attributes", |b| {
        b.iter(|| {
            let mut ctx = new_context();
            let name = engine.render_thing_name(&ctx)?;
            ctx.name(ThingName::try_from(name.clone()).unwrap());
            for attribute in profile.attributes.keys() {
                black_box(engine.render_attribute(&ctx, attribute.as_str())?);
            }
            Ok::<_, jitp_pki::Rejection>(name)
        })
    });
    let thing_name = ThingName::try_from(cn).unwrap();
    let named = || {
        let mut ctx = new_context();
        ctx.name(thing_name.clone());
        ctx.place(&aws);
        ctx
    };
    // The template alone (context + Tera), no checks.
    group.bench_function("policy_template", |b| {
        b.iter(|| engine.render_unchecked(&black_box(named())).map(|(t, _, _)| t))
    });
    // What the workflow calls: template, size, JSON and version checks, lint, canonical JSON.
    group.bench_function("render_policy", |b| b.iter(|| engine.render_policy(&black_box(named()))));
    group.finish();

    // Stage 5: the lint alone, on the rendered document.
    let device_ctx = named();
    let (rendered, _, _) = engine.render_unchecked(&device_ctx).unwrap();
    let mut group = c.benchmark_group("lint");
    group.bench_function("sensor_policy", |b| {
        b.iter(|| lint::lint(black_box(&rendered), Scope::Thing(thing_name.as_str())))
    });
    group.finish();

    // What else decide does per event, outside the stages above.
    let mut group = c.benchmark_group("other");
    // The one-line subject in the Verdict (x509-cert's Display, which looks attribute names up by OID).
    group.bench_function("subject_line", |b| b.iter(|| black_box(&device).subject_line()));
    // The certificate id: a second SHA-256 of the DER (from_der already computed the fingerprint).
    group.bench_function("certificate_id", |b| b.iter(|| CertificateId::of_der(black_box(&device).der())));
    group.bench_function("fingerprint_and_serial_hex", |b| {
        b.iter(|| (black_box(&device).fingerprint_hex(), device.serial_hex()))
    });
    group.finish();

    // Paid once at start-up, not per event: for scale.
    let mut group = c.benchmark_group("startup");
    group.sample_size(20);
    let path = jitp_testkit::repo_config_path();
    group
        .bench_function("config_load", |b| b.iter(|| Rules::load(black_box(&path)).map(|c| c.config().profiles.len())));
    group.bench_function("parse_ca_p256", |b| {
        b.iter(|| jitp_profile::judge::parse_ca(black_box(p256.ca.cert.pem.as_bytes())))
    });
    group.finish();
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    let hex = if hex.len() % 2 == 1 { format!("0{hex}") } else { hex.to_owned() };
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

criterion_group!(decide_benches, benches);
criterion_main!(decide_benches);
