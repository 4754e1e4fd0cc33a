//! Criterion benchmarks for the targets: one IS report with 20 frequency plans, a
//! 5-element UID, and signing and verifying one delivery of that report. Run with `cargo bench -p ttn-telemetry-core`.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use ttn_telemetry_core::*;

fn inputs() -> Inputs {
    let mut counts = EntitiesCount::default();
    counts.gateways.total = 200_000;
    for i in 0..20 {
        counts
            .gateways
            .gateways_by_frequency_plan_id
            .insert(format!("EU_863_870_PLAN_{i:02}"), 1_000 + i);
    }
    counts.end_devices.total = 2_000_000;
    counts.end_devices.activate_end_devices = ActiveEndDevices {
        total: 1_500_000,
        last_day: 900_000,
        last_week: 1_200_000,
        last_month: 1_400_000,
    };
    counts.applications.total = 100_000;
    counts.accounts.users = UserCounts {
        standard: 49_000,
        admin: 1_000,
    };
    counts.accounts.organizations.total = 10_000;
    Inputs {
        identity: Identity::Elements(Config::default().uid_elements()),
        os: OsInfo {
            operating_system: "linux".into(),
            arch: "amd64".into(),
            binary_version: "0.1.0".into(),
            golang_version: "rustc 1.95.0".into(),
        },
        payload: Payload::Entities(counts),
    }
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    let report = inputs.build().unwrap();
    let bytes = report.to_bytes();
    let elements = Config::default().uid_elements();
    c.bench_function("build_is_report_20_plans", |b| {
        b.iter(|| black_box(&report).to_bytes())
    });
    c.bench_function("uid_5_elements", |b| {
        b.iter(|| compute_uid(black_box(&elements)).unwrap())
    });
    c.bench_function("inputs_build_and_encode", |b| {
        b.iter(|| black_box(&inputs).build().unwrap().to_bytes())
    });
    c.bench_function("parse_report", |b| {
        b.iter(|| parse_report(black_box(&bytes)).unwrap())
    });
    // Issue 14 §2: the agent's cost to sign one delivery (digest of the body, signature base,
    // Ed25519) and the collector's to verify one (parse both headers, rebuild the base, verify
    // strictly).
    let key = SigningKey::from_seed(&[7; 32]);
    let target = "https://telemetry.thethingsstack.io/collect";
    c.bench_function("sign_report", |b| {
        b.iter(|| {
            let digest = content_digest(black_box(&bytes));
            key.sign_request(
                &Request {
                    method: "POST",
                    target_uri: target,
                    content_digest: &digest,
                },
                1_700_000_000,
            )
        })
    });
    let digest = content_digest(&bytes);
    let request = Request {
        method: "POST",
        target_uri: target,
        content_digest: &digest,
    };
    let headers = key.sign_request(&request, 1_700_000_000);
    c.bench_function("verify_report_signature", |b| {
        b.iter(|| {
            verify_request(
                SIGNATURE_LABEL,
                black_box(&headers.input),
                black_box(&headers.signature),
                &request,
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
