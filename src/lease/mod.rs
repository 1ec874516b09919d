//! The lease table: which address is bound to which client until when, and which
//! addresses were declined. Every change is also encoded as a journal record into
//! a pending buffer; the DHCP worker writes and syncs that buffer (journal.rs)
//! before it sends the ACKs of the batch. Nothing here reads a clock: times are
//! unix seconds handed in by the caller.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod journal;

use std::collections::HashMap;
use std::net::Ipv4Addr;

pub use journal::{Journal, Record};

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// The client's identity: option 61, or htype + chaddr (see proto::dhcp).
    pub client: Box<[u8]>,
    /// The client's hardware address (chaddr).
    pub hw: Box<[u8]>,
    /// The host name the client sent or was given (may be empty).
    pub hostname: Box<str>,
    /// When it ends, unix seconds.
    pub expires: u64,
}

/// What the table knows of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Bound (or once bound: an expired lease still says whose the address was,
    /// so the same client gets it back while nobody else needs it).
    Bound(Lease),
    /// Declined by a client: not handed out until this unix second.
    Declined(u64),
}

/// The table, and the journal records not yet written.
#[derive(Debug, Default)]
pub struct Table {
    by_ip: HashMap<Ipv4Addr, Entry>,
    by_client: HashMap<Box<[u8]>, Ipv4Addr>,
    pending: Vec<u8>,
}

impl Table {
    /// A table rebuilt from replayed journal records (last record wins).
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut t = Self::default();
        for r in records {
            t.apply(r);
        }
        t
    }

    fn apply(&mut self, r: Record) {
        match r {
            Record::Bound(l) => {
                if let Some(old) = self.by_client.get(&l.client).copied() {
                    if old != l.ip {
                        self.by_ip.remove(&old);
                    }
                }
                if let Some(Entry::Bound(prev)) = self.by_ip.get(&l.ip) {
                    if prev.client != l.client {
                        self.by_client.remove(&prev.client);
                    }
                }
                self.by_client.insert(l.client.clone(), l.ip);
                self.by_ip.insert(l.ip, Entry::Bound(l));
            }
            Record::Freed(ip) => {
                if let Some(Entry::Bound(l)) = self.by_ip.remove(&ip) {
                    self.by_client.remove(&l.client);
                }
            }
            Record::Declined(ip, until) => {
                if let Some(Entry::Bound(l)) = self.by_ip.get(&ip) {
                    let client = l.client.clone();
                    self.by_client.remove(&client);
                }
                self.by_ip.insert(ip, Entry::Declined(until));
            }
        }
    }

    fn record(&mut self, r: Record) {
        journal::encode(&r, &mut self.pending);
        self.apply(r);
    }

    /// Binds `lease.ip` to `lease.client` (a new lease or a renewal).
    pub fn bind(&mut self, lease: Lease) {
        self.record(Record::Bound(lease));
    }

    /// Frees `ip`.
    pub fn free(&mut self, ip: Ipv4Addr) {
        self.record(Record::Freed(ip));
    }

    /// Marks `ip` unusable until `until`.
    pub fn decline(&mut self, ip: Ipv4Addr, until: u64) {
        self.record(Record::Declined(ip, until));
    }

    /// What is known of `ip`.
    pub fn get(&self, ip: Ipv4Addr) -> Option<&Entry> {
        self.by_ip.get(&ip)
    }

    /// The (possibly expired) lease of `client`.
    pub fn of_client(&self, client: &[u8]) -> Option<&Lease> {
        match self.by_ip.get(self.by_client.get(client)?)? {
            Entry::Bound(l) => Some(l),
            Entry::Declined(_) => None,
        }
    }

    /// Whether `ip` may go to `client` at `now`: nothing known, this client's
    /// own, an expired lease, or a decline that has run out.
    pub fn is_free_for(&self, ip: Ipv4Addr, client: &[u8], now: u64) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(Entry::Bound(l)) => *l.client == *client || l.expires <= now,
            Some(Entry::Declined(until)) => *until <= now,
        }
    }

    /// Leases in force at `now`.
    pub fn active(&self, now: u64) -> impl Iterator<Item = &Lease> {
        self.by_ip.values().filter_map(move |e| match e {
            Entry::Bound(l) if l.expires > now => Some(l),
            _ => None,
        })
    }

    /// Every binding, expired or not.
    pub fn bound(&self) -> impl Iterator<Item = &Lease> {
        self.by_ip.values().filter_map(|e| match e {
            Entry::Bound(l) => Some(l),
            Entry::Declined(_) => None,
        })
    }

    /// Journal records written since the last call, to be made durable before
    /// the replies they stand behind are sent.
    pub fn take_pending(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }

    /// Puts back records whose write failed, so a later batch retries them.
    pub fn restore_pending(&mut self, mut bytes: Vec<u8>) {
        bytes.append(&mut self.pending);
        self.pending = bytes;
    }

    /// The whole table as journal records (for compaction): every binding, and
    /// declines still running at `now`.
    pub fn snapshot(&self, now: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for e in self.by_ip.iter() {
            match e {
                (_, Entry::Bound(l)) => journal::encode(&Record::Bound(l.clone()), &mut out),
                (ip, Entry::Declined(until)) if *until > now => {
                    journal::encode(&Record::Declined(*ip, *until), &mut out);
                }
                _ => {}
            }
        }
        out
    }

    /// Addresses known to the table.
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.by_ip.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(last: u8, client: u8, expires: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, last),
            client: vec![client].into(),
            hw: vec![0x52, 0x54, 0, 0, 0, client].into(),
            hostname: "".into(),
            expires,
        }
    }

    #[test]
    fn a_client_holds_one_address_and_the_last_record_wins() {
        let mut t = Table::default();
        t.bind(lease(5, 1, 100));
        t.bind(lease(6, 1, 200));
        assert_eq!(t.get(Ipv4Addr::new(10, 0, 0, 5)), None);
        assert_eq!(t.of_client(&[1]).unwrap().ip, Ipv4Addr::new(10, 0, 0, 6));
        assert!(!t.is_free_for(Ipv4Addr::new(10, 0, 0, 6), &[2], 150));
        assert!(t.is_free_for(Ipv4Addr::new(10, 0, 0, 6), &[2], 200));
        assert!(t.is_free_for(Ipv4Addr::new(10, 0, 0, 6), &[1], 150));
        let replayed = Table::from_records(journal::decode(&t.take_pending()).records);
        assert_eq!(replayed.of_client(&[1]), t.of_client(&[1]));
        assert_eq!(replayed.len(), 1);
    }

    #[test]
    fn decline_and_free_take_the_address_from_its_client() {
        let mut t = Table::default();
        t.bind(lease(5, 1, 100));
        t.decline(Ipv4Addr::new(10, 0, 0, 5), 50);
        assert_eq!(t.of_client(&[1]), None);
        assert!(!t.is_free_for(Ipv4Addr::new(10, 0, 0, 5), &[1], 10));
        assert!(t.is_free_for(Ipv4Addr::new(10, 0, 0, 5), &[1], 50));
        t.bind(lease(7, 2, 100));
        t.free(Ipv4Addr::new(10, 0, 0, 7));
        assert_eq!(t.of_client(&[2]), None);
        let snap = t.snapshot(10);
        let replayed = Table::from_records(journal::decode(&snap).records);
        assert_eq!(replayed.len(), 1);
        assert!(Table::from_records(journal::decode(&t.snapshot(60)).records).is_empty());
    }
}
