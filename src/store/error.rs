//! Why a root could not be loaded; every variant names the path and what to do.

use std::path::PathBuf;

/// A failure to load the served root.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root itself is missing, not a directory or unreadable.
    #[error("served root {path}: {source} (set `root` in the config or pass --root to an existing directory)")]
    Root {
        /// The root as given.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file or directory under the root cannot be read.
    #[error("cannot read {path}: {source} (fix its permissions or remove it from the root)")]
    Read {
        /// The path that failed.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file name is not UTF-8, so it has no URL.
    #[error("file name is not UTF-8: {path} (rename it)")]
    NotUtf8 {
        /// The path, lossily shown.
        path: PathBuf,
    },
    /// The root holds more than the configured cap.
    #[error(
        "the served root holds {total} bytes, more than store.max_mib allows ({cap} bytes); \
         {path} passes the cap (raise store.max_mib or serve fewer files)"
    )]
    TooLarge {
        /// Bytes counted when the cap was passed.
        total: u64,
        /// The cap in bytes.
        cap: u64,
        /// The file that passed it.
        path: PathBuf,
    },
    /// Creating, filling or mapping an in-memory file failed.
    #[error("cannot hold {path} in memory: {source}")]
    Memory {
        /// The file being loaded.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}
