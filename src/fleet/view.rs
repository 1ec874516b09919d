//! What the admin API, `rackboot status` and the page show of the fleet: JSON
//! shapes built from a [`Fleet`] at a moment, times as unix milliseconds.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use serde::Serialize;

use super::diagnose::Diagnosis;
use super::timeline::{Boot, Fleet, Phase, State, Step};
use super::Mac;

/// Instants as unix milliseconds: one pair read together.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// An instant.
    pub at: Instant,
    /// The unix time at it, in milliseconds.
    pub unix_ms: u64,
}

impl Clock {
    /// `t` in unix milliseconds.
    pub fn ms(&self, t: Instant) -> u64 {
        if t >= self.at {
            self.unix_ms + t.duration_since(self.at).as_millis() as u64
        } else {
            self.unix_ms
                .saturating_sub(self.at.duration_since(t).as_millis() as u64)
        }
    }
}

/// How many machines are in each state and at each phase.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// By state: `stuck`, `booting`, `booted`.
    pub states: BTreeMap<&'static str, u64>,
    /// By the furthest phase their latest boot completed.
    pub at: BTreeMap<&'static str, u64>,
    /// By each phase their latest boot completed (as the storm counts).
    pub completed: BTreeMap<&'static str, u64>,
}

/// Counts at a moment, for the page's plot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: u64,
    /// Machines stuck.
    pub stuck: u64,
    /// Machines booting.
    pub booting: u64,
    /// Machines booted.
    pub booted: u64,
    /// Machines at each phase, in [`Phase::ALL`]'s order.
    pub at: Vec<u64>,
}

impl Sample {
    /// `counts` at `t`.
    pub fn new(t: u64, counts: &Counts) -> Self {
        let state = |s: State| counts.states.get(s.name()).copied().unwrap_or(0);
        Self {
            t,
            stuck: state(State::Stuck),
            booting: state(State::Booting),
            booted: state(State::Booted),
            at: Phase::ALL
                .iter()
                .map(|p| counts.at.get(p.name()).copied().unwrap_or(0))
                .collect(),
        }
    }
}

/// A diagnosis as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// Its code.
    pub code: &'static str,
    /// What is likely wrong.
    pub summary: String,
    /// What was seen.
    pub evidence: Vec<String>,
    /// Stuck since (unix ms).
    pub since_ms: u64,
}

impl Shown {
    fn new(d: Diagnosis, clock: &Clock) -> Self {
        Self {
            code: d.code,
            summary: d.summary,
            evidence: d.evidence,
            since_ms: clock.ms(d.since),
        }
    }
}

/// One machine's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Its MAC.
    pub mac: String,
    /// Its address.
    pub ip: Option<String>,
    /// `stuck`, `booting` or `booted`.
    pub state: &'static str,
    /// The furthest phase its latest boot completed.
    pub phase: &'static str,
    /// Its firmware.
    pub firmware: String,
    /// Its latest boot's start (unix ms).
    pub started_ms: u64,
    /// Its last event (unix ms).
    pub last_ms: u64,
    /// From its start to its last event, in seconds.
    pub seconds: f64,
    /// Boots kept.
    pub boots: usize,
    /// Why it is stuck.
    pub diagnosis: Option<Shown>,
}

/// `GET /api/v1/boots`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Now (unix ms).
    pub now_ms: u64,
    /// Machines tracked.
    pub tracked: usize,
    /// At most this many are tracked.
    pub max_machines: usize,
    /// Machines forgotten to stay within it.
    pub forgotten: u64,
    /// Transfers from addresses no machine holds.
    pub unjoined: u64,
    /// Events the workers dropped on a full queue.
    pub dropped_events: u64,
    /// The counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Rows matching the query, stuck first.
    pub machines: Vec<Row>,
    /// Rows the query matched beyond its limit.
    pub more: usize,
    /// Counts over time (with `?history=1`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Sample>>,
    /// The last unjoined transfers.
    pub unjoined_recent: Vec<String>,
}

/// Which rows a query wants.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only this state.
    pub state: Option<State>,
    /// Only this phase.
    pub phase: Option<Phase>,
    /// MAC, address, firmware or diagnosis containing this.
    pub search: Option<String>,
    /// At most this many rows.
    pub limit: Option<usize>,
    /// With the history.
    pub history: bool,
}

/// The counts of `fleet` at `now`.
pub fn counts(fleet: &Fleet, now: Instant) -> Counts {
    let mut c = Counts::default();
    for s in [State::Stuck, State::Booting, State::Booted] {
        c.states.insert(s.name(), 0);
    }
    for p in Phase::ALL {
        c.at.insert(p.name(), 0);
        c.completed.insert(p.name(), 0);
    }
    for m in fleet.machines() {
        let Some(b) = m.boots.back() else { continue };
        let (state, _) = b.state(&fleet.timers, now);
        *c.states.entry(state.name()).or_default() += 1;
        *c.at.entry(b.phase().name()).or_default() += 1;
        let mut done = [false; Phase::ALL.len()];
        for s in b.steps.iter().filter(|s| s.ok) {
            done[s.phase as usize] = true;
        }
        for p in Phase::ALL.into_iter().filter(|p| done[*p as usize]) {
            *c.completed.entry(p.name()).or_default() += 1;
        }
    }
    c
}

/// The summary of `fleet` at `now` for `q`.
pub fn summary(
    fleet: &Fleet,
    now: Instant,
    clock: &Clock,
    q: &Query,
    history: &VecDeque<Sample>,
    dropped_events: u64,
) -> Summary {
    let search = q.search.as_deref().map(str::to_ascii_lowercase);
    let mut rows: Vec<(State, u64, Row)> = fleet
        .machines()
        .filter_map(|m| {
            let b = m.boots.back()?;
            let (state, diagnosis) = b.state(&fleet.timers, now);
            if q.state.is_some_and(|s| s != state) || q.phase.is_some_and(|p| p != b.phase()) {
                return None;
            }
            let row = Row {
                mac: m.mac.to_string(),
                ip: m.ip.map(|i| i.to_string()),
                state: state.name(),
                phase: b.phase().name(),
                firmware: b.firmware.clone(),
                started_ms: clock.ms(b.started),
                last_ms: clock.ms(b.last),
                seconds: b.last.saturating_duration_since(b.started).as_secs_f64(),
                boots: m.boots.len(),
                diagnosis: diagnosis.map(|d| Shown::new(d, clock)),
            };
            if let Some(s) = &search {
                let hay = format!(
                    "{} {} {} {} {}",
                    row.mac,
                    row.ip.as_deref().unwrap_or(""),
                    row.firmware,
                    row.phase,
                    row.diagnosis.as_ref().map_or("", |d| d.code)
                );
                if !hay.to_ascii_lowercase().contains(s.as_str()) {
                    return None;
                }
            }
            Some((state, row.last_ms, row))
        })
        .collect();
    // Stuck first (longest stuck first), then booting and booted, latest first.
    rows.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| match a.0 {
                State::Stuck => {
                    a.2.diagnosis
                        .as_ref()
                        .map(|d| d.since_ms)
                        .cmp(&b.2.diagnosis.as_ref().map(|d| d.since_ms))
                }
                _ => b.1.cmp(&a.1),
            })
            .then_with(|| a.2.mac.cmp(&b.2.mac))
    });
    let limit = q.limit.unwrap_or(1000);
    let more = rows.len().saturating_sub(limit);
    rows.truncate(limit);
    Summary {
        now_ms: clock.ms(now),
        tracked: fleet.len(),
        max_machines: fleet.limits.machines,
        forgotten: fleet.forgotten,
        unjoined: fleet.unjoined,
        dropped_events,
        counts: counts(fleet, now),
        machines: rows.into_iter().map(|r| r.2).collect(),
        more,
        history: q.history.then(|| history.iter().cloned().collect()),
        unjoined_recent: fleet
            .unjoined_recent
            .iter()
            .map(|u| format!("{} {} {}", u.peer, u.proto.name(), u.path))
            .collect(),
    }
}

/// One step as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepView {
    /// Its phase.
    pub phase: &'static str,
    /// `dhcp`, `tftp` or `http`.
    pub proto: &'static str,
    /// What.
    pub what: String,
    /// Its start (unix ms).
    pub start_ms: u64,
    /// Its end (unix ms), `null` while it runs.
    pub end_ms: Option<u64>,
    /// Seconds from the boot's start to its start.
    pub offset_s: f64,
    /// Its length in seconds (so far, while it runs).
    pub duration_s: f64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Retransmissions.
    pub resends: u32,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, or a note.
    pub note: Option<String>,
    /// TFTP: `[acknowledged, in the file, block size]`.
    pub blocks: Option<(u64, u64, u16)>,
}

/// One boot as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BootView {
    /// Its start (unix ms).
    pub started_ms: u64,
    /// Its last event (unix ms).
    pub last_ms: u64,
    /// Its firmware.
    pub firmware: String,
    /// Its state.
    pub state: &'static str,
    /// The furthest phase it completed.
    pub phase: &'static str,
    /// Why it is stuck.
    pub diagnosis: Option<Shown>,
    /// The NBP DHCP gave it.
    pub nbp: String,
    /// The script URL DHCP gave it.
    pub script_url: String,
    /// Whether its installer's DHCP answer had DNS servers.
    pub installer_dns: Option<bool>,
    /// The script it got.
    pub script: Option<String>,
    /// Why its template failed.
    pub template_error: Option<String>,
    /// Steps past the limit, not kept.
    pub steps_dropped: u32,
    /// Its steps.
    pub steps: Vec<StepView>,
}

/// `GET /api/v1/machines/{mac}/boots`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MachineView {
    /// Its MAC.
    pub mac: String,
    /// Its address.
    pub ip: Option<String>,
    /// Its boots, latest first.
    pub boots: Vec<BootView>,
}

fn step_view(boot: &Boot, s: &Step, now: Instant, clock: &Clock) -> StepView {
    StepView {
        phase: s.phase.name(),
        proto: s.proto,
        what: s.what.clone(),
        start_ms: clock.ms(s.start),
        end_ms: s.end.map(|e| clock.ms(e)),
        offset_s: s
            .start
            .saturating_duration_since(boot.started)
            .as_secs_f64(),
        duration_s: s
            .end
            .unwrap_or(now)
            .saturating_duration_since(s.start)
            .as_secs_f64(),
        bytes: s.bytes,
        resends: s.resends,
        ok: s.ok,
        note: s.note.clone(),
        blocks: s.blocks,
    }
}

/// `mac`'s boots at `now`.
pub fn machine(fleet: &Fleet, mac: &Mac, now: Instant, clock: &Clock) -> Option<MachineView> {
    let m = fleet.machine(mac)?;
    let last = m.boots.len().saturating_sub(1);
    Some(MachineView {
        mac: m.mac.to_string(),
        ip: m.ip.map(|i| i.to_string()),
        boots: m
            .boots
            .iter()
            .enumerate()
            .rev()
            .map(|(i, b)| {
                // An earlier boot is over: it is judged as if it never went on.
                let at = if i == last {
                    now
                } else {
                    b.last + std::time::Duration::from_secs(3600)
                };
                let (state, diagnosis) = b.state(&fleet.timers, at);
                BootView {
                    started_ms: clock.ms(b.started),
                    last_ms: clock.ms(b.last),
                    firmware: b.firmware.clone(),
                    state: if i == last || state == State::Booted {
                        state.name()
                    } else {
                        "ended"
                    },
                    phase: b.phase().name(),
                    diagnosis: diagnosis.map(|d| Shown::new(d, clock)),
                    nbp: b.given.nbp.clone(),
                    script_url: b.given.script.clone(),
                    installer_dns: b.given.installer_dns,
                    script: b.script.clone(),
                    template_error: b.page_error.clone(),
                    steps_dropped: b.steps_dropped,
                    steps: b
                        .steps
                        .iter()
                        .map(|s| step_view(b, s, now, clock))
                        .collect(),
                }
            })
            .collect(),
    })
}
