//! Why a boot stalled, from what real firmware is known to do (CLIENTS.md, the
//! storm's firmware models): each wait has a timer ([`Timers`]); a boot whose
//! last step failed, or that waited past the timer of the step it is at, gets
//! a diagnosis naming its evidence.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::timeline::{Boot, Phase, Step, Timers};

/// A stuck boot's likely cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    /// A stable name: `nbp-not-requested`, `tftp-stalled`, ...
    pub code: &'static str,
    /// What is likely wrong and what to look at.
    pub summary: String,
    /// What was seen, one fact a line.
    pub evidence: Vec<String>,
    /// Since when it has been stuck.
    pub since: Instant,
}

/// A failed step is final once the client has been quiet this long (it may
/// retry at once).
const GRACE: Duration = Duration::from_secs(3);

/// Every code a diagnosis can have, for documentation and the page's legend.
pub const CODES: [&str; 13] = [
    "dhcp-unanswered",
    "dhcp-nak",
    "offer-not-taken",
    "no-boot-file",
    "nbp-not-requested",
    "tftp-stalled",
    "file-missing",
    "fetch-failed",
    "no-ipxe-dhcp",
    "script-not-requested",
    "script-error",
    "no-installer-dhcp",
    "no-answers",
];

/// Seconds from the boot's start, as evidence shows them.
fn at(boot: &Boot, t: Instant) -> String {
    format!(
        "+{:.1} s",
        t.saturating_duration_since(boot.started).as_secs_f64()
    )
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

/// Why `boot` is stuck at `now`, if it is.
pub fn diagnose(boot: &Boot, timers: &Timers, now: Instant) -> Option<Diagnosis> {
    if boot.phase().booted() {
        return None;
    }
    if boot
        .steps
        .iter()
        .any(|s| s.end.is_none() && s.proto != "dhcp")
    {
        // A transfer is running: its own timers end it.
        return None;
    }
    if let Some(d) = template_failed(boot) {
        return Some(d);
    }
    let last = boot.steps.last()?;
    if let (Some(end), false) = (last.end, last.ok) {
        if last.note.as_deref() != Some("size probe") && now.saturating_duration_since(end) >= GRACE
        {
            if let Some(d) = failed(boot, last, end) {
                return Some(d);
            }
        }
    }
    waited(boot, timers, now)
}

fn template_failed(boot: &Boot) -> Option<Diagnosis> {
    let e = boot.page_error.as_ref()?;
    let step = boot.last_of(Phase::Script)?;
    let mut evidence = vec![format!(
        "{} its script was asked for: {}",
        at(boot, step.start),
        step.what
    )];
    evidence.push(format!("the template failed: {e}"));
    script_lines(boot, &mut evidence);
    Some(Diagnosis {
        code: "script-error",
        summary: "its profile's template failed for this machine, so its script boots nothing: fix the template (rackboot check renders every profile)".into(),
        evidence,
        since: step.end.unwrap_or(step.start),
    })
}

fn script_lines(boot: &Boot, evidence: &mut Vec<String>) {
    if let Some(s) = &boot.script {
        evidence.push("the script it got:".into());
        evidence.extend(s.lines().take(20).map(|l| format!("  {l}")));
    }
}

fn failed(boot: &Boot, step: &Step, end: Instant) -> Option<Diagnosis> {
    let when = at(boot, step.start);
    let d = |code, summary: String, evidence| {
        Some(Diagnosis {
            code,
            summary,
            evidence,
            since: end,
        })
    };
    if step.proto == "dhcp" {
        return if step.note.as_deref() == Some("NAK") {
            d(
                "dhcp-nak",
                "this server NAKed its request: the address it asked for is not its own here (it moved to another subnet, or holds another server's lease)".into(),
                vec![format!("{when} {}", step.what)],
            )
        } else {
            None
        };
    }
    let tries: Vec<&Step> = boot
        .steps
        .iter()
        .filter(|s| s.what == step.what && s.end.is_some() && !s.ok)
        .collect();
    let mut evidence: Vec<String> = tries
        .iter()
        .map(|s| {
            let mut line = format!(
                "{} {} {} ({}): {}",
                at(boot, s.start),
                s.proto,
                s.what,
                s.phase.name(),
                s.note.as_deref().unwrap_or("failed")
            );
            if let Some((acked, blocks, blksize)) = s.blocks {
                let _ = write!(
                    line,
                    ", {acked} of {blocks} blocks of {blksize} bytes acknowledged, {} windows resent",
                    s.resends
                );
            }
            line
        })
        .collect();
    match (step.proto, step.note.as_deref().unwrap_or("")) {
        ("tftp", "timeout") => {
            let (acked, _, blksize) = step.blocks.unwrap_or((0, 0, 512));
            let same =
                tries.len() > 1 && tries.iter().all(|s| s.blocks.map(|b| b.0) == Some(acked));
            let summary = if acked == 0 {
                "the client acknowledged no block of the transfer: the server's packets from its transfer port do not reach it (a firewall or NAT that lets only port 69 through, or asymmetric routing)".to_owned()
            } else {
                format!(
                    "the transfer stopped at block {}{}: a path MTU below the block size ({} bytes on the wire; lower tftp.blksize or fix the MTU), or a middlebox dropping the transfer",
                    acked + 1,
                    if same { " on every try" } else { "" },
                    u32::from(blksize) + 32
                )
            };
            d("tftp-stalled", summary, evidence)
        }
        ("http", note) if step.what.is_empty() || note.starts_with("HTTP 404") => d(
            "file-missing",
            format!(
                "{} is not served (404): put it in the served tree, or fix the URL that names it",
                step.what
            ),
            evidence,
        ),
        ("tftp", note) if note.contains("not_found") || note.contains("not found") => d(
            "file-missing",
            format!(
                "{} is not served over TFTP: put it in the served tree, or fix the DHCP boot file",
                step.what
            ),
            evidence,
        ),
        _ => {
            evidence.push(format!("its last step: {}", step.phase.name()));
            d(
                "fetch-failed",
                format!("fetching {} failed: see the evidence", step.what),
                evidence,
            )
        }
    }
}

fn waited(boot: &Boot, t: &Timers, now: Instant) -> Option<Diagnosis> {
    let last = boot.steps.last()?;
    let phase = boot.phase();
    let quiet_since = last.end.unwrap_or(last.start).max(
        boot.steps
            .iter()
            .filter_map(|s| s.end)
            .max()
            .unwrap_or(last.start),
    );
    let quiet = now.saturating_duration_since(quiet_since);
    // Most boots are moving: no wait is over yet, and no evidence is written.
    let shortest = [
        t.request,
        t.nbp,
        t.ipxe,
        t.script,
        t.kernel,
        t.installer,
        t.answers,
    ]
    .into_iter()
    .min()
    .unwrap_or_default();
    if quiet < shortest {
        return None;
    }
    let d = |code, timer: Duration, summary: String, evidence: Vec<String>| {
        (quiet >= timer).then_some(Diagnosis {
            code,
            summary,
            evidence,
            since: quiet_since,
        })
    };
    let dhcp = boot.last_of(Phase::Dhcp);
    match phase {
        Phase::Dhcp => {
            let step = dhcp?;
            if step.end.is_none() {
                if let Some(why) = step.note.as_deref().filter(|n| n.starts_with("not answered")) {
                    return d(
                        "dhcp-unanswered",
                        t.request,
                        format!("this server does not answer its DHCP ({why}): see the DHCP subnets and pools"),
                        vec![format!("{} {}", at(boot, step.start), step.what)],
                    );
                }
                return d(
                    "offer-not-taken",
                    t.request,
                    "it was offered an address but never asked this server for it: it took another server's offer, or cannot hear this one (a relay not passing replies, a VLAN mismatch)".into(),
                    vec![format!("{} {}", at(boot, step.start), step.what)],
                );
            }
            let evidence = vec![format!(
                "{} its DHCP: {}; boot file {:?}, next server {}",
                at(boot, step.start),
                step.what,
                if boot.given.nbp.is_empty() { &boot.given.script } else { &boot.given.nbp },
                boot.given
                    .next_server
                    .map_or_else(|| "-".to_owned(), |a| a.to_string())
            )];
            if boot.given.nbp.is_empty() && !boot.given.script.is_empty() {
                return d(
                    "script-not-requested",
                    t.script,
                    format!(
                        "iPXE was given its script {} but has not asked for it in {} s: a wrong host or port in the URL, or HTTP blocked between them",
                        boot.given.script,
                        secs(t.script)
                    ),
                    evidence,
                );
            }
            if boot.given.nbp.is_empty() {
                return d(
                    "no-boot-file",
                    t.nbp,
                    format!("its DHCP answer named no boot file: no [[dhcp.boot]] rule takes this firmware ({})", boot.firmware),
                    evidence,
                );
            }
            d(
                "nbp-not-requested",
                t.nbp,
                format!(
                    "it was told to boot {} but asked for no file in {} s: its TFTP is blocked, or the next server is wrong",
                    boot.given.nbp,
                    secs(t.nbp)
                ),
                evidence,
            )
        }
        Phase::Nbp => {
            let step = boot.last_of(Phase::Nbp)?;
            d(
                "no-ipxe-dhcp",
                t.ipxe,
                format!(
                    "its NBP went out in full but no iPXE DHCP came from this MAC in {} s: the link was reset after the NBP started (STP or LACP on the switch port: make it an edge port, allow LACP fallback), or the NBP does not run on this firmware",
                    secs(t.ipxe)
                ),
                vec![format!(
                    "{} {} {} sent, {} bytes",
                    at(boot, step.start),
                    step.proto,
                    step.what,
                    step.bytes
                )],
            )
        }
        Phase::IpxeDhcp => d(
            "script-not-requested",
            t.script,
            format!(
                "iPXE got its address and script URL {} but has not asked for it in {} s: a wrong host or port in the URL, or HTTP blocked",
                boot.given.script,
                secs(t.script)
            ),
            vec![format!("{} iPXE's DHCP answered", at(boot, quiet_since))],
        ),
        Phase::Script => {
            let step = boot.last_of(Phase::Script)?;
            let mut evidence = vec![format!("{} got its script {}", at(boot, step.start), step.what)];
            let nothing = boot
                .script
                .as_deref()
                .is_some_and(|s| crate::sim::script::plan(s, "http://server/").is_err());
            script_lines(boot, &mut evidence);
            d(
                "script-error",
                t.kernel,
                if nothing {
                    "its script boots nothing (no kernel or chain line): see the script it got".into()
                } else {
                    format!("its script asked for no kernel in {} s: a line of it fails in iPXE (a wrong URL, a bad variable); see the script it got", secs(t.kernel))
                },
                evidence,
            )
        }
        Phase::Kernel | Phase::Initrd => {
            let evidence = boot
                .steps
                .iter()
                .filter(|s| s.ok && matches!(s.phase, Phase::Kernel | Phase::Initrd))
                .map(|s| format!("{} {} {} sent, {} bytes", at(boot, s.start), s.phase.name(), s.what, s.bytes))
                .collect();
            d(
                "no-installer-dhcp",
                t.installer,
                format!(
                    "its kernel and initrd went out but no DHCP came from its installer in {} s: the kernel or its NIC driver failed, or a wrong console= hides its error (watch its console)",
                    secs(t.installer)
                ),
                evidence,
            )
        }
        Phase::InstallerDhcp => {
            let step = boot.last_of(Phase::InstallerDhcp)?;
            let mut evidence = vec![format!("{} the installer's DHCP: {}", at(boot, step.start), step.what)];
            let summary = if boot.given.installer_dns == Some(false) {
                evidence.push("its answer carried no DNS server (option 6)".into());
                "its installer got an address without a DNS server (option 6): netcfg stops to ask for one and never fetches its answers; give the subnet dns servers".to_owned()
            } else {
                format!(
                    "its installer got an address but asked for no answers in {} s: check url= on its kernel command line",
                    secs(t.answers)
                )
            };
            d("no-answers", t.answers, summary, evidence)
        }
        Phase::Answers | Phase::Done | Phase::Local => None,
    }
}

#[cfg(test)]
mod tests;
