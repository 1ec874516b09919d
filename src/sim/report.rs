//! What a storm found: per phase, how many machines finished it and how long
//! they waited (hdrhistogram percentiles), retries, failures by reason, bytes and
//! throughput; rendered as a table for people and as JSON for scripts. The JSON
//! schema is `rackboot-storm/1`; README.md documents it, and a field is only ever
//! added to it, never renamed or dropped, without a new schema name.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::dhcp::Identity;
use super::fleet::{kind_name, Family};
use super::machine::{Ended, Phase};

/// Every phase, in boot order.
pub const PHASES: [Phase; 8] = [
    Phase::Dhcp,
    Phase::Nbp,
    Phase::IpxeDhcp,
    Phase::Script,
    Phase::Kernel,
    Phase::Initrd,
    Phase::InstallerDhcp,
    Phase::Answers,
];

/// One machine's boot as the driver saw it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its firmware.
    pub identity: Identity,
    /// The address family it booted over.
    pub family: Family,
    /// When it powered on, from the storm's start.
    pub start: Duration,
    /// The phases it finished.
    pub ended: Vec<Ended>,
    /// When its boot ended, from its power-on; `None` if it never started.
    pub finished: Option<Duration>,
    /// The phase it failed in and why; `None` when it booted.
    pub failure: Option<(Phase, String)>,
}

/// What the report says about the run itself.
#[derive(Debug, Clone)]
pub struct Run {
    /// The seed the fleet came from.
    pub seed: u64,
    /// What was stormed, in words.
    pub target: String,
    /// The last phase asked for.
    pub until: Phase,
    /// Wall time from the first power-on to the last machine's end.
    pub elapsed: Duration,
    /// CPU time of the storm's own thread.
    pub storm_cpu: Duration,
    /// CPU time of the server, when it ran in this process.
    pub server_cpu: Option<Duration>,
}

/// One phase's figures (or the whole boot's, as phase `total`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PhaseStats {
    /// The phase name.
    pub phase: &'static str,
    /// Times it finished (a chained script finishes twice).
    pub count: u64,
    /// Machines that finished it at least once.
    pub machines: u64,
    /// Percentiles and maximum of the time it took, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Maximum.
    pub max_ms: f64,
    /// DHCP messages and TFTP packets sent again after a timeout.
    pub retries: u64,
    /// Machines that failed in it.
    pub failures: u64,
    /// Body bytes received in it.
    pub bytes: u64,
    /// Those bytes over the wall time the phase was running anywhere, bytes/s.
    pub throughput_bps: f64,
}

/// Machines that failed for one reason.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The phase.
    pub phase: &'static str,
    /// The reason.
    pub reason: String,
    /// How many.
    pub machines: u64,
    /// Whether their firmware gave up by its own timers (no answer after its
    /// retries), rather than failing on something it was answered.
    pub gave_up: bool,
}

/// Reasons a firmware gives when its own retries ran out.
const GAVE_UP: [&str; 4] = [
    "no OFFER to the DISCOVER",
    "no ACK to the REQUEST",
    "no answer to the read request",
    "the server stopped sending",
];

/// The faults the storm put on its own packets.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Faults {
    /// The model, in words (`none` without one).
    pub model: String,
    /// The machines' datagrams and frames dropped.
    pub dropped_out: u64,
    /// The server's dropped on their way to the machines.
    pub dropped_in: u64,
}

/// CPU seconds used.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cpu {
    /// By the storm's own thread.
    pub storm_s: f64,
    /// By the in-process server (self mode), else null.
    pub server_s: Option<f64>,
}

/// The whole report; serialised as the `--json` document.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// `rackboot-storm/1`.
    pub schema: &'static str,
    /// The seed: `--seed` with it plays the same fleet.
    pub seed: u64,
    /// What was stormed.
    pub target: String,
    /// The last phase asked for.
    pub until: &'static str,
    /// Machines played.
    pub machines: u64,
    /// Machines that finished every phase asked for.
    pub booted: u64,
    /// Machines that failed (`booted + failed == machines`).
    pub failed: u64,
    /// Machines per firmware kind.
    pub mix: BTreeMap<&'static str, u64>,
    /// Machines and booted ones by address family (`ipv4`, `ipv6`).
    pub families: BTreeMap<&'static str, FamilyCount>,
    /// Wall time of the storm, seconds.
    pub elapsed_s: f64,
    /// Body bytes received by all machines (the sum of the phases' bytes).
    pub bytes: u64,
    /// `bytes` over `elapsed_s`.
    pub throughput_bps: f64,
    /// CPU used.
    pub cpu: Cpu,
    /// Per phase, in boot order; phases no machine reached are left out.
    pub phases: Vec<PhaseStats>,
    /// The whole boot, power-on to the last phase, of the machines that booted.
    pub total: PhaseStats,
    /// Failures grouped by phase and reason, most frequent first.
    pub failures: Vec<Failure>,
    /// Machines whose firmware gave up by its own timers.
    pub failed_by_timers: u64,
    /// The fault model and what it dropped.
    pub faults: Faults,
}

fn histogram() -> Histogram<u64> {
    crate::metrics::micros_histogram()
}

fn stats(
    phase: &'static str,
    h: &Histogram<u64>,
    retries: u64,
    failures: u64,
    bytes: u64,
    span: Duration,
) -> PhaseStats {
    let ms = |us: u64| us as f64 / 1000.0;
    let (p50, p90, p99, max) = if h.is_empty() {
        (0, 0, 0, 0)
    } else {
        (
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.max(),
        )
    };
    PhaseStats {
        phase,
        count: h.len(),
        machines: 0,
        p50_ms: ms(p50),
        p90_ms: ms(p90),
        p99_ms: ms(p99),
        max_ms: ms(max),
        retries,
        failures,
        bytes,
        throughput_bps: if span.is_zero() {
            0.0
        } else {
            (bytes as f64 / span.as_secs_f64()).round()
        },
    }
}

/// One address family's machines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FamilyCount {
    /// Machines that played it.
    pub machines: u64,
    /// Of them, booted.
    pub booted: u64,
}

#[derive(Default)]
struct Acc {
    machines: u64,
    retries: u64,
    failures: u64,
    bytes: u64,
    first: Option<Duration>,
    last: Duration,
}

impl Report {
    /// The report of `outcomes`.
    pub fn new(run: &Run, outcomes: &[Outcome]) -> Self {
        let mut hist: Vec<Histogram<u64>> = PHASES.iter().map(|_| histogram()).collect();
        let mut acc: Vec<Acc> = PHASES.iter().map(|_| Acc::default()).collect();
        let mut total = histogram();
        let mut mix: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut families: BTreeMap<&'static str, FamilyCount> = BTreeMap::new();
        let mut reasons: BTreeMap<(Phase, &str), u64> = BTreeMap::new();
        let (mut booted, mut failed) = (0, 0);
        for o in outcomes {
            *mix.entry(kind_name(o.identity)).or_default() += 1;
            let family = families.entry(o.family.name()).or_default();
            family.machines += 1;
            family.booted += u64::from(o.failure.is_none());
            let mut began = Duration::ZERO;
            let mut ended = [false; PHASES.len()];
            for e in &o.ended {
                let k = e.phase as usize;
                if !std::mem::replace(&mut ended[k], true) {
                    acc[k].machines += 1;
                }
                let _ = hist[k].record(micros(e.at.saturating_sub(began)));
                let a = &mut acc[k];
                a.retries += u64::from(e.retries);
                a.bytes += e.bytes;
                a.first = Some(a.first.map_or(o.start + began, |f| f.min(o.start + began)));
                a.last = a.last.max(o.start + e.at);
                began = e.at;
            }
            match &o.failure {
                Some((phase, reason)) => {
                    failed += 1;
                    acc[*phase as usize].failures += 1;
                    *reasons.entry((*phase, reason.as_str())).or_default() += 1;
                }
                None => {
                    booted += 1;
                    let _ = total.record(micros(o.finished.unwrap_or(began)));
                }
            }
        }
        let phases: Vec<PhaseStats> = PHASES
            .iter()
            .zip(hist.iter().zip(&acc))
            .filter(|(_, (h, a))| !h.is_empty() || a.failures > 0)
            .map(|(p, (h, a))| {
                let span = a.first.map_or(Duration::ZERO, |f| a.last.saturating_sub(f));
                PhaseStats {
                    machines: a.machines,
                    ..stats(p.name(), h, a.retries, a.failures, a.bytes, span)
                }
            })
            .collect();
        let bytes: u64 = acc.iter().map(|a| a.bytes).sum();
        let retries: u64 = acc.iter().map(|a| a.retries).sum();
        let total = PhaseStats {
            machines: booted,
            ..stats("total", &total, retries, failed, bytes, run.elapsed)
        };
        let mut failures: Vec<Failure> = reasons
            .into_iter()
            .map(|((phase, reason), machines)| Failure {
                phase: phase.name(),
                reason: reason.to_owned(),
                machines,
                gave_up: GAVE_UP.contains(&reason),
            })
            .collect();
        let failed_by_timers = failures
            .iter()
            .filter(|f| f.gave_up)
            .map(|f| f.machines)
            .sum();
        failures.sort_by_key(|f| std::cmp::Reverse(f.machines));
        let secs = run.elapsed.as_secs_f64();
        Report {
            schema: "rackboot-storm/1",
            seed: run.seed,
            target: run.target.clone(),
            until: run.until.name(),
            machines: outcomes.len() as u64,
            booted,
            failed,
            mix,
            families,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            bytes,
            throughput_bps: if secs > 0.0 {
                (bytes as f64 / secs).round()
            } else {
                0.0
            },
            cpu: Cpu {
                storm_s: round3(run.storm_cpu.as_secs_f64()),
                server_s: run.server_cpu.map(|d| round3(d.as_secs_f64())),
            },
            phases,
            total,
            failures,
            failed_by_timers,
            faults: Faults {
                model: "none".into(),
                ..Faults::default()
            },
        }
    }

    /// The JSON document.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The table printed on stdout.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mix: Vec<String> = self.mix.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            "storm: {} machines ({}), seed {}, until {}, against {}",
            self.machines,
            mix.join(", "),
            self.seed,
            self.until,
            self.target
        );
        let _ = writeln!(
            out,
            "{:<15} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>7} {:>10} {:>9}",
            "phase",
            "count",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "retries",
            "failed",
            "MB",
            "MB/s"
        );
        for p in self.phases.iter().chain(std::iter::once(&self.total)) {
            let _ = writeln!(
                out,
                "{:<15} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>7} {:>10.1} {:>9.1}",
                p.phase,
                p.count,
                p.p50_ms,
                p.p90_ms,
                p.p99_ms,
                p.max_ms,
                p.retries,
                p.failures,
                p.bytes as f64 / 1e6,
                p.throughput_bps / 1e6
            );
        }
        if self.families.keys().any(|f| *f != Family::V4.name()) {
            let line: Vec<String> = self
                .families
                .iter()
                .map(|(f, c)| format!("{f} {}/{} booted", c.booted, c.machines))
                .collect();
            let _ = writeln!(out, "families: {}", line.join(", "));
        }
        let server = self
            .cpu
            .server_s
            .map_or_else(String::new, |s| format!(", server CPU {s:.2} s"));
        let _ = writeln!(
            out,
            "booted {}/{} in {:.2} s; {:.1} MB at {:.1} MB/s; storm CPU {:.2} s{server}",
            self.booted,
            self.machines,
            self.elapsed_s,
            self.bytes as f64 / 1e6,
            self.throughput_bps / 1e6,
            self.cpu.storm_s
        );
        if self.faults.model != "none" {
            let _ = writeln!(
                out,
                "faults: {}; dropped {} of the machines' packets, {} of the server's",
                self.faults.model, self.faults.dropped_out, self.faults.dropped_in
            );
        }
        for f in &self.failures {
            let why = if f.gave_up {
                " (its firmware gave up by its own timers)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "FAILED {} machines in {}: {}{why}",
                f.machines, f.phase, f.reason
            );
        }
        if self.failed > 0 {
            let _ = writeln!(
                out,
                "failed: {} whose firmware gave up by its own timers, {} otherwise",
                self.failed_by_timers,
                self.failed - self.failed_by_timers
            );
        }
        out
    }
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u128::from(u64::MAX)) as u64
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Machines in each phase (and booted, failed) at `samples` evenly spaced
/// times over `elapsed`: the picture's data. Rows are times; columns are the
/// PHASES, then booted, then failed.
pub fn timeline(outcomes: &[Outcome], elapsed: Duration, samples: usize) -> Vec<(f64, Vec<u32>)> {
    let cols = PHASES.len() + 2;
    let step = elapsed.as_secs_f64() / samples.max(1) as f64;
    (0..=samples)
        .map(|k| {
            let t = Duration::from_secs_f64(step * k as f64);
            let mut row = vec![0u32; cols];
            for o in outcomes {
                let Some(col) = column_at(o, t) else { continue };
                row[col] += 1;
            }
            (t.as_secs_f64(), row)
        })
        .collect()
}

/// Which column machine `o` counts in at storm time `t`.
fn column_at(o: &Outcome, t: Duration) -> Option<usize> {
    let local = t.checked_sub(o.start)?;
    if let Some(end) = o.finished {
        if local >= end {
            return Some(PHASES.len() + usize::from(o.failure.is_some()));
        }
    }
    match o.ended.iter().find(|e| local < e.at) {
        Some(e) => Some(e.phase as usize),
        None => {
            // Past every ended phase: in the next one (the failed one, or the
            // one after the last ended).
            let next = o.failure.as_ref().map(|(p, _)| *p).or_else(|| {
                let last = o.ended.last().map_or(0, |e| e.phase as usize + 1);
                PHASES.get(last).copied()
            })?;
            Some(next as usize)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended(phase: Phase, at_ms: u64, bytes: u64) -> Ended {
        Ended {
            phase,
            at: Duration::from_millis(at_ms),
            bytes,
            retries: 1,
        }
    }

    fn outcomes() -> Vec<Outcome> {
        let ok = |start_ms: u64, scale: u64| Outcome {
            identity: Identity::IpxeBios,
            family: Family::V4,
            start: Duration::from_millis(start_ms),
            ended: vec![
                ended(Phase::Dhcp, 100 * scale, 0),
                ended(Phase::Script, 150 * scale, 100),
                ended(Phase::Kernel, 400 * scale, 8_000),
            ],
            finished: Some(Duration::from_millis(400 * scale)),
            failure: None,
        };
        let mut v: Vec<Outcome> = (1..=9).map(|k| ok(k * 10, k)).collect();
        v.push(Outcome {
            identity: Identity::Edk2Pxe,
            family: Family::V4,
            start: Duration::ZERO,
            ended: vec![ended(Phase::Dhcp, 4_000, 0)],
            finished: Some(Duration::from_millis(20_000)),
            failure: Some((Phase::Nbp, "no answer from the TFTP server".into())),
        });
        v
    }

    fn run() -> Run {
        Run {
            seed: 7,
            target: "test".into(),
            until: Phase::Kernel,
            elapsed: Duration::from_secs(20),
            storm_cpu: Duration::from_millis(1500),
            server_cpu: None,
        }
    }

    #[test]
    fn totals_add_up_and_percentiles_come_from_the_phase_times() {
        let r = Report::new(&run(), &outcomes());
        assert_eq!((r.machines, r.booted, r.failed), (10, 9, 1));
        assert_eq!(r.mix["ipxe-bios"], 9);
        assert_eq!(r.mix["edk2"], 1);
        let names: Vec<&str> = r.phases.iter().map(|p| p.phase).collect();
        assert_eq!(names, ["dhcp", "nbp", "script", "kernel"]);
        let dhcp = &r.phases[0];
        assert_eq!((dhcp.count, dhcp.retries), (10, 10));
        // Nine machines took 100..900 ms, one 4 s: the median is the fifth.
        assert!((dhcp.p50_ms - 500.0).abs() < 1.0, "{}", dhcp.p50_ms);
        assert!((dhcp.max_ms - 4000.0).abs() < 4.0, "{}", dhcp.max_ms);
        assert_eq!((r.phases[1].count, r.phases[1].failures), (0, 1));
        // The kernel phase is 250 ms * k: 250..2250.
        assert!((r.phases[3].max_ms - 2250.0).abs() < 3.0);
        assert_eq!(r.bytes, r.phases.iter().map(|p| p.bytes).sum::<u64>());
        assert_eq!(r.bytes, 9 * 8_100);
        assert_eq!(r.total.count, 9);
        assert!((r.total.max_ms - 3600.0).abs() < 4.0);
        assert_eq!(
            r.failures,
            [Failure {
                phase: "nbp",
                reason: "no answer from the TFTP server".into(),
                machines: 1,
                gave_up: false,
            }]
        );
        assert_eq!(r.failed_by_timers, 0);
        let mut o = outcomes();
        o[0].failure = Some((Phase::Dhcp, "no OFFER to the DISCOVER".into()));
        let r = Report::new(&run(), &o);
        assert_eq!(r.failed_by_timers, 1);
        assert!(r
            .table()
            .contains("1 whose firmware gave up by its own timers"));
    }

    #[test]
    fn the_json_parses_with_its_schema_name_and_the_table_names_failures() {
        let r = Report::new(&run(), &outcomes());
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["schema"], "rackboot-storm/1");
        assert_eq!(v["booted"], 9);
        assert_eq!(v["phases"][0]["phase"], "dhcp");
        assert_eq!(v["cpu"]["server_s"], serde_json::Value::Null);
        let t = r.table();
        assert!(t.contains("booted 9/10"), "{t}");
        assert!(t.contains("FAILED 1 machines in nbp: no answer"), "{t}");
    }

    #[test]
    fn the_timeline_places_each_machine_in_its_phase() {
        let o = outcomes();
        // At 50 ms the failing machine is in DHCP; at 10 s it waits in nbp; at
        // 20 s it has failed; machine 1 (start 10 ms) booted by 410 ms.
        let rows = timeline(&o, Duration::from_secs(20), 400);
        let at = |secs: f64| {
            &rows
                .iter()
                .find(|(t, _)| (*t - secs).abs() < 1e-9)
                .unwrap()
                .1
        };
        assert_eq!(at(0.05)[Phase::Dhcp as usize], 6);
        assert_eq!(at(10.0)[Phase::Nbp as usize], 1);
        assert_eq!(at(10.0)[PHASES.len()], 9);
        assert_eq!(at(20.0)[PHASES.len() + 1], 1);
        assert!(rows.iter().all(|(_, r)| r.iter().sum::<u32>() <= 10));
    }
}
