//! Boot files held in memory. At start every regular file under the served root is
//! copied once into a sealed memfd and mapped read-only; a [`Snapshot`] maps URL
//! paths to `Arc<BootFile>`. Engines hold an `Arc<BootFile>` for as long as they send
//! from it, so a later snapshot can replace this one without cutting a transfer.
//!
//! A snapshot also holds the boot profiles (`proto::boot::Profiles`: the
//! templates and inventory its per-machine pages are rendered from), so that
//! files and profiles change together. A [`Published`] cell holds the snapshot
//! new requests are served from, with its generation; publishing a new one is
//! one call, and nothing in flight notices.
//!
//! Data flow: `config` says where and how much; `store` loads; `proto` names byte
//! ranges of a `BootFile`; `io` sends them (the fd for sendfile, the mapping for
//! vectored writes).

pub mod builtin;
mod error;
pub mod ipxe;
mod load;
pub mod media;
mod memfd;
pub mod mime;
pub mod signed;

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::proto::boot::Profiles;

pub use error::Error;
pub use load::{plan, Plan, Planned};

/// How a root is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The start fails when the root holds more than this many bytes.
    pub max_bytes: u64,
    /// Lock the files' pages in memory (warns once where the limit refuses).
    pub mlock: bool,
}

/// One boot file in memory, with the validators HTTP needs precomputed.
#[derive(Debug)]
pub struct BootFile {
    path: Box<str>,
    mtime: SystemTime,
    etag: Box<str>,
    last_modified: Box<str>,
    content_type: &'static str,
    header_block: Box<str>,
    memory: memfd::Sealed,
    /// The file it was read from (device, inode, length, mtime), when it was:
    /// a reload keeps this copy while the source is unchanged.
    origin: Option<load::Origin>,
}

impl BootFile {
    fn new(path: Box<str>, mtime: SystemTime, memory: memfd::Sealed) -> Self {
        let len = memory.bytes().len() as u64;
        // Strong validator from what identifies this content in the snapshot: the
        // modification time (to the nanosecond) and the length, as nginx does. Two
        // servers loading the same tree give the same tags.
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag: Box<str> = format!(
            "\"{:x}.{:x}-{len:x}\"",
            since.as_secs(),
            since.subsec_nanos()
        )
        .into();
        let last_modified: Box<str> = httpdate::fmt_http_date(mtime).into();
        let content_type = mime::for_path(&path);
        let header_block = format!(
            "Content-Type: {content_type}\r\nLast-Modified: {last_modified}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\n"
        )
        .into();
        Self {
            path,
            mtime,
            etag,
            last_modified,
            content_type,
            header_block,
            memory,
            origin: None,
        }
    }

    /// URL path, `/` separated, starting with `/`.
    pub fn path(&self) -> &str {
        &self.path
    }
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.memory.bytes().len() as u64
    }
    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.memory.bytes().is_empty()
    }
    /// The whole content, from the read-only mapping.
    pub fn bytes(&self) -> &[u8] {
        self.memory.bytes()
    }
    /// The sealed memfd holding the content (for sendfile/splice).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.memory.fd()
    }
    /// Modification time of the source file.
    pub fn mtime(&self) -> SystemTime {
        self.mtime
    }
    /// Strong entity tag, quoted.
    pub fn etag(&self) -> &str {
        &self.etag
    }
    /// `Last-Modified` value (IMF-fixdate).
    pub fn last_modified(&self) -> &str {
        &self.last_modified
    }
    /// `Content-Type` value.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }
    /// The response header lines that never change for this file (type,
    /// validators, `Accept-Ranges`), each ending in CRLF: built once at load.
    pub fn header_block(&self) -> &str {
        &self.header_block
    }
    /// Whether the pages are locked in memory.
    pub fn is_locked(&self) -> bool {
        self.memory.is_locked()
    }
}

/// An immutable set of boot files, looked up by URL path, the boot profiles
/// rendered beside them, and the generation it was published as (0 until
/// [`Published::publish`] numbers it).
#[derive(Debug, Default)]
pub struct Snapshot {
    files: HashMap<Box<str>, Arc<BootFile>>,
    total_bytes: u64,
    generation: u64,
    profiles: Option<Arc<Profiles>>,
}

impl Snapshot {
    /// The same files, served with `profiles` (`[boot]`).
    #[must_use]
    pub fn with_profiles(mut self, profiles: Option<Arc<Profiles>>) -> Self {
        self.profiles = profiles;
        self
    }

    /// The boot profiles served with these files, shared, if any.
    pub fn profiles_arc(&self) -> Option<Arc<Profiles>> {
        self.profiles.clone()
    }

    /// The boot profiles served with these files, if any.
    pub fn profiles(&self) -> Option<&Profiles> {
        self.profiles.as_deref()
    }

    /// Loads every regular file under `root` (symlinks only while they stay inside).
    ///
    /// # Errors
    /// The root is missing or unreadable, a file cannot be read (the error names it),
    /// or the total passes `options.max_bytes`.
    pub fn load(root: &Path, options: &Options) -> Result<Self, Error> {
        let plan = load::plan(root, options.max_bytes)?;
        load::load(&plan, options, None)
    }

    /// Loads the files of `plan` (a walked root, with any files added to it).
    ///
    /// # Errors
    /// A file cannot be read or held in memory.
    pub fn from_plan(plan: &Plan, options: &Options) -> Result<Self, Error> {
        load::load(plan, options, None)
    }

    /// As [`Self::from_plan`] for a reload: a file whose source is unchanged
    /// since `previous` read it (same device, inode, length and modification
    /// time, the test rsync and make use) is shared, not read again.
    ///
    /// # Errors
    /// A file cannot be read or held in memory.
    pub fn from_plan_after(
        plan: &Plan,
        options: &Options,
        previous: &Snapshot,
    ) -> Result<Self, Error> {
        load::load(plan, options, Some(previous))
    }

    /// The built-in demo set (see [`builtin`]), for a first run with no root.
    ///
    /// # Errors
    /// Only a failure to create memory files.
    pub fn builtin(options: &Options) -> Result<Self, Error> {
        builtin::snapshot(options)
    }

    /// The built-in demo set with `script` as its `/boot.ipxe`.
    ///
    /// # Errors
    /// Only a failure to create memory files.
    pub fn builtin_with_script(options: &Options, script: &str) -> Result<Self, Error> {
        builtin::with_script(options, script)
    }

    /// A snapshot of files given as bytes: (URL path, content, modification time).
    ///
    /// # Errors
    /// Only a failure to create memory files.
    pub fn from_memory<'a>(
        files: impl IntoIterator<Item = (&'a str, &'a [u8], SystemTime)>,
        options: &Options,
    ) -> Result<Self, Error> {
        let mut snapshot = Snapshot::default();
        let mut locker = Locker::new(options.mlock);
        for (url, bytes, mtime) in files {
            let mut memory =
                memfd::Sealed::from_bytes(url, bytes).map_err(|source| Error::Memory {
                    path: url.into(),
                    source,
                })?;
            locker.lock(&mut memory);
            snapshot.insert(BootFile::new(url.into(), mtime, memory));
        }
        locker.finish();
        Ok(snapshot)
    }

    /// Adds `bytes` at `url` (a file made at start, such as boot media),
    /// replacing any file there.
    ///
    /// # Errors
    /// Only a failure to create the memory file.
    pub fn insert_memory(
        &mut self,
        url: &str,
        bytes: &[u8],
        mtime: SystemTime,
        options: &Options,
    ) -> Result<(), Error> {
        let mut memory = memfd::Sealed::from_bytes(url, bytes).map_err(|source| Error::Memory {
            path: url.into(),
            source,
        })?;
        let mut locker = Locker::new(options.mlock);
        locker.lock(&mut memory);
        locker.finish();
        if let Some(old) = self.files.remove(url) {
            self.total_bytes -= old.len();
        }
        self.insert(BootFile::new(url.into(), mtime, memory));
        Ok(())
    }

    /// Serves `other`'s file at `url` here too, the same bytes and
    /// validators; whether it had one.
    pub fn share(&mut self, other: &Snapshot, url: &str) -> bool {
        match other.get(url) {
            Some(f) => {
                self.insert_shared(Arc::clone(f));
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, file: BootFile) {
        self.insert_shared(Arc::new(file));
    }

    /// Adds a file another snapshot holds too.
    fn insert_shared(&mut self, file: Arc<BootFile>) {
        self.total_bytes += file.len();
        self.files.insert(file.path.clone(), file);
    }

    /// The file served at `path` (as produced by `wire::http::target::decode_path`).
    pub fn get(&self, path: &str) -> Option<&Arc<BootFile>> {
        self.files.get(path)
    }
    /// Number of files.
    pub fn len(&self) -> usize {
        self.files.len()
    }
    /// Whether the snapshot holds no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
    /// Sum of the files' lengths.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
    /// The generation this snapshot was published as.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The files, sorted by path.
    pub fn files(&self) -> Vec<&Arc<BootFile>> {
        let mut v: Vec<_> = self.files.values().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }
}

/// The snapshot every worker serves new requests from. Publishing replaces it
/// for all of them at once; a connection or transfer keeps the `Arc` it
/// started on, so the old generation's memory is freed when the last of them
/// ends. Workers look at [`Published::generation`] (one atomic load) per new
/// request and take the lock only when it moved.
#[derive(Debug)]
pub struct Published {
    current: RwLock<Arc<Snapshot>>,
    generation: AtomicU64,
}

impl Published {
    /// Publishes `first` (generation 0 unless it says otherwise).
    pub fn new(first: Arc<Snapshot>) -> Arc<Self> {
        Arc::new(Self {
            generation: AtomicU64::new(first.generation),
            current: RwLock::new(first),
        })
    }

    /// Makes `next` the snapshot of every new request; returns its generation.
    pub fn publish(&self, mut next: Snapshot) -> u64 {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        next.generation = current.generation + 1;
        let generation = next.generation;
        *current = Arc::new(next);
        self.generation.store(generation, Ordering::Release);
        generation
    }

    /// The generation new requests get.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The snapshot new requests get.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Moves a worker's copy (`cached`) and a connection's (`held`) to the
    /// current generation: a keep-alive connection's next request gets the
    /// newest files, and no idle reference keeps an old generation alive (a
    /// response in flight holds its own file). One atomic load unless a new
    /// generation was published.
    pub fn follow(&self, cached: &mut Arc<Snapshot>, held: &mut Arc<Snapshot>) {
        self.refresh(cached);
        if !Arc::ptr_eq(held, cached) {
            *held = Arc::clone(cached);
        }
    }

    /// `held` if it is still current, else the current one (the cheap check
    /// a worker makes per new request).
    pub fn refresh(&self, held: &mut Arc<Snapshot>) -> bool {
        if held.generation == self.generation() {
            return false;
        }
        *held = self.current();
        true
    }
}

/// Tries `mlock` for each file until the first refusal, then warns once.
#[derive(Debug)]
struct Locker {
    enabled: bool,
    refused: Option<std::io::Error>,
    unlocked_bytes: u64,
}

impl Locker {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            refused: None,
            unlocked_bytes: 0,
        }
    }

    fn lock(&mut self, memory: &mut memfd::Sealed) {
        if !self.enabled || memory.bytes().is_empty() {
            return;
        }
        if self.refused.is_none() {
            match memory.lock() {
                Ok(()) => return,
                Err(e) => self.refused = Some(e),
            }
        }
        self.unlocked_bytes += memory.bytes().len() as u64;
    }

    fn finish(self) {
        if let Some(e) = self.refused {
            tracing::warn!(
                unlocked_bytes = self.unlocked_bytes,
                error = %e,
                "boot files could not all be locked in memory (RLIMIT_MEMLOCK); they may be \
                 swapped out under memory pressure: grant CAP_IPC_LOCK or raise LimitMEMLOCK"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(content: &[u8]) -> Snapshot {
        let options = Options {
            max_bytes: 1 << 20,
            mlock: false,
        };
        Snapshot::from_memory([("/f", content, UNIX_EPOCH)], &options).unwrap()
    }

    #[test]
    fn a_published_snapshot_reaches_new_requests_and_in_flight_ones_keep_theirs() {
        let published = Published::new(Arc::new(snapshot(b"one")));
        let mut held = published.current();
        assert_eq!((held.generation(), published.generation()), (0, 0));
        let in_flight = Arc::clone(held.get("/f").unwrap());
        assert!(!published.refresh(&mut held));
        assert_eq!(published.publish(snapshot(b"two")), 1);
        assert!(published.refresh(&mut held));
        assert_eq!(held.get("/f").unwrap().bytes(), b"two");
        assert_eq!(held.generation(), 1);
        // The file of the old generation lives on while something sends it.
        assert_eq!(in_flight.bytes(), b"one");
        assert_eq!(Arc::strong_count(&in_flight), 1, "the old snapshot is gone");
    }

    #[test]
    fn files_and_profiles_are_published_together() {
        use crate::proto::boot::{Paths, Profiles};
        let published = Published::new(Arc::new(snapshot(b"one")));
        let old = published.current();
        let profiles = Profiles::new(Paths::default(), vec![], None, vec![], "h".into()).unwrap();
        let next = snapshot(b"two").with_profiles(Some(Arc::new(profiles)));
        published.publish(next);
        let new = published.current();
        assert!(new.profiles().is_some_and(|p| p.renders("/boot.ipxe")));
        assert_eq!(new.get("/f").unwrap().bytes(), b"two");
        // What started on the old generation keeps its files and no profiles.
        assert!(old.profiles().is_none());
        assert_eq!(old.get("/f").unwrap().bytes(), b"one");
    }
}
