//! The lease journal: an append-only file of checksummed records. A lease is
//! written and fdatasync'ed before its ACK leaves; the worker batches a burst's
//! records into one write and one sync (group commit). Compaction rewrites the
//! live records into a new file and renames it over the old one.
//!
//! On open, every record whose checksum holds is replayed. A bad stretch (a
//! failed disk write, a flipped bit) is skipped by scanning on for the next
//! record whose header, checksum and fields all hold, so the good records on
//! both sides are kept; the stretch is reported with its offset, the damaged
//! file is kept aside for inspection and the journal rewritten without it. A
//! bad stretch with no good record after it is a write torn by a crash, and
//! the file is cut there.
//!
//! File: `RKBLEAS1` then records `len: u16 LE, crc32: u32 LE, payload[len]`;
//! payload: `kind: u8, ip, time: u64 LE` then, for a binding, `client`, `hw`
//! and `hostname`, each as `len: u16 LE, bytes`. Kinds 1-3 (bound, freed,
//! declined) carry a 4-byte IPv4 address, kinds 4-6 the same for a 16-byte
//! IPv6 address (DHCPv6).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use super::{Lease, Lease6};

const MAGIC: &[u8; 8] = b"RKBLEAS1";
const HEADER: usize = 6;
/// The longest payload a record can have: 25 fixed bytes (an IPv6 record's)
/// and three fields of at most 255 bytes (DHCP option lengths; a DHCPv6
/// client key is a DUID of at most 130 and an IAID), each with its length. A
/// scan past a bad stretch considers no longer candidate.
const MAX_PAYLOAD: usize = 25 + 3 * (2 + 255);

/// One change to the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An address bound to a client until `expires`.
    Bound(Lease),
    /// An address given back (RELEASE) or taken away.
    Freed(Ipv4Addr),
    /// An address a client declined: unusable until `until` (unix seconds).
    Declined(Ipv4Addr, u64),
    /// A DHCPv6 address bound to a client (DUID and IAID) until `expires`.
    Bound6(Lease6),
    /// A DHCPv6 address given back or taken away.
    Freed6(Ipv6Addr),
    /// A DHCPv6 address a client declined, until `until`.
    Declined6(Ipv6Addr, u64),
}

impl Record {
    /// Whether it is a DHCPv6 record.
    pub fn is_v6(&self) -> bool {
        matches!(
            self,
            Record::Bound6(_) | Record::Freed6(_) | Record::Declined6(..)
        )
    }
}

/// Appends `r`, framed, to `out`.
pub fn encode(r: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let mut fixed = |kind: u8, ip: &[u8], time: u64| {
        out.push(kind);
        out.extend_from_slice(ip);
        out.extend_from_slice(&time.to_le_bytes());
    };
    let binding = match r {
        Record::Bound(l) => {
            fixed(1, &l.ip.octets(), l.expires);
            Some((&l.client, &l.hw, &l.hostname))
        }
        Record::Freed(ip) => {
            fixed(2, &ip.octets(), 0);
            None
        }
        Record::Declined(ip, until) => {
            fixed(3, &ip.octets(), *until);
            None
        }
        Record::Bound6(l) => {
            fixed(4, &l.ip.octets(), l.expires);
            Some((&l.client, &l.hw, &l.hostname))
        }
        Record::Freed6(ip) => {
            fixed(5, &ip.octets(), 0);
            None
        }
        Record::Declined6(ip, until) => {
            fixed(6, &ip.octets(), *until);
            None
        }
    };
    if let Some((client, hw, hostname)) = binding {
        for field in [&client[..], &hw[..], hostname.as_bytes()] {
            let n = field.len().min(usize::from(u16::MAX));
            out.extend_from_slice(&(n as u16).to_le_bytes());
            out.extend_from_slice(&field[..n]);
        }
    }
    let payload = &out[start + HEADER..];
    let len = payload.len() as u16;
    let crc = crc32fast::hash(payload);
    out[start..start + 2].copy_from_slice(&len.to_le_bytes());
    out[start + 2..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// The length of the framed record `bytes` begins with, if its header is
/// whole.
pub fn record_len(bytes: &[u8]) -> Option<usize> {
    let len = u16::from_le_bytes([*bytes.first()?, *bytes.get(1)?]);
    Some(HEADER + usize::from(len))
}

/// What a replay of the journal's bytes found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// The good records, in order.
    pub records: Vec<Record>,
    /// Where the last good record ends (bytes after the magic).
    pub end: usize,
    /// Bad stretches with good records after them: `(offset, length)` in
    /// bytes from the start of the slice given.
    pub damaged: Vec<(usize, usize)>,
}

/// The record at the start of `bytes` and its framed length, if its header,
/// checksum and fields all hold.
fn record_at(bytes: &[u8]) -> Option<(Record, usize)> {
    let head = bytes.get(..HEADER)?;
    let len = usize::from(u16::from_le_bytes([head[0], head[1]]));
    let crc = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
    let payload = bytes.get(HEADER..HEADER + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Some((parse(payload)?, HEADER + len))
}

/// Whether a record could start at `bytes` (cheap checks before the checksum).
fn plausible(bytes: &[u8]) -> bool {
    match bytes.get(..HEADER + 1) {
        Some(h) => {
            let len = usize::from(u16::from_le_bytes([h[0], h[1]]));
            (13..=MAX_PAYLOAD).contains(&len) && (1..=6).contains(&h[HEADER])
        }
        None => false,
    }
}

/// Reads the records of `bytes` (after the magic), skipping bad stretches
/// that have good records after them (see the module's text).
pub fn decode(bytes: &[u8]) -> Replay {
    let mut out = Replay::default();
    let mut at = 0;
    while at < bytes.len() {
        if let Some((r, n)) = record_at(&bytes[at..]) {
            out.records.push(r);
            at += n;
            out.end = at;
            continue;
        }
        let next = (at + 1..bytes.len())
            .find(|&s| plausible(&bytes[s..]) && record_at(&bytes[s..]).is_some());
        match next {
            Some(s) => {
                out.damaged.push((at, s - at));
                at = s;
            }
            None => break,
        }
    }
    out
}

/// A binding's client, hardware address and host name.
type Binding = (Box<[u8]>, Box<[u8]>, Box<str>);

fn parse(p: &[u8]) -> Option<Record> {
    let kind = *p.first()?;
    let width = if kind >= 4 { 16 } else { 4 };
    let ip = p.get(1..1 + width)?;
    let time = u64::from_le_bytes(p.get(1 + width..9 + width)?.try_into().ok()?);
    let binding = || -> Option<Binding> {
        let mut rest = p.get(9 + width..)?;
        let mut field = || -> Option<&[u8]> {
            let n = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
            let v = rest.get(2..2 + n)?;
            rest = &rest[2 + n..];
            Some(v)
        };
        let client = field()?.into();
        let hw = field()?.into();
        let hostname = std::str::from_utf8(field()?).ok()?.into();
        Some((client, hw, hostname))
    };
    let v4 = || Some(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?));
    let v6 = || Some(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?));
    match kind {
        1 => {
            let (client, hw, hostname) = binding()?;
            Some(Record::Bound(Lease {
                ip: v4()?,
                client,
                hw,
                hostname,
                expires: time,
            }))
        }
        2 => Some(Record::Freed(v4()?)),
        3 => Some(Record::Declined(v4()?, time)),
        4 => {
            let (client, hw, hostname) = binding()?;
            Some(Record::Bound6(Lease6 {
                ip: v6()?,
                client,
                hw,
                hostname,
                expires: time,
            }))
        }
        5 => Some(Record::Freed6(v6()?)),
        6 => Some(Record::Declined6(v6()?, time)),
        _ => None,
    }
}

/// The records of the journal at `path`, read without changing it (a torn
/// tail and damaged stretches are left for the server to deal with; their
/// offsets here are from the start of the file).
///
/// # Errors
/// The file cannot be read or is not a lease journal.
pub fn read(path: &Path) -> io::Result<Replay> {
    let bytes = std::fs::read(path)?;
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a rackboot lease journal",
        ));
    }
    let mut replay = decode(&bytes[MAGIC.len()..]);
    for d in &mut replay.damaged {
        d.0 += MAGIC.len();
    }
    Ok(replay)
}

/// The journal file, open for appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal at `path` and replays it. A torn tail is
    /// cut off; damaged stretches between good records are skipped, the file
    /// as found is copied aside and the journal rewritten from the good
    /// records (see the module's text).
    ///
    /// # Errors
    /// The file cannot be created, read or written, or it is not a lease journal.
    pub fn open(path: &Path) -> io::Result<Opened> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.is_empty() {
            file.write_all(MAGIC)?;
            file.sync_all()?;
            sync_dir(path)?;
            bytes.extend_from_slice(MAGIC);
        }
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} is not a rackboot lease journal (move it away, or name another file)",
                    path.display()
                ),
            ));
        }
        let replay = decode(&bytes[MAGIC.len()..]);
        let len = (MAGIC.len() + replay.end) as u64;
        let torn = bytes.len() as u64 - len;
        if torn > 0 {
            file.set_len(len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(len))?;
        let mut journal = Self {
            file,
            path: path.to_path_buf(),
            len,
        };
        let damaged: Vec<(u64, u64)> = replay
            .damaged
            .iter()
            .map(|&(at, n)| ((MAGIC.len() + at) as u64, n as u64))
            .collect();
        let mut kept_aside = None;
        if !damaged.is_empty() {
            let aside = aside_name(path);
            std::fs::write(&aside, &bytes)?;
            let mut good = Vec::new();
            for r in &replay.records {
                encode(r, &mut good);
            }
            journal.compact(&good)?;
            kept_aside = Some(aside);
        }
        Ok(Opened {
            journal,
            records: replay.records,
            torn,
            damaged,
            kept_aside,
        })
    }

    /// Writes `bytes` (encoded records) and waits until they are on disk.
    ///
    /// # Errors
    /// The write or the sync failed; the caller must not send the ACKs.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write(bytes)?;
        self.file.sync_data()
    }

    /// Writes `bytes` (encoded records) without waiting for the disk: they are
    /// durable only once a later `sync_data` on [`Self::sync_handle`] (or on this
    /// file) returns. A failed write is cut off, so the file stays whole.
    ///
    /// # Errors
    /// The write failed; nothing of `bytes` is kept.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(bytes) {
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(e);
        }
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// A second handle on the file, for a thread that syncs it while this one
    /// goes on writing (group commit). [`Self::compact`] replaces the file, so a
    /// handle taken before a compaction must not be used after it.
    ///
    /// # Errors
    /// The descriptor cannot be duplicated.
    pub fn sync_handle(&self) -> io::Result<File> {
        self.file.try_clone()
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether only the magic is written.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }

    /// Replaces the file by one holding `records` (encoded), atomically: a
    /// crash leaves either the old journal or the new one.
    ///
    /// # Errors
    /// The new file cannot be written, synced or renamed; the old one stays in use.
    pub fn compact(&mut self, records: &[u8]) -> io::Result<()> {
        let tmp = self.path.with_extension("compact");
        let mut f = File::create(&tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(records)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        sync_dir(&self.path)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        self.len = file.seek(SeekFrom::End(0))?;
        self.file = file;
        Ok(())
    }
}

/// What [`Journal::open`] found.
#[derive(Debug)]
pub struct Opened {
    /// The journal, open for appending.
    pub journal: Journal,
    /// The good records, in order.
    pub records: Vec<Record>,
    /// Bytes of a torn tail cut off.
    pub torn: u64,
    /// Damaged stretches skipped: `(file offset, length)`.
    pub damaged: Vec<(u64, u64)>,
    /// Where the file as found was copied before it was rewritten without
    /// its damaged stretches.
    pub kept_aside: Option<PathBuf>,
}

/// `FILE.damaged-UNIXTIME`, or with `-N` added if that exists (an earlier
/// copy is never overwritten).
fn aside_name(path: &Path) -> PathBuf {
    let base = format!(
        "{}.damaged-{}",
        path.display(),
        crate::io::clock::unix_now()
    );
    let mut name = PathBuf::from(&base);
    let mut n = 1;
    while name.exists() {
        name = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    name
}

fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn open(path: &Path) -> (Journal, Vec<Record>, u64) {
        let o = Journal::open(path).unwrap();
        assert!(o.damaged.is_empty(), "{:?}", o.damaged);
        (o.journal, o.records, o.torn)
    }

    fn lease(last: u8) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, last),
            client: vec![1, 2, 3, last].into(),
            hw: vec![0x52, 0x54, 0, 0, 0, last].into(),
            hostname: format!("node{last}").into(),
            expires: 1_800_000_000,
        }
    }

    #[test]
    fn records_survive_a_reopen() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("sub/leases");
        let (mut j, records, torn) = open(&path);
        assert!(records.is_empty() && torn == 0 && j.is_empty());
        let mut buf = Vec::new();
        let want = vec![
            Record::Bound(lease(5)),
            Record::Declined(Ipv4Addr::new(10, 0, 0, 6), 99),
            Record::Freed(Ipv4Addr::new(10, 0, 0, 5)),
        ];
        for r in &want {
            encode(r, &mut buf);
        }
        j.append(&buf).unwrap();
        drop(j);
        let (_, got, torn) = open(&path);
        assert_eq!((got, torn), (want, 0));
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        let (mut j, _, _) = open(&path);
        let mut buf = Vec::new();
        encode(&Record::Bound(lease(1)), &mut buf);
        encode(&Record::Bound(lease(2)), &mut buf);
        j.append(&buf).unwrap();
        drop(j);
        // A crash in the middle of the third record, and a flipped byte case.
        let mut third = Vec::new();
        encode(&Record::Bound(lease(3)), &mut third);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&third[..third.len() / 2]).unwrap();
        drop(f);
        let (j, got, torn) = open(&path);
        assert_eq!(got.len(), 2);
        assert_eq!(torn, (third.len() / 2) as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), j.len());
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, got, torn) = open(&path);
        assert_eq!(got, vec![Record::Bound(lease(1))]);
        assert!(torn > 0);
    }

    #[test]
    fn compaction_keeps_only_what_it_is_given() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        let (mut j, _, _) = open(&path);
        let mut buf = Vec::new();
        for i in 0..100 {
            encode(&Record::Bound(lease(i)), &mut buf);
        }
        j.append(&buf).unwrap();
        let before = j.len();
        let mut live = Vec::new();
        encode(&Record::Bound(lease(7)), &mut live);
        j.compact(&live).unwrap();
        assert!(j.len() < before);
        let mut more = Vec::new();
        encode(&Record::Freed(Ipv4Addr::new(10, 0, 0, 7)), &mut more);
        j.append(&more).unwrap();
        drop(j);
        let (_, got, _) = open(&path);
        assert_eq!(
            got,
            vec![
                Record::Bound(lease(7)),
                Record::Freed(Ipv4Addr::new(10, 0, 0, 7))
            ]
        );
    }

    #[test]
    fn a_foreign_file_is_refused() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        std::fs::write(&path, b"1700000000 52:54:00:00:00:01 10.0.0.5 * *\n").unwrap();
        let e = Journal::open(&path).unwrap_err();
        assert!(
            e.to_string().contains("not a rackboot lease journal"),
            "{e}"
        );
    }

    #[test]
    fn a_damaged_middle_is_skipped_reported_and_kept_aside() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        let (mut j, _, _) = open(&path);
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for i in 1..=5 {
            starts.push(MAGIC.len() + buf.len());
            encode(&Record::Bound(lease(i)), &mut buf);
        }
        j.append(&buf).unwrap();
        drop(j);
        // The second and third records: a flipped bit in one, zeros (a lost
        // block) over part of the other.
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[starts[1] + 9] ^= 0x10;
        bytes[starts[2] + 2..starts[2] + 12].fill(0);
        std::fs::write(&path, &bytes).unwrap();

        let seen = read(&path).unwrap();
        assert_eq!(seen.damaged, vec![(starts[1], starts[3] - starts[1])]);
        let o = Journal::open(&path).unwrap();
        let want: Vec<Record> = [1, 4, 5].map(|i| Record::Bound(lease(i))).into();
        assert_eq!(o.records, want);
        assert_eq!(
            o.damaged,
            vec![(starts[1] as u64, (starts[3] - starts[1]) as u64)]
        );
        assert_eq!(o.torn, 0);
        // The file as found is kept; the journal holds only the good records
        // and takes appends after them.
        let aside = o.kept_aside.clone().unwrap();
        assert_eq!(std::fs::read(&aside).unwrap(), bytes);
        let mut j = o.journal;
        let mut more = Vec::new();
        encode(&Record::Freed(Ipv4Addr::new(10, 0, 0, 4)), &mut more);
        j.append(&more).unwrap();
        drop(j);
        let (_, got, torn) = open(&path);
        assert_eq!(torn, 0);
        assert_eq!(got.len(), 4);
        assert_eq!(got[3], Record::Freed(Ipv4Addr::new(10, 0, 0, 4)));
        // A second damage the same second gets a copy of its own.
        assert_ne!(aside_name(&path), aside);
    }

    #[test]
    fn garbage_between_records_costs_a_bounded_scan() {
        let mut buf = Vec::new();
        encode(&Record::Bound(lease(1)), &mut buf);
        let first = buf.len();
        // 256 KiB of noise that looks like headers everywhere.
        let mut x: u32 = 7;
        for _ in 0..(256 << 10) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            buf.push((x >> 16) as u8);
        }
        let noise_end = buf.len();
        encode(&Record::Declined(Ipv4Addr::new(10, 0, 0, 9), 5), &mut buf);
        let r = decode(&buf);
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.damaged, vec![(first, noise_end - first)]);
        assert_eq!(r.end, buf.len());
        // Noise at the end is a torn tail, not damage.
        let r = decode(&buf[..noise_end]);
        assert_eq!((r.records.len(), r.end, r.damaged.len()), (1, first, 0));
    }
}
