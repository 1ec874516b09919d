//! The lease tables: which address is bound to which client until when, and
//! which addresses were declined, one table per address family ([`Table`] for
//! DHCPv4, [`Table6`] for DHCPv6's IA_NA addresses) over one journal. Every
//! change is also encoded as a journal record into a pending buffer; the DHCP
//! worker writes and syncs that buffer (journal.rs) before it sends the replies
//! of the batch. Nothing here reads a clock: times are unix seconds handed in
//! by the caller.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod journal;
pub mod pg;

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

pub use journal::{Journal, Record};

/// One binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease<A = Ipv4Addr> {
    /// The address.
    pub ip: A,
    /// The client's identity: for DHCPv4 option 61, or htype + chaddr (see
    /// proto::dhcp); for DHCPv6 the DUID then the IAID (see proto::dhcp6).
    pub client: Box<[u8]>,
    /// The client's hardware address (chaddr; for DHCPv6 the MAC when known,
    /// else empty).
    pub hw: Box<[u8]>,
    /// The host name the client sent or was given (may be empty).
    pub hostname: Box<str>,
    /// When it ends, unix seconds.
    pub expires: u64,
}

/// A DHCPv6 binding.
pub type Lease6 = Lease<Ipv6Addr>;

/// What the table knows of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry<A = Ipv4Addr> {
    /// Bound (or once bound: an expired lease still says whose the address was,
    /// so the same client gets it back while nobody else needs it).
    Bound(Lease<A>),
    /// Declined by a client: not handed out until this unix second.
    Declined(u64),
}

/// One change to a table of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<A> {
    /// Bound (new or renewed).
    Bound(Lease<A>),
    /// Given back or taken away.
    Freed(A),
    /// Declined until a unix second.
    Declined(A, u64),
}

/// An address family the journal holds: how its changes are journal records.
pub trait Family: Copy + Eq + Hash + std::fmt::Debug {
    /// The record of a change.
    fn record(c: Change<Self>) -> Record;
    /// The change a record makes to this family's table, if it is of it.
    fn change(r: Record) -> Option<Change<Self>>;
}

impl Family for Ipv4Addr {
    fn record(c: Change<Self>) -> Record {
        match c {
            Change::Bound(l) => Record::Bound(l),
            Change::Freed(ip) => Record::Freed(ip),
            Change::Declined(ip, until) => Record::Declined(ip, until),
        }
    }

    fn change(r: Record) -> Option<Change<Self>> {
        match r {
            Record::Bound(l) => Some(Change::Bound(l)),
            Record::Freed(ip) => Some(Change::Freed(ip)),
            Record::Declined(ip, until) => Some(Change::Declined(ip, until)),
            _ => None,
        }
    }
}

impl Family for Ipv6Addr {
    fn record(c: Change<Self>) -> Record {
        match c {
            Change::Bound(l) => Record::Bound6(l),
            Change::Freed(ip) => Record::Freed6(ip),
            Change::Declined(ip, until) => Record::Declined6(ip, until),
        }
    }

    fn change(r: Record) -> Option<Change<Self>> {
        match r {
            Record::Bound6(l) => Some(Change::Bound(l)),
            Record::Freed6(ip) => Some(Change::Freed(ip)),
            Record::Declined6(ip, until) => Some(Change::Declined(ip, until)),
            _ => None,
        }
    }
}

/// A table of one family, and the journal records not yet written.
#[derive(Debug)]
pub struct Leases<A> {
    by_ip: HashMap<A, Entry<A>>,
    by_client: HashMap<Box<[u8]>, A>,
    pending: Vec<u8>,
}

/// The DHCPv4 table.
pub type Table = Leases<Ipv4Addr>;
/// The DHCPv6 table.
pub type Table6 = Leases<Ipv6Addr>;

impl<A> Default for Leases<A> {
    fn default() -> Self {
        Self {
            by_ip: HashMap::new(),
            by_client: HashMap::new(),
            pending: Vec::new(),
        }
    }
}

impl<A: Family> Leases<A> {
    /// A table rebuilt from replayed journal records (last record wins); the
    /// other family's records are skipped.
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut t = Self::default();
        for c in records.into_iter().filter_map(A::change) {
            t.apply(c);
        }
        t
    }

    fn apply(&mut self, c: Change<A>) {
        match c {
            Change::Bound(l) => {
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
            Change::Freed(ip) => {
                if let Some(Entry::Bound(l)) = self.by_ip.remove(&ip) {
                    self.by_client.remove(&l.client);
                }
            }
            Change::Declined(ip, until) => {
                if let Some(Entry::Bound(l)) = self.by_ip.get(&ip) {
                    let client = l.client.clone();
                    self.by_client.remove(&client);
                }
                self.by_ip.insert(ip, Entry::Declined(until));
            }
        }
    }

    fn record(&mut self, c: Change<A>) {
        journal::encode(&A::record(c.clone()), &mut self.pending);
        self.apply(c);
    }

    /// Applies a change another server made (or the store's own view of an
    /// address): the table follows it, and nothing is queued to write.
    pub fn learn(&mut self, r: Record) {
        if let Some(c) = A::change(r) {
            self.apply(c);
        }
    }

    /// Binds `lease.ip` to `lease.client` (a new lease or a renewal).
    pub fn bind(&mut self, lease: Lease<A>) {
        self.record(Change::Bound(lease));
    }

    /// Frees `ip`.
    pub fn free(&mut self, ip: A) {
        self.record(Change::Freed(ip));
    }

    /// Marks `ip` unusable until `until`.
    pub fn decline(&mut self, ip: A, until: u64) {
        self.record(Change::Declined(ip, until));
    }

    /// What is known of `ip`.
    pub fn get(&self, ip: A) -> Option<&Entry<A>> {
        self.by_ip.get(&ip)
    }

    /// The (possibly expired) lease of `client`.
    pub fn of_client(&self, client: &[u8]) -> Option<&Lease<A>> {
        match self.by_ip.get(self.by_client.get(client)?)? {
            Entry::Bound(l) => Some(l),
            Entry::Declined(_) => None,
        }
    }

    /// Whether `ip` may go to `client` at `now`: nothing known, this client's
    /// own, an expired lease, or a decline that has run out.
    pub fn is_free_for(&self, ip: A, client: &[u8], now: u64) -> bool {
        match self.by_ip.get(&ip) {
            None => true,
            Some(Entry::Bound(l)) => *l.client == *client || l.expires <= now,
            Some(Entry::Declined(until)) => *until <= now,
        }
    }

    /// Leases in force at `now`.
    pub fn active(&self, now: u64) -> impl Iterator<Item = &Lease<A>> {
        self.by_ip.values().filter_map(move |e| match e {
            Entry::Bound(l) if l.expires > now => Some(l),
            _ => None,
        })
    }

    /// Every binding, expired or not.
    pub fn bound(&self) -> impl Iterator<Item = &Lease<A>> {
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
                (_, Entry::Bound(l)) => {
                    journal::encode(&A::record(Change::Bound(l.clone())), &mut out);
                }
                (ip, Entry::Declined(until)) if *until > now => {
                    journal::encode(&A::record(Change::Declined(*ip, *until)), &mut out);
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

    #[test]
    fn both_families_share_one_journal_and_each_table_takes_its_own() {
        let mut t4 = Table::default();
        let mut t6 = Table6::default();
        t4.bind(lease(5, 1, 100));
        let ip6: Ipv6Addr = "2001:db8::105".parse().unwrap();
        t6.bind(Lease6 {
            ip: ip6,
            client: vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6, 0, 0, 0, 1].into(),
            hw: vec![1, 2, 3, 4, 5, 6].into(),
            hostname: "".into(),
            expires: 300,
        });
        t6.decline("2001:db8::106".parse().unwrap(), 400);
        let mut bytes = t4.take_pending();
        bytes.extend(t6.take_pending());
        let records = journal::decode(&bytes).records;
        assert_eq!(records.len(), 3);
        let r4 = Table::from_records(records.clone());
        let r6 = Table6::from_records(records);
        assert_eq!(r4.len(), 1);
        assert_eq!(r6.len(), 2);
        assert_eq!(r6.get(ip6), t6.get(ip6));
        assert!(!r6.is_free_for("2001:db8::106".parse().unwrap(), &[9], 399));
        assert_eq!(
            Table6::from_records(journal::decode(&t6.snapshot(0)).records).len(),
            2
        );
    }
}
