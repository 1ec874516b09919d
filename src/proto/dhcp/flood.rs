//! Bounds under a flood: a stream of DISCOVERs from random MACs must not hold
//! the whole pool, and one MAC must not take the worker's time.
//!
//! - Held offers: an OFFER holds its address for `Settings::offer`, but at
//!   most `Settings::held_offers_percent` of a subnet's pool is held by offers
//!   at once (a subnet is what a relay or an interface serves). Past that,
//!   OFFERs are still made, of free addresses, without a hold: the first
//!   REQUEST for an address wins it, and a client whose address went to
//!   another is NAKed and starts over. So real clients keep getting
//!   addresses while a flood runs, and the flood never holds more than its
//!   share. An unheld OFFER is not probed first.
//! - Answers per MAC: at most `Settings::answers_per_mac` messages from one
//!   MAC are answered per second; the rest are dropped (counted as
//!   `rate_limited`). Counting starts afresh each second and follows at
//!   most [`TRACKED`] MACs in a second (past that, messages pass).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Engine;

/// MACs counted in one second, at most.
pub(super) const TRACKED: usize = 65_536;

/// The flood guard's state.
#[derive(Debug, Default)]
pub(super) struct Guard {
    /// Addresses held by offers, per subnet (an index into the subnets).
    held: Vec<usize>,
    /// The start of the current second, and the messages per MAC in it.
    window: Option<Instant>,
    per_mac: HashMap<[u8; 6], u32>,
}

impl Guard {
    /// A guard for `subnets` subnets, none of their addresses held.
    pub(super) fn new(subnets: usize) -> Self {
        Self {
            held: vec![0; subnets],
            ..Self::default()
        }
    }
}

impl Engine {
    /// Holds `ip` for the offer keyed `key` (the one map of held addresses
    /// goes through here and [`Self::unhold_ip`], so the counts stay true).
    pub(super) fn hold_ip(&mut self, ip: Ipv4Addr, key: Arc<[u8]>) {
        if self.offered.insert(ip, key).is_none() {
            if let Some(n) = self
                .subnet_index(ip)
                .and_then(|s| self.guard.held.get_mut(s))
            {
                *n += 1;
            }
        }
    }

    /// Lets go of the hold on `ip`.
    pub(super) fn unhold_ip(&mut self, ip: Ipv4Addr) {
        if self.offered.remove(&ip).is_some() {
            if let Some(n) = self
                .subnet_index(ip)
                .and_then(|s| self.guard.held.get_mut(s))
            {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn subnet_index(&self, ip: Ipv4Addr) -> Option<usize> {
        self.settings.subnets.iter().position(|s| s.contains(ip))
    }

    /// Counts the held addresses afresh (after a reload moved the subnets).
    pub(super) fn recount_held(&mut self) {
        let mut held = vec![0; self.settings.subnets.len()];
        for ip in self.offered.keys() {
            if let Some(s) = self.subnet_index(*ip) {
                held[s] += 1;
            }
        }
        self.guard.held = held;
    }

    /// Whether a new offer in `subnet` may hold its address.
    pub(super) fn may_hold(&self, subnet: usize) -> bool {
        let size = self.settings.subnets[subnet].size();
        let cap = (size * u64::from(self.settings.held_offers_percent) / 100).max(1);
        (self.guard.held.get(subnet).copied().unwrap_or(0) as u64) < cap
    }

    /// Addresses held by offers in each subnet.
    pub fn held_offers(&self) -> &[usize] {
        &self.guard.held
    }

    /// Whether a message from `mac` may be answered at `now`.
    pub(super) fn admit(&mut self, now: Instant, mac: Option<[u8; 6]>) -> bool {
        let limit = self.settings.answers_per_mac;
        let Some(mac) = mac.filter(|_| limit > 0) else {
            return true;
        };
        let g = &mut self.guard;
        if g.window
            .is_none_or(|w| now.saturating_duration_since(w) >= Duration::from_secs(1))
        {
            g.window = Some(now);
            g.per_mac.clear();
        }
        if g.per_mac.len() >= TRACKED && !g.per_mac.contains_key(&mac) {
            return true;
        }
        let n = g.per_mac.entry(mac).or_default();
        *n += 1;
        *n <= limit
    }
}
