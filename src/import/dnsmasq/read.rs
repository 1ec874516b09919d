//! Reading a dnsmasq configuration as dnsmasq does: one option per line
//! (`name=value`, or `name` alone for a flag), `#` comments, `conf-file=` and
//! `conf-dir=` includes followed in place, each line remembered with the file
//! and line it came from. An include loop, an unreadable include and a line
//! that is not an option are errors that name the place.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a line came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At {
    /// The file.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Where it is.
    pub at: At,
    /// The option's name (`dhcp-range`).
    pub key: String,
    /// Its value (`10.0.0.10,10.0.0.100,12h`); `None` for a flag.
    pub value: Option<String>,
}

/// A configuration that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Where (the including line, for an include that fails).
    pub at: Option<At>,
    /// What, and what to do.
    pub message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How deep includes may nest (dnsmasq's own limit is lower than a loop's
/// depth would reach; this only bounds a pathological tree).
const MAX_DEPTH: usize = 16;

/// Reads `path` and every file it includes, in order.
///
/// # Errors
/// A file cannot be read, an include loops or nests too deep, or a line is
/// not an option.
pub fn read(path: &Path) -> Result<Vec<Line>, Error> {
    let mut out = Vec::new();
    let mut open = Vec::new();
    file(path, None, &mut open, &mut out)?;
    Ok(out)
}

fn file(
    path: &Path,
    from: Option<&At>,
    open: &mut Vec<PathBuf>,
    out: &mut Vec<Line>,
) -> Result<(), Error> {
    let fail = |message: String| Error {
        at: from.cloned(),
        message,
    };
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if open.contains(&canonical) {
        return Err(fail(format!(
            "{} includes itself (through {}): remove the loop",
            path.display(),
            open.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" -> ")
        )));
    }
    if open.len() >= MAX_DEPTH {
        return Err(fail(format!(
            "includes nest deeper than {MAX_DEPTH} files at {}",
            path.display()
        )));
    }
    let bytes =
        std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes);
    open.push(canonical);
    for (i, raw) in text.lines().enumerate() {
        let at = At {
            file: path.to_owned(),
            line: i + 1,
        };
        let Some(line) = parse_line(raw, &at)? else {
            continue;
        };
        match (line.key.as_str(), &line.value) {
            ("conf-file", Some(v)) => {
                let inc = relative(path, v);
                file(&inc, Some(&at), open, out)?;
            }
            ("conf-dir", Some(v)) => dir(path, v, &at, open, out)?,
            _ => out.push(line),
        }
    }
    open.pop();
    Ok(())
}

/// `conf-dir=DIR[,.ext|*.ext...]`: DIR's files in name order, skipping
/// editor and package leftovers; `.ext` items exclude, `*.ext` items are the
/// only ones read.
fn dir(
    base: &Path,
    value: &str,
    at: &At,
    open: &mut Vec<PathBuf>,
    out: &mut Vec<Line>,
) -> Result<(), Error> {
    let mut parts = value.split(',');
    let dir = relative(base, parts.next().unwrap_or("").trim());
    let (mut only, mut skip) = (Vec::new(), Vec::new());
    for p in parts.map(str::trim).filter(|p| !p.is_empty()) {
        match p.strip_prefix('*') {
            Some(ext) => only.push(ext.to_owned()),
            None => skip.push(p.to_owned()),
        }
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error {
        at: Some(at.clone()),
        message: format!("conf-dir {}: {e}", dir.display()),
    })?;
    let mut names: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut seen = HashSet::new();
    for p in names {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let leftover = name.ends_with('~')
            || name.starts_with(".#")
            || (name.starts_with('#') && name.ends_with('#'))
            || name.starts_with('.');
        let wanted = if only.is_empty() {
            !skip.iter().any(|s| name.ends_with(s.as_str()))
        } else {
            only.iter().any(|s| name.ends_with(s.as_str()))
        };
        if !leftover && wanted && seen.insert(p.clone()) {
            file(&p, Some(at), open, out)?;
        }
    }
    Ok(())
}

fn relative(base: &Path, v: &str) -> PathBuf {
    let p = Path::new(v);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// One line: `None` for a blank line or a comment.
///
/// # Errors
/// The line is not `name[=value]`.
pub fn parse_line(raw: &str, at: &At) -> Result<Option<Line>, Error> {
    let text = strip_comment(raw).trim();
    if text.is_empty() {
        return Ok(None);
    }
    let text = text.strip_prefix("--").unwrap_or(text);
    let (key, value) = match text.split_once('=') {
        Some((k, v)) => (k.trim(), Some(unquote(v.trim()))),
        None => (text, None),
    };
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error {
            at: Some(at.clone()),
            message: format!("{raw:?} is not a dnsmasq option (write name=value, one per line)"),
        });
    }
    Ok(Some(Line {
        at: at.clone(),
        key: key.to_owned(),
        value,
    })
    .filter(|_| true))
}

/// The line without a comment: `#` at its start, or after whitespace outside
/// double quotes.
fn strip_comment(raw: &str) -> &str {
    let mut quoted = false;
    let mut prev_space = true;
    for (i, c) in raw.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev_space => return &raw[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    raw
}

/// dnsmasq drops double quotes around values (and keeps what is inside).
fn unquote(v: &str) -> String {
    v.replace('"', "")
}
