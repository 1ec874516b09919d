//! Helpers for unit tests: a base instant for fake clocks, temporary directories.
#![allow(unreachable_pub, reason = "test-only helpers")]

use std::time::Instant;

/// Any base instant; tests add offsets to it and never sleep.
#[allow(
    clippy::disallowed_methods,
    reason = "the one clock read of the unit tests: a base that fake clocks offset"
)]
pub fn t0() -> Instant {
    Instant::now()
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// A new empty directory named after `tag` and the process.
    pub fn new(tag: &str) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("rackboot-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
