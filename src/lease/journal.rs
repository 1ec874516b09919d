//! The lease journal: an append-only file of checksummed records. A lease is
//! written and fdatasync'ed before its ACK leaves; the worker batches a burst's
//! records into one write and one sync (group commit). On open, records are
//! replayed up to the first one that is short or fails its checksum (a write torn
//! by a crash), and the file is cut there. Compaction rewrites the live records
//! into a new file and renames it over the old one.
//!
//! File: `RKBLEAS1` then records `len: u16 LE, crc32: u32 LE, payload[len]`;
//! payload: `kind: u8, ip: [u8; 4], time: u64 LE` then, for a binding,
//! `client`, `hw` and `hostname`, each as `len: u16 LE, bytes`.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::Lease;

const MAGIC: &[u8; 8] = b"RKBLEAS1";
const HEADER: usize = 6;

/// One change to the lease table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// An address bound to a client until `expires`.
    Bound(Lease),
    /// An address given back (RELEASE) or taken away.
    Freed(Ipv4Addr),
    /// An address a client declined: unusable until `until` (unix seconds).
    Declined(Ipv4Addr, u64),
}

/// Appends `r`, framed, to `out`.
pub fn encode(r: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    match r {
        Record::Bound(l) => {
            out.push(1);
            out.extend_from_slice(&l.ip.octets());
            out.extend_from_slice(&l.expires.to_le_bytes());
            for field in [&l.client[..], &l.hw[..], l.hostname.as_bytes()] {
                let n = field.len().min(usize::from(u16::MAX));
                out.extend_from_slice(&(n as u16).to_le_bytes());
                out.extend_from_slice(&field[..n]);
            }
        }
        Record::Freed(ip) => {
            out.push(2);
            out.extend_from_slice(&ip.octets());
            out.extend_from_slice(&0u64.to_le_bytes());
        }
        Record::Declined(ip, until) => {
            out.push(3);
            out.extend_from_slice(&ip.octets());
            out.extend_from_slice(&until.to_le_bytes());
        }
    }
    let payload = &out[start + HEADER..];
    let len = payload.len() as u16;
    let crc = crc32fast::hash(payload);
    out[start..start + 2].copy_from_slice(&len.to_le_bytes());
    out[start + 2..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

/// Reads the records of `bytes` (after the magic); returns them and how many
/// bytes were whole. Stops at the first torn or corrupt record.
pub fn decode(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(head) = bytes.get(at..at + HEADER) {
        let len = usize::from(u16::from_le_bytes([head[0], head[1]]));
        let crc = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Some(r) = parse(payload) else { break };
        out.push(r);
        at += HEADER + len;
    }
    (out, at)
}

fn parse(p: &[u8]) -> Option<Record> {
    let kind = *p.first()?;
    let ip = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(1..5)?).ok()?);
    let time = u64::from_le_bytes(p.get(5..13)?.try_into().ok()?);
    match kind {
        1 => {
            let mut rest = p.get(13..)?;
            let mut field = || -> Option<&[u8]> {
                let n = usize::from(u16::from_le_bytes([*rest.first()?, *rest.get(1)?]));
                let v = rest.get(2..2 + n)?;
                rest = &rest[2 + n..];
                Some(v)
            };
            let client = field()?.into();
            let hw = field()?.into();
            let hostname = std::str::from_utf8(field()?).ok()?.into();
            Some(Record::Bound(Lease {
                ip,
                client,
                hw,
                hostname,
                expires: time,
            }))
        }
        2 => Some(Record::Freed(ip)),
        3 => Some(Record::Declined(ip, time)),
        _ => None,
    }
}

/// The records of the journal at `path`, read without changing it (a torn
/// tail is left for the server to cut).
///
/// # Errors
/// The file cannot be read or is not a lease journal.
pub fn read(path: &Path) -> io::Result<Vec<Record>> {
    let bytes = std::fs::read(path)?;
    if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a rackboot lease journal",
        ));
    }
    Ok(decode(&bytes[MAGIC.len()..]).0)
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
    /// cut off (and reported as the number of bytes dropped).
    ///
    /// # Errors
    /// The file cannot be created, read or written, or it is not a lease journal.
    pub fn open(path: &Path) -> io::Result<(Self, Vec<Record>, u64)> {
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
        let (records, whole) = decode(&bytes[MAGIC.len()..]);
        let len = (MAGIC.len() + whole) as u64;
        let torn = bytes.len() as u64 - len;
        if torn > 0 {
            file.set_len(len)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::Start(len))?;
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
                len,
            },
            records,
            torn,
        ))
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
        let (mut j, records, torn) = Journal::open(&path).unwrap();
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
        let (_, got, torn) = Journal::open(&path).unwrap();
        assert_eq!((got, torn), (want, 0));
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        let (mut j, _, _) = Journal::open(&path).unwrap();
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
        let (j, got, torn) = Journal::open(&path).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(torn, (third.len() / 2) as u64);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), j.len());
        drop(j);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let (_, got, torn) = Journal::open(&path).unwrap();
        assert_eq!(got, vec![Record::Bound(lease(1))]);
        assert!(torn > 0);
    }

    #[test]
    fn compaction_keeps_only_what_it_is_given() {
        let dir = TempDir::new("journal");
        let path = dir.path().join("leases");
        let (mut j, _, _) = Journal::open(&path).unwrap();
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
        let (_, got, _) = Journal::open(&path).unwrap();
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
}
