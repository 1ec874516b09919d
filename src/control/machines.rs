//! The machines endpoints of the control: every machine the server knows
//! (the configuration file's inventory, the admin API's records, what
//! machines were seen asking for, the DHCP leases) in one view, and the
//! API's changes, checked against the served profiles and made durable
//! before they are answered.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::Control;
use crate::machines::{Mac, Netboot, Overlay, Phase};
use crate::proto::boot::Profiles;

/// Machines per state name.
pub(super) type Counts = BTreeMap<&'static str, u64>;

/// One machine as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MachineView {
    /// Its MAC.
    pub mac: String,
    /// Where the server knows it from: `file`, `api`, `seen`, `lease`.
    pub known_from: Vec<&'static str>,
    /// Its name: the inventory's, else what it reported, else its lease's.
    pub hostname: Option<String>,
    /// The profile its next script request gets (none: no profile takes it).
    pub profile: Option<String>,
    /// The profile it is pinned to (file or API), if any.
    pub pinned_profile: Option<String>,
    /// What its boot script does now.
    pub netboot: Netboot,
    /// Labels (file and API merged).
    pub labels: BTreeMap<String, String>,
    /// Template variables (file and API merged).
    pub vars: BTreeMap<String, String>,
    /// What the API set, as it set it.
    pub api: Option<Overlay>,
    /// SMBIOS UUID, as it said it.
    pub uuid: Option<String>,
    /// iPXE's build architecture.
    pub arch: Option<String>,
    /// iPXE's platform.
    pub platform: Option<String>,
    /// Its address: the one it asked from, else its lease's.
    pub ip: Option<String>,
    /// When it was last seen (unix seconds): a script, answers or done request.
    pub last_seen: Option<u64>,
    /// What it asked for last: `script`, `config`, `done`, `local`.
    pub phase: Option<Phase>,
    /// When its installer last reported done (unix seconds).
    pub done_at: Option<u64>,
}

/// A `PUT` or `PATCH` body: the fields of [`Overlay`]. In a `PATCH`, a field
/// given replaces the API's (labels and vars merge key by key, `null`
/// removes a key), `null` for a field removes the API's value.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Patch {
    #[serde(default, deserialize_with = "present")]
    hostname: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    profile: Option<Option<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
    #[serde(default)]
    vars: Option<BTreeMap<String, Option<String>>>,
    #[serde(default, deserialize_with = "present")]
    netboot: Option<Option<Netboot>>,
}

/// A field given as `null` is `Some(None)`; a field left out is `None`.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl Patch {
    fn apply(self, o: &mut Overlay) {
        if let Some(h) = self.hostname {
            o.hostname = h;
        }
        if let Some(p) = self.profile {
            o.profile = p;
        }
        for (map, into) in [(self.labels, &mut o.labels), (self.vars, &mut o.vars)] {
            for (k, v) in map.unwrap_or_default() {
                match v {
                    Some(v) => into.insert(k, v),
                    None => into.remove(&k),
                };
            }
        }
        if let Some(n) = self.netboot {
            o.netboot = n;
        }
    }
}

/// Why a machines request was refused, with its HTTP status.
#[derive(Debug)]
pub enum Refused {
    /// 400: the body is not JSON of the right shape (the text names the field).
    Bad(String),
    /// 404: no such machine.
    Missing(String),
    /// 409: the server cannot do it (no profiles, no state file, disk).
    Conflict(String),
    /// 422: the change does not fit the profiles.
    Unfit(String),
}

impl Control {
    fn profiles(&self) -> Result<std::sync::Arc<crate::store::Snapshot>, Refused> {
        let snapshot = self.published.current();
        if snapshot.profiles().is_none() {
            return Err(Refused::Conflict(
                "this server serves no boot profiles: add [[profile]] to its configuration".into(),
            ));
        }
        Ok(snapshot)
    }

    /// Every machine the server knows, by MAC.
    ///
    /// # Errors
    /// No boot profiles are served.
    pub fn machines(&self) -> Result<Vec<MachineView>, Refused> {
        let snapshot = self.profiles()?;
        let Some(p) = snapshot.profiles() else {
            return Ok(Vec::new());
        };
        let leases = self.leases().unwrap_or_default();
        let mut macs: BTreeSet<Mac> = p.file_machines().copied().collect();
        macs.extend(p.book().records().into_iter().map(|(m, _)| m));
        macs.extend(p.book().all_seen().into_iter().map(|(m, _)| m));
        macs.extend(leases.iter().filter_map(|l| Mac::parse(&l.mac)));
        Ok(macs
            .into_iter()
            .filter_map(|m| view(p, m, &leases))
            .collect())
    }

    /// One machine.
    ///
    /// # Errors
    /// No boot profiles are served, or the server knows no such machine.
    pub fn machine(&self, mac: Mac) -> Result<MachineView, Refused> {
        let snapshot = self.profiles()?;
        let leases = self.leases().unwrap_or_default();
        snapshot
            .profiles()
            .and_then(|p| view(p, mac, &leases))
            .ok_or_else(|| Refused::Missing(format!("no machine {mac} is known")))
    }

    /// `PUT` (`replace`: the API's record becomes `body`) or `PATCH` of
    /// `mac`: checked against the served profiles, durable before it returns.
    ///
    /// # Errors
    /// The body does not parse, the change does not fit the profiles, or it
    /// cannot be made durable: nothing changed.
    pub fn set_machine(
        &self,
        mac: Mac,
        body: &[u8],
        replace: bool,
    ) -> Result<MachineView, Refused> {
        let patch: Patch = serde_json::from_slice(body)
            .map_err(|e| Refused::Bad(format!("the body is not a machine: {e}")))?;
        let _one = self
            .reloads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let snapshot = self.profiles()?;
        let Some(p) = snapshot.profiles() else {
            return Err(Refused::Conflict("no profiles".into()));
        };
        let book = p.book();
        let mut overlay = if replace {
            Overlay::default()
        } else {
            book.overlay(&mac).unwrap_or_default()
        };
        patch.apply(&mut overlay);
        p.check_overlay(mac, &overlay)
            .map_err(|e| Refused::Unfit(format!("machine {mac}: {e}")))?;
        let facts = p.facts_seen(mac);
        let now = p.machine(&mac);
        let before = Profiles::netboot(now.as_ref(), p.choose(&facts, now.as_ref()));
        let next = p
            .file_machine(&mac)
            .cloned()
            .unwrap_or(crate::proto::boot::Machine {
                mac,
                ..Default::default()
            })
            .overlaid(&overlay);
        let after = Profiles::netboot(Some(&next), p.choose(&facts, Some(&next)));
        book.change(mac, |r| {
            // Back to installing: done URLs of the earlier round stop working.
            if after == Netboot::Install && before != Netboot::Install {
                r.round += 1;
            }
            r.machine = (overlay != Overlay::default()).then_some(overlay);
            Ok(())
        })
        .map_err(Refused::Conflict)?;
        tracing::info!(%mac, by = "admin API", "machine changed");
        drop(_one);
        self.machine(mac)
    }

    /// Removes the API's record of `mac` (the file's entry, if any, shows
    /// again) and what it was seen doing; a new install round begins.
    ///
    /// # Errors
    /// The API has no record of it and it was not seen, or the change
    /// cannot be made durable.
    pub fn delete_machine(&self, mac: Mac) -> Result<(), Refused> {
        let snapshot = self.profiles()?;
        let Some(p) = snapshot.profiles() else {
            return Ok(());
        };
        let book = p.book();
        if book.record(&mac).and_then(|r| r.machine).is_none() && book.seen(&mac).is_none() {
            return Err(Refused::Missing(if p.in_file(&mac) {
                format!(
                    "machine {mac} has no changes from the admin API; it is in the configuration \
                     file: remove its [[machine]] there and reload"
                )
            } else {
                format!("no machine {mac} is known")
            }));
        }
        if book.record(&mac).is_some() {
            book.change(mac, |r| {
                r.machine = None;
                r.round += 1;
                r.done_at = None;
                Ok(())
            })
            .map_err(Refused::Conflict)?;
        }
        book.forget(&mac);
        tracing::info!(%mac, by = "admin API", "machine deleted");
        Ok(())
    }

    /// Machines by netboot state and by phase last seen, for metrics.
    pub(super) fn machine_counts(&self) -> Option<(Counts, Counts)> {
        let snapshot = self.published.current();
        let p = snapshot.profiles()?;
        let mut macs: BTreeSet<Mac> = p.file_machines().copied().collect();
        macs.extend(p.book().records().into_iter().map(|(m, _)| m));
        let seen = p.book().all_seen();
        macs.extend(seen.iter().map(|(m, _)| *m));
        let mut netboot: BTreeMap<&'static str, u64> =
            [Netboot::Install, Netboot::Local, Netboot::Always]
                .into_iter()
                .map(|n| (n.name(), 0))
                .collect();
        for mac in &macs {
            let machine = p.machine(mac);
            let facts = p.facts_seen(*mac);
            let profile = p.choose(&facts, machine.as_ref());
            *netboot
                .entry(Profiles::netboot(machine.as_ref(), profile).name())
                .or_default() += 1;
        }
        let mut phase: BTreeMap<&'static str, u64> =
            Phase::ALL.into_iter().map(|f| (f.name(), 0)).collect();
        for (_, s) in seen {
            if let Some(f) = s.phase {
                *phase.entry(f.name()).or_default() += 1;
            }
        }
        Some((netboot, phase))
    }
}

fn view(p: &Profiles, mac: Mac, leases: &[crate::io::dhcp::LeaseView]) -> Option<MachineView> {
    let machine = p.machine(&mac);
    let record = p.book().record(&mac);
    let seen = p.book().seen(&mac);
    let lease = leases
        .iter()
        .filter(|l| Mac::parse(&l.mac) == Some(mac))
        .max_by_key(|l| l.expires);
    let mut known_from = Vec::new();
    if p.in_file(&mac) {
        known_from.push("file");
    }
    if record.as_ref().is_some_and(|r| r.machine.is_some()) {
        known_from.push("api");
    }
    if seen.is_some() {
        known_from.push("seen");
    }
    if lease.is_some() {
        known_from.push("lease");
    }
    if known_from.is_empty() {
        return None;
    }
    let facts = p.facts_seen(mac);
    let profile = p.choose(&facts, machine.as_ref());
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Some(MachineView {
        mac: mac.to_string(),
        known_from,
        hostname: machine
            .as_ref()
            .and_then(|m| m.hostname.clone())
            .or_else(|| seen.as_ref().and_then(|s| nonempty(&s.hostname)))
            .or_else(|| lease.and_then(|l| nonempty(&l.hostname))),
        profile: profile.map(|x| x.name.clone()),
        pinned_profile: machine.as_ref().and_then(|m| m.profile.clone()),
        netboot: Profiles::netboot(machine.as_ref(), profile),
        labels: machine
            .as_ref()
            .map(|m| m.labels.clone())
            .unwrap_or_default(),
        vars: machine.as_ref().map(|m| m.vars.clone()).unwrap_or_default(),
        api: record.as_ref().and_then(|r| r.machine.clone()),
        uuid: seen.as_ref().and_then(|s| nonempty(&s.uuid)),
        arch: seen.as_ref().and_then(|s| nonempty(&s.arch)),
        platform: seen.as_ref().and_then(|s| nonempty(&s.platform)),
        ip: seen
            .as_ref()
            .and_then(|s| s.ip.map(|i| i.to_string()))
            .or_else(|| lease.map(|l| l.ip.to_string())),
        last_seen: seen.as_ref().map(|s| s.at),
        phase: seen.as_ref().and_then(|s| s.phase),
        done_at: record.and_then(|r| r.done_at),
    })
}
