//! Walking the served root: which files are served under which URL paths (the
//! plan, also printed by `rackboot check`), then loading them into memory.
//!
//! Symlinks are resolved to their canonical target and followed only while that
//! target is inside the canonical root; a link leading out is skipped with a warning,
//! so nothing outside the root is ever loaded, let alone served. Directory loops
//! through links are cut by remembering canonical directories already walked.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::{memfd, BootFile, Error, Locker, Options, Snapshot};

/// One file the root would serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// URL path (`/dir/name`).
    pub url: String,
    /// Where it is read from (the canonical target of any link).
    pub source: PathBuf,
    /// Length in bytes when walked.
    pub len: u64,
}

/// What a root would serve, sorted by URL path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The canonical root.
    pub root: PathBuf,
    /// The files.
    pub files: Vec<Planned>,
    /// Sum of their lengths.
    pub total_bytes: u64,
    /// Links skipped because they lead out of the root (shown relative to the root).
    pub skipped_links: Vec<String>,
}

impl Plan {
    /// Adds (or replaces) the file served at `url` with `source`, a file named on
    /// the command line rather than found under the root.
    ///
    /// # Errors
    /// `source` cannot be read, or the total passes `max_bytes`.
    pub fn add(&mut self, url: &str, source: &Path, max_bytes: u64) -> Result<(), Error> {
        let meta = fs::metadata(source).map_err(|e| Error::Read {
            path: source.into(),
            source: e,
        })?;
        if let Some(old) = self.files.iter().position(|f| f.url == url) {
            let old = self.files.remove(old);
            self.total_bytes -= old.len;
        }
        self.total_bytes += meta.len();
        if self.total_bytes > max_bytes {
            return Err(Error::TooLarge {
                total: self.total_bytes,
                cap: max_bytes,
                path: source.into(),
            });
        }
        self.files.push(Planned {
            url: url.into(),
            source: source.into(),
            len: meta.len(),
        });
        self.files.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(())
    }
}

/// Walks `root` without reading file contents.
///
/// # Errors
/// The root or a directory under it cannot be read, a name is not UTF-8, or the
/// total passes `max_bytes`.
pub fn plan(root: &Path, max_bytes: u64) -> Result<Plan, Error> {
    let canon = fs::canonicalize(root).map_err(|source| Error::Root {
        path: root.into(),
        source,
    })?;
    if !canon.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory");
        return Err(Error::Root {
            path: root.into(),
            source,
        });
    }
    let mut walk = Walk {
        root: canon.clone(),
        max_bytes,
        plan: Plan {
            root: canon.clone(),
            ..Plan::default()
        },
        seen: HashSet::new(),
    };
    walk.dir(&canon, &canon, String::new())?;
    let mut plan = walk.plan;
    plan.files.sort_by(|a, b| a.url.cmp(&b.url));
    Ok(plan)
}

struct Walk {
    root: PathBuf,
    max_bytes: u64,
    plan: Plan,
    seen: HashSet<PathBuf>,
}

impl Walk {
    /// Walks directory `real` (canonical), whose URL prefix is `url`. `shown` is the
    /// path as reached through the root, for messages.
    fn dir(&mut self, real: &Path, shown: &Path, url: String) -> Result<(), Error> {
        if !self.seen.insert(real.to_path_buf()) {
            return Ok(());
        }
        let read_err = |source| Error::Read {
            path: shown.to_path_buf(),
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(real)
            .map_err(read_err)?
            .collect::<Result<_, _>>()
            .map_err(read_err)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let shown = shown.join(entry.file_name());
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| Error::NotUtf8 {
                    path: shown.clone(),
                })?;
            let url = format!("{url}/{name}");
            let kind = entry.file_type().map_err(|source| Error::Read {
                path: shown.clone(),
                source,
            })?;
            let target = if kind.is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(t) if t.starts_with(&self.root) => t,
                    Ok(_) => {
                        tracing::warn!(path = %url, "symlink leads outside the root; not served");
                        self.plan.skipped_links.push(url);
                        continue;
                    }
                    Err(source) => {
                        return Err(Error::Read {
                            path: shown,
                            source,
                        })
                    }
                }
            } else {
                path
            };
            let meta = fs::metadata(&target).map_err(|source| Error::Read {
                path: shown.clone(),
                source,
            })?;
            if meta.is_dir() {
                self.dir(&target, &shown, url)?;
            } else if meta.is_file() {
                self.plan.total_bytes = self.plan.total_bytes.saturating_add(meta.len());
                if self.plan.total_bytes > self.max_bytes {
                    return Err(Error::TooLarge {
                        total: self.plan.total_bytes,
                        cap: self.max_bytes,
                        path: shown,
                    });
                }
                self.plan.files.push(Planned {
                    url,
                    source: target,
                    len: meta.len(),
                });
            } else {
                tracing::debug!(path = %url, "not a regular file; not served");
            }
        }
        Ok(())
    }
}

/// Loads every planned file into sealed memory.
/// What identifies a source file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: std::time::SystemTime,
}

pub(super) fn load(
    plan: &Plan,
    options: &Options,
    previous: Option<&Snapshot>,
) -> Result<Snapshot, Error> {
    use std::os::unix::fs::MetadataExt;
    let mut snapshot = Snapshot::default();
    let mut locker = Locker::new(options.mlock);
    for f in &plan.files {
        let read_err = |source| Error::Read {
            path: f.source.clone(),
            source,
        };
        let origin_of = |meta: &fs::Metadata| -> Result<Origin, Error> {
            Ok(Origin {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                mtime: meta.modified().map_err(read_err)?,
            })
        };
        let origin = origin_of(&fs::metadata(&f.source).map_err(read_err)?)?;
        let same = previous
            .and_then(|p| p.get(&f.url))
            .filter(|b| b.origin == Some(origin));
        if let Some(kept) = same {
            snapshot.insert_shared(std::sync::Arc::clone(kept));
            continue;
        }
        // What is read is described by the open file itself (the name may
        // have been replaced since the look above).
        let mut file = fs::File::open(&f.source).map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        let origin = origin_of(&meta)?;
        let mtime = origin.mtime;
        let mut memory =
            memfd::Sealed::copy_from(&f.url, &mut file, meta.len()).map_err(|source| {
                Error::Memory {
                    path: f.source.clone(),
                    source,
                }
            })?;
        locker.lock(&mut memory);
        let mut boot = BootFile::new(f.url.as_str().into(), mtime, memory);
        boot.origin = Some(origin);
        snapshot.insert(boot);
    }
    locker.finish();
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn tree() -> crate::testutil::TempDir {
        let d = crate::testutil::TempDir::new("load");
        fs::create_dir_all(d.path().join("root/efi")).unwrap();
        fs::write(d.path().join("root/boot.ipxe"), b"#!ipxe\n").unwrap();
        fs::write(d.path().join("root/efi/ipxe.efi"), vec![7u8; 3000]).unwrap();
        fs::write(d.path().join("secret"), b"outside").unwrap();
        symlink(d.path().join("secret"), d.path().join("root/leak")).unwrap();
        symlink("efi/ipxe.efi", d.path().join("root/snp.efi")).unwrap();
        symlink("..", d.path().join("root/efi/up")).unwrap();
        d
    }

    #[test]
    fn a_reload_shares_unchanged_files_and_reads_changed_ones() {
        let d = tree();
        let root = d.path().join("root");
        let options = Options {
            max_bytes: u64::MAX,
            mlock: false,
        };
        let first = load(&plan(&root, u64::MAX).unwrap(), &options, None).unwrap();
        // A new file under the same name (a copy replaces it: new inode).
        let new = d.path().join("new.ipxe");
        fs::write(&new, b"#!ipxe\necho 2\n").unwrap();
        fs::rename(&new, root.join("boot.ipxe")).unwrap();
        let second = load(&plan(&root, u64::MAX).unwrap(), &options, Some(&first)).unwrap();
        let same = |p: &str| std::sync::Arc::ptr_eq(first.get(p).unwrap(), second.get(p).unwrap());
        assert!(
            same("/efi/ipxe.efi"),
            "an unchanged file is shared, not read again"
        );
        assert!(!same("/boot.ipxe"));
        assert_eq!(
            second.get("/boot.ipxe").unwrap().bytes(),
            b"#!ipxe\necho 2\n"
        );
        assert_eq!(second.total_bytes(), first.total_bytes() + 7);
        // Rewritten in place with the same length: its mtime moved.
        fs::write(root.join("efi/ipxe.efi"), vec![8u8; 3000]).unwrap();
        let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        fs::File::options()
            .write(true)
            .open(root.join("efi/ipxe.efi"))
            .unwrap()
            .set_modified(later)
            .unwrap();
        let third = load(&plan(&root, u64::MAX).unwrap(), &options, Some(&second)).unwrap();
        assert_eq!(
            third.get("/efi/ipxe.efi").unwrap().bytes(),
            &[8u8; 3000][..]
        );
    }

    #[test]
    fn links_inside_the_root_are_served_and_links_out_are_not() {
        let d = tree();
        let p = plan(&d.path().join("root"), u64::MAX).unwrap();
        let urls: Vec<_> = p.files.iter().map(|f| f.url.as_str()).collect();
        assert_eq!(urls, ["/boot.ipxe", "/efi/ipxe.efi", "/snp.efi"]);
        assert_eq!(p.skipped_links, ["/leak"]);
        assert_eq!(p.total_bytes, 7 + 3000 + 3000);
    }

    #[test]
    fn a_loaded_snapshot_holds_the_bytes() {
        let d = tree();
        let opts = Options {
            max_bytes: u64::MAX,
            mlock: false,
        };
        let s = Snapshot::load(&d.path().join("root"), &opts).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("/boot.ipxe").unwrap().bytes(), b"#!ipxe\n");
        assert_eq!(s.get("/snp.efi").unwrap().len(), 3000);
        assert!(s.get("/leak").is_none());
        assert_eq!(
            s.get("/boot.ipxe").unwrap().content_type(),
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn the_cap_fails_the_start_naming_the_file() {
        let d = tree();
        let err = plan(&d.path().join("root"), 100).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ipxe.efi") && msg.contains("store.max_mib"),
            "{msg}"
        );
    }

    #[test]
    fn a_missing_root_names_the_key_to_fix() {
        let err = plan(Path::new("/nonexistent/rackboot-root"), u64::MAX).unwrap_err();
        assert!(err.to_string().contains("--root"), "{err}");
    }
}
