//! Which address a client gets: its reservation, its offer, its last lease,
//! what it asks for, else the next free one; offers held and given back; the
//! allocation cursor that keeps a pool packed from its start.

use std::cmp::Reverse;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;

use super::policy::{self, Firmware};
use super::request::Request;
use super::{Engine, Host, Offer};
use crate::lease::Entry;

impl Engine {
    /// Holds `ip` for `client` until the offer expires (an offer of another
    /// address is given back). Only a client's first offer copies its key.
    pub(super) fn hold(&mut self, now: Instant, client: &[u8], ip: Ipv4Addr) {
        let expires_at = now + self.settings.offer;
        let key = match self.offers.get_key_value(client) {
            Some((key, old)) => {
                let (key, old_ip) = (Arc::clone(key), old.ip);
                if old_ip != ip && self.offered.get(&old_ip).is_some_and(|c| **c == *client) {
                    self.unhold_ip(old_ip);
                }
                // Its queued deadline re-arms itself when it fires.
                key
            }
            None => {
                let key: Arc<[u8]> = Arc::from(client);
                self.expiry.push(Reverse((expires_at, Arc::clone(&key))));
                key
            }
        };
        self.offers.insert(
            Arc::clone(&key),
            Offer {
                ip,
                expires_at,
                offered_at: now,
            },
        );
        self.hold_ip(ip, key);
    }

    /// The reservation of `r`'s client: the first host that names it (by
    /// MAC or client id) and whose tag filter its tags pass (the tags of
    /// its request, without its subnet's: dnsmasq's order).
    pub(super) fn host_of(&self, r: &Request<'_>) -> Option<&Host> {
        let (mac, client) = (r.packet.mac(), r.client.as_bytes());
        let mut tags: Option<Vec<&str>> = None;
        self.settings.hosts.iter().find(|h| {
            if !h.is(mac, client) {
                return false;
            }
            if !h.is_filtered() {
                return true;
            }
            let tags = tags.get_or_insert_with(|| {
                let facts = Firmware::of(&r.options, r.packet.chaddr(), r.packet.giaddr());
                policy::decide_tagged(&self.settings.rules, &facts, &[]).1
            });
            h.serves(tags)
        })
    }

    pub(super) fn reservation_for(&self, r: &Request<'_>) -> Option<Ipv4Addr> {
        self.host_of(r)?.ip
    }

    /// Whether `ip` may be offered to `client` at `now`.
    pub(super) fn usable(
        &self,
        now: Instant,
        subnet: usize,
        ip: Ipv4Addr,
        client: &[u8],
        mac: Option<[u8; 6]>,
    ) -> bool {
        let s = &self.settings.subnets[subnet];
        s.in_ranges(ip)
            && ip != s.network
            && ip != s.broadcast()
            && !s.exclude.contains(&ip)
            // A reserved address goes to its host only (one that holds
            // only for tagged requests gives it through `reservation_for`).
            && self.reserved.get(&ip).is_none_or(|&h| {
                let host = &self.settings.hosts[h];
                !host.is_filtered() && host.is(mac, client)
            })
            && self.table.is_free_for(ip, client, self.unix(now))
            && self.offered.get(&ip).is_none_or(|c| {
                **c == *client || self.offers.get(&**c).is_none_or(|o| o.expires_at <= now)
            })
    }

    /// The address to offer: the reservation, the outstanding offer, the
    /// client's last lease, the address it asks for, else the next free one in
    /// order.
    pub(super) fn choose(
        &mut self,
        now: Instant,
        subnet: usize,
        r: &Request<'_>,
        requested: Option<Ipv4Addr>,
    ) -> Option<Ipv4Addr> {
        let (client, mac) = (r.client.as_bytes(), r.packet.mac());
        if let Some(ip) = self.reservation_for(r) {
            if self.settings.subnets[subnet].contains(ip) {
                return Some(ip);
            }
        }
        let offered = self
            .offers
            .get(client)
            .filter(|o| o.expires_at > now)
            .map(|o| o.ip);
        let held = self.table.of_client(client).map(|l| l.ip);
        for ip in [offered, held, requested].into_iter().flatten() {
            if self.usable(now, subnet, ip, client, mac) {
                return Some(ip);
            }
        }
        let size = self.settings.subnets[subnet].size();
        let (lo, hi) = share(self.settings.balance, size);
        let start = self.cursors[subnet].clamp(lo, hi.saturating_sub(1).max(lo));
        // First pass: addresses no other client ever held, this server's
        // share from the cursor (the whole pool when it serves alone), then
        // the other servers' shares from the pool's top down, so that a
        // server past its share meets its peers' allocations last. Second
        // pass: expired leases of other clients.
        let fresh =
            |ip| !matches!(self.table.get(ip), Some(Entry::Bound(l)) if *l.client != *client);
        let own = (start..hi).chain(lo..start);
        let others = (0..size).rev().filter(|i| !(lo..hi).contains(i));
        for i in own.chain(others) {
            let ip = self.settings.subnets[subnet].nth(i)?;
            if fresh(ip) && self.usable(now, subnet, ip, client, mac) {
                if (lo..hi).contains(&i) {
                    self.cursors[subnet] = if i + 1 >= hi { lo } else { i + 1 };
                }
                return Some(ip);
            }
        }
        (0..size)
            .filter_map(|i| self.settings.subnets[subnet].nth(i))
            .find(|ip| self.usable(now, subnet, *ip, client, mac))
    }

    pub(super) fn drop_offer(&mut self, client: &[u8]) {
        if let Some(o) = self.offers.remove(client) {
            if self.offered.get(&o.ip).is_some_and(|c| **c == *client) {
                self.unhold_ip(o.ip);
                self.rewind(o.ip);
            }
        }
    }

    /// Moves the allocation cursor back to `ip` when it became free below it,
    /// so that the pool stays packed from its start.
    pub(super) fn rewind(&mut self, ip: Ipv4Addr) {
        let balance = self.settings.balance;
        for (s, cursor) in self.settings.subnets.iter().zip(&mut self.cursors) {
            if let Some(i) = s.index(ip) {
                let (lo, hi) = share(balance, s.size());
                if (lo..hi).contains(&i) {
                    *cursor = (*cursor).min(i);
                }
            }
        }
    }
}

/// The share of a pool of `size` addresses of the server `balance` names:
/// the N servers split it into N consecutive parts.
pub(super) fn share(balance: Option<super::balance::Balance>, size: u64) -> (u64, u64) {
    match balance {
        Some(b) => {
            let n = u64::from(b.servers.max(1));
            let k = u64::from(b.index);
            (size * k / n, size * (k + 1) / n)
        }
        None => (0, size),
    }
}
