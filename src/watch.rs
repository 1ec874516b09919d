//! `serve --watch`: reload when the configuration, the served tree or a boot
//! file changes on disk, debounced so that a copy of many files is one
//! reload. Inotify (through the notify crate) watches the served root
//! recursively, and the directories of the config file and of the boot files
//! named outside the root (so that an editor's save by rename is seen).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::control::Control;

/// Quiet time after the last change before the reload.
const QUIET: Duration = Duration::from_millis(500);
/// Longest wait for quiet: a tree that never stops changing still reloads.
const MOST: Duration = Duration::from_secs(5);

/// What to watch: a directory, recursively or not, and (for a directory
/// watched for one file's sake) the files in it that matter.
#[derive(Debug, Clone)]
pub struct Watch {
    dir: PathBuf,
    recursive: bool,
    only: Option<HashSet<PathBuf>>,
}

impl Watch {
    /// A whole tree.
    pub fn tree(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            recursive: true,
            only: None,
        }
    }

    /// One file, through its directory.
    pub fn file(path: &Path) -> Option<Self> {
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = path.parent()?.to_path_buf();
        Some(Self {
            dir,
            recursive: false,
            only: Some(HashSet::from([path])),
        })
    }

    fn wants(&self, changed: &Path) -> bool {
        match &self.only {
            None => true,
            Some(files) => files.contains(changed),
        }
    }
}

/// Starts a thread that reloads `control` after changes under `watches`.
///
/// # Errors
/// Inotify cannot be set up or a path watched (the text names it).
pub fn spawn(watches: Vec<Watch>, control: Arc<Control>) -> Result<(), String> {
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(tx).map_err(|e| format!("--watch: {e}"))?;
    for w in &watches {
        let mode = if w.recursive {
            RecursiveMode::Recursive
        } else {
            RecursiveMode::NonRecursive
        };
        watcher
            .watch(&w.dir, mode)
            .map_err(|e| format!("--watch: cannot watch {}: {e} (raise fs.inotify.max_user_watches for a large tree)", w.dir.display()))?;
    }
    tracing::info!(
        paths = %watches.iter().map(|w| w.dir.display().to_string()).collect::<Vec<_>>().join(", "),
        "watching for changes: each one reloads"
    );
    let relevant = move |e: &notify::Event| {
        !matches!(e.kind, notify::EventKind::Access(_))
            && e.paths
                .iter()
                .any(|p| watches.iter().any(|w| p.starts_with(&w.dir) && w.wants(p)))
    };
    std::thread::Builder::new()
        .name("rackboot-watch".into())
        .spawn(move || {
            // The watcher lives as long as the thread.
            let _watcher = watcher;
            loop {
                match rx.recv() {
                    Ok(Ok(e)) if relevant(&e) => {}
                    Ok(_) => continue,
                    Err(_) => return,
                }
                // Wait for quiet (or the longest wait), then reload once.
                let start = crate::io::clock::now();
                loop {
                    let waited = crate::io::clock::now().saturating_duration_since(start);
                    if waited >= MOST {
                        break;
                    }
                    match rx.recv_timeout(QUIET.min(MOST - waited)) {
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                // The outcome is logged by the reload itself.
                let _ = control.reload("--watch");
            }
        })
        .map(drop)
        .map_err(|e| format!("--watch: cannot start its thread: {e}"))
}
