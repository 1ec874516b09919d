//! The machines' state file: one JSON object per line, each line the whole
//! record of one machine after a change (so replay keeps the last line per
//! MAC). The first line holds the key the done URLs are signed with. Every
//! append is written and fdatasync'ed before the change is answered. On open
//! the file is read whole: a last line without its newline (a write torn by a
//! crash) is dropped with a warning; any other line that does not parse stops
//! the start, naming the file and line. The live records are then rewritten
//! into a new file renamed over the old one, so the file stays as long as the
//! fleet, not as its history. An exclusive lock keeps a second server off it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Mac, Record};

/// The first line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    rackboot_machines: u32,
    key: String,
}

/// Every other line.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    mac: String,
    state: Record,
}

/// The open, locked state file.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// What a state file held.
pub type Loaded = (Journal, [u8; 32], HashMap<Mac, Record>);

impl Journal {
    /// Opens (or creates) the state file at `path`, takes its lock, and
    /// returns it compacted with the signing key and the records it held.
    ///
    /// # Errors
    /// The file cannot be made, read, locked or rewritten, or a line in it
    /// (not a torn last one) does not parse: the text names the file.
    pub fn open(path: &Path) -> Result<Loaded, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("machines state file {}: {what}: {e}", path.display())
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail("cannot make its directory", &e))?;
        }
        let lock = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| fail("cannot open it", &e))?;
        // SAFETY: flock on a descriptor this function owns; no memory is passed.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(fail(
                "another rackboot holds it",
                &"stop that server, or give this one its own boot.state_file",
            ));
        }
        let text = std::fs::read(path).map_err(|e| fail("cannot read it", &e))?;
        let (key, records) = parse(&text, path)?;
        let key = match key {
            Some(k) => k,
            None => fresh_key().map_err(|e| fail("cannot read /dev/urandom for its key", &e))?,
        };
        let journal = Self::rewrite(path, lock, &key, &records)?;
        Ok((journal, key, records))
    }

    /// Writes `key` and `records` to a new file beside `path`, syncs it and
    /// renames it over `path`, keeping the lock held on `lock`'s inode by
    /// moving it to the new file.
    fn rewrite(
        path: &Path,
        lock: File,
        key: &[u8; 32],
        records: &HashMap<Mac, Record>,
    ) -> Result<Self, String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("machines state file {}: {what}: {e}", path.display())
        };
        let mut text = serde_json::to_string(&Header {
            rackboot_machines: 1,
            key: hex(key),
        })
        .map_err(|e| fail("cannot encode", &e))?;
        text.push('\n');
        let mut macs: Vec<&Mac> = records.keys().collect();
        macs.sort();
        for mac in macs {
            text.push_str(&line(mac, &records[mac]).map_err(|e| fail("cannot encode", &e))?);
        }
        let tmp = path.with_extension("rewrite");
        // Written from its start, then appended to: nothing else writes it.
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| fail("cannot write its compacted copy", &e))?;
        // SAFETY: as in `open`.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(fail(
                "cannot lock its compacted copy",
                &io::Error::last_os_error(),
            ));
        }
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| fail("cannot write its compacted copy", &e))?;
        // The lock moves with the inode: `file` holds the new one's, and the
        // old inode (locked by `lock`) is gone from the directory.
        std::fs::rename(&tmp, path).map_err(|e| fail("cannot replace it", &e))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        drop(lock);
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Appends `record` for `mac` and syncs it.
    ///
    /// # Errors
    /// The write or the sync failed: the change must not be answered as made.
    pub fn append(&mut self, mac: &Mac, record: &Record) -> io::Result<()> {
        let text = line(mac, record).map_err(io::Error::other)?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn line(mac: &Mac, record: &Record) -> serde_json::Result<String> {
    let mut text = serde_json::to_string(&Line {
        mac: mac.to_string(),
        state: record.clone(),
    })?;
    text.push('\n');
    Ok(text)
}

/// The key and records of a state file's bytes.
/// A state file's key (none in a new file) and records.
type Parsed = (Option<[u8; 32]>, HashMap<Mac, Record>);

fn parse(text: &[u8], path: &Path) -> Result<Parsed, String> {
    let mut records = HashMap::new();
    let mut key = None;
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    // The piece after the last newline: empty, or a torn write.
    if let Some(torn) = lines.pop().filter(|l| !l.is_empty()) {
        tracing::warn!(file = %path.display(), bytes = torn.len(), "machines state file: dropping a last line torn by a crash (its change was never answered)");
    }
    for (i, l) in lines.iter().enumerate() {
        let at = |e: &dyn std::fmt::Display| {
            format!(
                "machines state file {}:{}: {e} (restore it from a backup, or move it away to start with no API changes)",
                path.display(),
                i + 1
            )
        };
        if i == 0 {
            let h: Header = serde_json::from_slice(l).map_err(|e| at(&e))?;
            if h.rackboot_machines != 1 {
                return Err(at(&format_args!(
                    "format {} is not one this rackboot reads",
                    h.rackboot_machines
                )));
            }
            key = Some(unhex(&h.key).ok_or_else(|| at(&"its key is not 64 hex digits"))?);
            continue;
        }
        let line: Line = serde_json::from_slice(l).map_err(|e| at(&e))?;
        let mac = Mac::parse(&line.mac).ok_or_else(|| at(&"`mac` is not a MAC"))?;
        records.insert(mac, line.state);
    }
    Ok((key, records))
}

pub(super) fn fresh_key() -> io::Result<[u8; 32]> {
    use std::io::Read;
    let mut key = [0; 32];
    File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0; 32];
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}
