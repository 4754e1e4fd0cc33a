//! Inputs for the parity tests: the golden files plus deterministic generated inputs.
//!
//! The generator is a seeded SplitMix64, so a failure names a seed and an index that anyone
//! can reproduce. About one in ten generated inputs is deliberately invalid (a count that
//! breaks a consistency rule, all-empty UID elements, a CLI report with an IS uid, malformed
//! JSON), so the paths are compared on refusals too, not only on bytes.

use std::path::Path;

use ttn_telemetry_core::{
    AccountCounts, ActiveEndDevices, AliasUsage, CliUsage, CommandUsage, EndDeviceCounts,
    EntitiesCount, GatewayCounts, Identity, Inputs, OsInfo, Payload, Total, UserCounts,
    compute_uid, uuid_v4_from_bytes,
};

/// One named plain-inputs document (the exact JSON text, as a host would receive it).
#[derive(Debug, Clone)]
pub struct Case {
    /// Where it came from: `golden/<name>` or `generated/<seed>/<index>`.
    pub name: String,
    /// The plain-inputs JSON text.
    pub inputs_json: String,
    /// The golden expected bytes, when the case is a golden file.
    pub expected: Option<Vec<u8>>,
}

pub use crate::golden_dir;

/// Every `*.inputs.json` under `dir` with its `*.expected` bytes, sorted by name.
pub fn golden_cases(dir: &Path) -> Vec<Case> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut cases: Vec<Case> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e
                .file_name()
                .to_str()?
                .strip_suffix(".inputs.json")?
                .to_owned();
            let inputs_json = std::fs::read_to_string(e.path()).ok()?;
            let expected = std::fs::read(dir.join(format!("{name}.expected"))).ok();
            Some(Case {
                name: format!("golden/{name}"),
                inputs_json,
                expected,
            })
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

/// The project's one generator (the core's SplitMix64): the same sequence everywhere.
pub use ttn_telemetry_core::Rng;

/// What the corpus draws from a [`Rng`]: values shaped to reach the edges that matter.
pub trait Draw {
    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool;
    /// A count: small, large, or at the edges of u64.
    fn count(&mut self) -> u64;
    /// A count at most `bound`.
    fn count_at_most(&mut self, bound: u64) -> u64;
    /// A string mixing what JSON escaping must get right with plain text.
    fn text(&mut self, max_chars: u64) -> String;
    /// A non-empty string of at most `max_chars` pieces.
    fn name(&mut self, max_chars: u64) -> String;
}

impl Draw for Rng {
    /// True with probability `1/n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A count: small, large, or at the edges of u64.
    fn count(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => self.below(10),
            2 => self.below(100_000),
            3 => self.next_u64(),
            4 => u64::MAX - self.below(3),
            _ => (1 << 53) + self.below(5), // past what a JS number holds exactly
        }
    }

    /// A count at most `bound`.
    fn count_at_most(&mut self, bound: u64) -> u64 {
        if bound == 0 || self.one_in(5) {
            return bound;
        }
        match bound.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }

    /// A string mixing what JSON escaping must get right (Go's `<>&`, U+2028/9, controls,
    /// quotes, non-ASCII) with plain text.
    fn text(&mut self, max_chars: u64) -> String {
        const PIECES: &[&str] = &[
            "a",
            "Z",
            "0",
            "9",
            "_",
            "-",
            ".",
            " ",
            "/",
            ":",
            "<",
            ">",
            "&",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "\u{1f}",
            "\u{7f}",
            "\u{2028}",
            "\u{2029}",
            "é",
            "日本",
            "😀",
            "EU_863_870",
            "US_902_928_FSB_2",
            "https://eu1.cloud.thethings.network/api/v3",
        ];
        let n = self.below(max_chars + 1);
        (0..n)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }

    /// A non-empty string of at most `max_chars` pieces.
    fn name(&mut self, max_chars: u64) -> String {
        let s = self.text(max_chars);
        if s.is_empty() { "x".into() } else { s }
    }
}

fn os(rng: &mut Rng) -> OsInfo {
    const OS: &[&str] = &["linux", "darwin", "windows", "freebsd"];
    const ARCH: &[&str] = &["amd64", "arm64", "386", "arm", "riscv64", "wasm"];
    OsInfo {
        operating_system: OS[rng.below(OS.len() as u64) as usize].into(),
        arch: ARCH[rng.below(ARCH.len() as u64) as usize].into(),
        binary_version: if rng.one_in(4) {
            rng.text(8)
        } else {
            format!("3.{}.{}", rng.below(40), rng.below(10))
        },
        golang_version: format!("rustc 1.{}.0", 80 + rng.below(20)),
    }
}

fn elements(rng: &mut Rng) -> Vec<String> {
    let n = 1 + rng.below(6);
    let mut e: Vec<String> = (0..n).map(|_| rng.text(12)).collect();
    if e.iter().all(String::is_empty) {
        e[0] = "http://localhost:1885/api/v3".into();
    }
    e
}

fn entities(rng: &mut Rng) -> EntitiesCount {
    let total = rng.count();
    let plans = (0..rng.below(8))
        .map(|_| (rng.name(4), rng.count_at_most(total)))
        .collect();
    let dev_total = rng.count();
    let seen = rng.count_at_most(dev_total);
    let month = rng.count_at_most(seen);
    let week = rng.count_at_most(month);
    let day = rng.count_at_most(week);
    EntitiesCount {
        gateways: GatewayCounts {
            total,
            gateways_by_frequency_plan_id: plans,
        },
        end_devices: EndDeviceCounts {
            total: dev_total,
            activate_end_devices: ActiveEndDevices {
                total: seen,
                last_day: day,
                last_week: week,
                last_month: month,
            },
        },
        applications: Total { total: rng.count() },
        accounts: AccountCounts {
            users: UserCounts {
                standard: rng.count(),
                admin: rng.count(),
            },
            organizations: Total { total: rng.count() },
        },
    }
}

fn cli(rng: &mut Rng) -> CliUsage {
    CliUsage {
        commands: (0..rng.below(5))
            .map(|_| CommandUsage {
                command_path: rng.name(6),
                execution_count: rng.count(),
                last_used_at: rng.count(),
            })
            .collect(),
        aliases: (0..rng.below(4))
            .map(|_| AliasUsage {
                command_name: rng.name(4),
                alias: rng.name(3),
                usage_count: rng.count(),
            })
            .collect(),
    }
}

fn uuid(rng: &mut Rng) -> String {
    uuid_v4_from_bytes(rng.bytes16())
}

/// Generated inputs number `index` of `seed`, as JSON text.
pub fn generated(seed: u64, index: u64) -> Case {
    let mut rng = Rng::seeded(seed ^ index.wrapping_mul(0xa076_1d64_78bd_642f));
    let is_report = !rng.one_in(3);
    let mut inputs = Inputs {
        identity: Identity::Elements(Vec::new()),
        os: os(&mut rng),
        payload: Payload::Entities(EntitiesCount::default()),
    };
    if is_report {
        let e = elements(&mut rng);
        inputs.identity = if rng.one_in(4) {
            Identity::Uid(compute_uid(&e).expect("generated elements are valid"))
        } else {
            Identity::Elements(e)
        };
        inputs.payload = Payload::Entities(entities(&mut rng));
    } else {
        inputs.identity = Identity::Uid(uuid(&mut rng));
        inputs.payload = Payload::Cli(cli(&mut rng));
    }
    // Deliberate faults: each path must refuse these, with the same message.
    let mut json = String::from_utf8(inputs.to_json()).expect("inputs JSON is UTF-8");
    match rng.below(40) {
        0 => {
            if let Payload::Entities(e) = &mut inputs.payload {
                e.end_devices.activate_end_devices.last_day = u64::MAX;
                e.end_devices.activate_end_devices.last_week = 0;
            }
            json = String::from_utf8(inputs.to_json()).expect("UTF-8");
        }
        1 => {
            inputs.identity = Identity::Elements(vec![String::new(); 3]);
            json = String::from_utf8(inputs.to_json()).expect("UTF-8");
        }
        2 => {
            let mut cut = json.len() / 2;
            while !json.is_char_boundary(cut) {
                cut -= 1;
            }
            json.truncate(cut);
        }
        3 => json = json.replacen("\"os\"", "\"oss\"", 1),
        _ => {}
    }
    Case {
        name: format!("generated/{seed}/{index}"),
        inputs_json: json,
        expected: None,
    }
}

/// The golden cases followed by `n` generated ones of `seed`.
pub fn corpus(seed: u64, n: u64) -> Vec<Case> {
    let mut cases = golden_cases(&golden_dir());
    cases.extend((0..n).map(|i| generated(seed, i)));
    cases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_mostly_valid() {
        let a: Vec<String> = (0..200).map(|i| generated(7, i).inputs_json).collect();
        let b: Vec<String> = (0..200).map(|i| generated(7, i).inputs_json).collect();
        assert_eq!(a, b);
        let ok = a
            .iter()
            .filter(|j| ttn_telemetry_core::build_report_bytes(j.as_bytes()).is_ok())
            .count();
        assert!((150..200).contains(&ok), "{ok} of 200 valid");
        assert!(
            a.iter()
                .any(|j| j.contains("\\u2028") || j.contains('\u{2028}'))
        );
    }
}
