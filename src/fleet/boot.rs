//! One boot of a machine and its steps: which step a transfer is (from what
//! the machine was given and what its script names), and where the boot
//! stands.

use std::time::Instant;

use super::timeline::{Limits, Phase, State, Timers};
use super::{PageKind, Proto, SCRIPT_MAX};
use crate::sim::script;

/// One step of a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which.
    pub phase: Phase,
    /// `dhcp`, `tftp` or `http`.
    pub proto: &'static str,
    /// What: the file, or the DHCP exchange (`discover→offer, request→ack`).
    pub what: String,
    /// When it started.
    pub start: Instant,
    /// When it ended (`None`: still running).
    pub end: Option<Instant>,
    /// Bytes delivered.
    pub bytes: u64,
    /// Retransmissions: the client's repeated DHCP messages, TFTP windows resent.
    pub resends: u32,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why it failed, or a note (`size probe`, a silent DHCP's reason).
    pub note: Option<String>,
    /// For a TFTP transfer: blocks acknowledged, blocks in the file, block size.
    pub blocks: Option<(u64, u64, u16)>,
    /// DHCP messages seen in the step.
    pub(super) messages: u32,
}

impl Step {
    /// A step of `phase` that started at `start` and has not ended.
    pub(super) fn new(phase: Phase, proto: &'static str, what: String, start: Instant) -> Self {
        Self {
            phase,
            proto,
            what,
            start,
            end: None,
            bytes: 0,
            resends: 0,
            ok: false,
            note: None,
            blocks: None,
            messages: 0,
        }
    }
}

/// What the DHCP answers told a boot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Given {
    /// The NBP (the firmware's boot file).
    pub nbp: String,
    /// The script URL (iPXE's boot file).
    pub script: String,
    /// The next server.
    pub next_server: Option<std::net::Ipv4Addr>,
    /// Whether the installer's answer carried DNS servers.
    pub installer_dns: Option<bool>,
}

/// One boot of a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Boot {
    /// When its first event came.
    pub started: Instant,
    /// When its last event came.
    pub last: Instant,
    /// The firmware, as its first DHCP said (`uefi-pxe (arch 7)`, ...).
    pub firmware: String,
    /// Its steps, in the order they started.
    pub steps: Vec<Step>,
    /// Steps not kept (past [`Limits::steps`]).
    pub steps_dropped: u32,
    /// What DHCP gave it.
    pub given: Given,
    /// The script it got, when known (at most [`SCRIPT_MAX`] bytes).
    pub script: Option<String>,
    /// Why its profile's template failed, when it did.
    pub page_error: Option<String>,
    /// The paths its script names: kernel, initrds, answers.
    pub(super) plan: Option<script::Plan>,
    /// The page the profiles just rendered for it: its fetch is that step.
    pub(super) expect: Option<PageKind>,
}

impl Boot {
    pub(super) fn new(at: Instant, firmware: String) -> Self {
        Self {
            started: at,
            last: at,
            firmware,
            steps: Vec::new(),
            steps_dropped: 0,
            given: Given::default(),
            script: None,
            page_error: None,
            plan: None,
            expect: None,
        }
    }

    /// The furthest phase it completed, or the first it started.
    pub fn phase(&self) -> Phase {
        self.steps
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.phase)
            .max()
            .or_else(|| self.steps.first().map(|s| s.phase))
            .unwrap_or(Phase::Dhcp)
    }

    /// Whether it completed `phase`.
    pub fn completed(&self, phase: Phase) -> bool {
        self.steps.iter().any(|s| s.ok && s.phase == phase)
    }

    /// The last step of `phase`.
    pub fn last_of(&self, phase: Phase) -> Option<&Step> {
        self.steps.iter().rev().find(|s| s.phase == phase)
    }

    /// Where it stands at `now`, and why it is stuck if it is.
    pub fn state(
        &self,
        timers: &Timers,
        now: Instant,
    ) -> (State, Option<super::diagnose::Diagnosis>) {
        if self.phase().booted() {
            return (State::Booted, None);
        }
        match super::diagnose::diagnose(self, timers, now) {
            Some(d) => (State::Stuck, Some(d)),
            None => (State::Booting, None),
        }
    }

    pub(super) fn push(&mut self, step: Step, limits: &Limits) {
        if self.steps.len() < limits.steps {
            self.steps.push(step);
        } else {
            self.steps_dropped += 1;
        }
    }

    /// The step of a transfer of `path` still running.
    pub(super) fn running(&mut self, proto: &'static str, path: &str) -> Option<&mut Step> {
        self.steps
            .iter_mut()
            .rev()
            .find(|s| s.end.is_none() && s.proto == proto && s.what == path)
    }

    /// Which step a transfer of `path` (URL path, no query) is.
    pub(super) fn classify(&mut self, proto: Proto, path: &str) -> Phase {
        if let Some(kind) = self.expect.take() {
            return match kind {
                PageKind::Script => Phase::Script,
                PageKind::Local => Phase::Local,
                PageKind::Config => Phase::Answers,
                PageKind::Done => Phase::Done,
            };
        }
        let named = |url: &str| !url.is_empty() && rooted(url) == path;
        let at = self.phase();
        if named(&self.given.nbp) && at <= Phase::Nbp {
            return Phase::Nbp;
        }
        if named(&self.given.script) {
            return Phase::Script;
        }
        if let Some(plan) = &self.plan {
            if plan.kernel.as_deref().is_some_and(named) {
                return Phase::Kernel;
            }
            if plan.initrds.iter().any(|u| named(u)) {
                return Phase::Initrd;
            }
            if plan.answers.as_deref().is_some_and(named) {
                return Phase::Answers;
            }
            if plan.chain.as_deref().is_some_and(named) {
                return Phase::Script;
            }
        }
        match at {
            Phase::Dhcp | Phase::Nbp if proto == Proto::Tftp => Phase::Nbp,
            Phase::Dhcp if !self.given.nbp.is_empty() => Phase::Nbp,
            Phase::Dhcp | Phase::Nbp | Phase::IpxeDhcp => Phase::Script,
            Phase::Script => Phase::Kernel,
            Phase::Kernel | Phase::Initrd => Phase::Initrd,
            _ => Phase::Answers,
        }
    }

    /// Keeps the script text it got and what it names.
    pub(super) fn learn_script(&mut self, text: &str, base: &str) {
        let mut end = text.len().min(SCRIPT_MAX);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.script = Some(text[..end].to_owned());
        // A chain to a script keeps what the first one named.
        if let Ok(plan) = script::plan(text, base) {
            if plan.kernel.is_some() || self.plan.is_none() {
                self.plan = Some(plan);
            }
        }
    }
}

/// The path of `url` (`http://host/a/b?q` -> `/a/b`; `a/b` -> `/a/b`).
pub fn url_path(url: &str) -> &str {
    let rest = match url.split_once("://") {
        Some((_, after)) => after.find('/').map_or("/", |i| &after[i..]),
        None => url,
    };
    rest.split(['?', '#']).next().unwrap_or(rest)
}

/// The path of `url` with one leading `/`.
pub fn rooted(url: &str) -> String {
    let p = url_path(url);
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}
