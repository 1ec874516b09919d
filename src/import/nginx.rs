//! nginx's configuration, the part PXE setups use: one `server` with its
//! `listen`, `root`, and `location PREFIX { root | alias }` blocks, mapped
//! to rackboot's HTTP listen address, served root and `[[mount]]`s. Every
//! other directive is reported: rackboot serves files, it does not proxy,
//! rewrite or list directories.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::dnsmasq::{At, Note, Severity};

/// What nginx's configuration carries over.
#[derive(Debug, Clone, Default)]
pub struct Nginx {
    /// Where the server listened.
    pub listen: Option<SocketAddr>,
    /// Its root, where `/` is served from.
    pub root: Option<PathBuf>,
    /// Prefixes served from other directories: (prefix, directory).
    pub mounts: Vec<(String, PathBuf)>,
    /// What was not carried over.
    pub notes: Vec<Note>,
}

/// One directive: its name, arguments, block, and where.
#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
    at: At,
}

/// Reads nginx's configuration at `path` (following `include`).
///
/// # Errors
/// A file cannot be read, or its braces do not match: the text names where.
pub fn read(path: &Path) -> Result<Nginx, String> {
    let mut seen = Vec::new();
    let tree = parse_file(path, &mut seen)?;
    let mut out = Nginx::default();
    let mut servers = Vec::new();
    collect_servers(&tree, &mut servers);
    let Some(first) = servers
        .iter()
        .position(|s| {
            s.block
                .iter()
                .flatten()
                .any(|d| d.name == "listen" && d.args.iter().any(|a| a == "default_server"))
        })
        .or((!servers.is_empty()).then_some(0))
    else {
        return Err(format!("{}: no `server` block", path.display()));
    };
    for (i, s) in servers.iter().enumerate() {
        if i != first {
            note(
                &mut out,
                s,
                "rackboot serves one site: only the default (or first) `server` is carried over",
            );
        }
    }
    let server = servers[first].clone();
    for d in server.block.iter().flatten() {
        match d.name.as_str() {
            "listen" => match d.args.first().map(|a| listen(a)) {
                Some(Some(addr)) if out.listen.is_none() => out.listen = Some(addr),
                Some(Some(_)) => note(&mut out, d, "rackboot's HTTP listens on one address: the first `listen` is used"),
                _ => note(&mut out, d, "not an address rackboot can listen on (IPv6 and unix sockets are not carried over)"),
            },
            "root" => out.root = d.args.first().map(PathBuf::from),
            "location" => location(&mut out, d),
            "server_name" | "index" | "sendfile" | "tcp_nopush" | "tcp_nodelay" | "access_log"
            | "error_log" | "charset" | "keepalive_timeout" | "client_max_body_size" | "types"
            | "default_type" | "include" => {}
            _ => note(&mut out, d, "not carried over: rackboot serves files as they are"),
        }
    }
    Ok(out)
}

fn note(out: &mut Nginx, d: &Directive, why: &str) {
    out.notes.push(Note {
        at: d.at.clone(),
        line: format!("{} {}", d.name, d.args.join(" ")).trim().to_owned(),
        why: why.to_owned(),
        severity: Severity::Http,
    });
}

fn location(out: &mut Nginx, d: &Directive) {
    let (modifier, prefix) = match d.args.as_slice() {
        [p] => ("", p.as_str()),
        [m, p] => (m.as_str(), p.as_str()),
        _ => return note(out, d, "a location rackboot cannot read"),
    };
    if !matches!(modifier, "" | "^~") || !prefix.starts_with('/') {
        return note(out, d, "regular-expression and exact locations are not carried over: rackboot serves by path prefix");
    }
    let mut dir = None;
    for inner in d.block.iter().flatten() {
        match (inner.name.as_str(), inner.args.first()) {
            ("alias", Some(a)) => dir = Some(PathBuf::from(a)),
            ("root", Some(r)) => {
                dir = Some(PathBuf::from(r).join(prefix.trim_start_matches('/')));
            }
            ("autoindex", _) => note(out, inner, "rackboot lists no directories"),
            (
                "index" | "sendfile" | "tcp_nopush" | "access_log" | "error_log" | "default_type"
                | "types",
                _,
            ) => {}
            _ => note(
                out,
                inner,
                "not carried over: rackboot serves files as they are",
            ),
        }
    }
    let prefix = prefix.trim_end_matches('/');
    match dir {
        Some(dir) if prefix.is_empty() => out.root = Some(dir),
        Some(dir) => out.mounts.push((prefix.to_owned(), dir)),
        None => {}
    }
}

fn listen(a: &str) -> Option<SocketAddr> {
    if a.starts_with('[') || a.starts_with("unix:") {
        return None;
    }
    if let Ok(port) = a.parse::<u16>() {
        return Some(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = a.parse() {
        return Some(addr);
    }
    let ip: std::net::Ipv4Addr = a
        .parse()
        .ok()
        .or_else(|| (a == "*").then_some([0, 0, 0, 0].into()))?;
    Some(SocketAddr::from((ip, 80)))
}

fn collect_servers(tree: &[Directive], out: &mut Vec<Directive>) {
    for d in tree {
        if d.name == "server" && d.block.is_some() {
            out.push(d.clone());
        } else if let Some(b) = &d.block {
            if d.name == "http" {
                collect_servers(b, out);
            }
        }
    }
}

fn parse_file(path: &Path, seen: &mut Vec<PathBuf>) -> Result<Vec<Directive>, String> {
    let canonical =
        std::fs::canonicalize(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if seen.contains(&canonical) {
        return Err(format!("{} is included twice (a loop?)", path.display()));
    }
    seen.push(canonical);
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let tokens = tokenize(&text);
    let mut at = 0;
    let tree = parse_block(path, &tokens, &mut at, false)?;
    // Includes, expanded in place.
    let mut out = Vec::new();
    for d in tree {
        out.push(expand(path, d, seen)?);
    }
    Ok(out.into_iter().flatten().collect())
}

fn expand(path: &Path, d: Directive, seen: &mut Vec<PathBuf>) -> Result<Vec<Directive>, String> {
    if d.name == "include" {
        let pattern = d.args.first().cloned().unwrap_or_default();
        let mut all = Vec::new();
        for file in glob(path, &pattern) {
            all.extend(parse_file(&file, seen)?);
        }
        return Ok(all);
    }
    let block = match d.block {
        Some(b) => {
            let mut inner = Vec::new();
            for x in b {
                inner.extend(expand(path, x, seen)?);
            }
            Some(inner)
        }
        None => None,
    };
    Ok(vec![Directive { block, ..d }])
}

/// `dir/*`, `dir/*.conf` or a file, relative to the including file's dir.
fn glob(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let p = Path::new(pattern);
    let p = if p.is_absolute() {
        p.to_owned()
    } else {
        base.parent().unwrap_or(Path::new(".")).join(p)
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((before, after)) = name.split_once('*') else {
        return vec![p];
    };
    let dir = p.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| {
                    f.is_file()
                        && f.file_name().is_some_and(|n| {
                            let n = n.to_string_lossy();
                            n.starts_with(before) && n.ends_with(after)
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String, usize),
    Semi(usize),
    Open(usize),
    Close(usize),
}

fn tokenize(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            ';' => out.push(Token::Semi(line)),
            '{' => out.push(Token::Open(line)),
            '}' => out.push(Token::Close(line)),
            '"' | '\'' => {
                let mut w = String::new();
                let mut escaped = false;
                for x in chars.by_ref() {
                    if x == '\n' {
                        line += 1;
                    }
                    if escaped {
                        w.push(x);
                        escaped = false;
                    } else if x == '\\' {
                        escaped = true;
                    } else if x == c {
                        break;
                    } else {
                        w.push(x);
                    }
                }
                out.push(Token::Word(w, line));
            }
            c => {
                let mut w = String::from(c);
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() || matches!(x, ';' | '{' | '}') {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                out.push(Token::Word(w, line));
            }
        }
    }
    out
}

fn parse_block(
    path: &Path,
    tokens: &[Token],
    at: &mut usize,
    inner: bool,
) -> Result<Vec<Directive>, String> {
    let mut out = Vec::new();
    let mut words: Vec<(String, usize)> = Vec::new();
    let here = |line: usize| At {
        file: path.to_owned(),
        line,
    };
    while let Some(t) = tokens.get(*at) {
        *at += 1;
        match t {
            Token::Word(w, l) => words.push((w.clone(), *l)),
            Token::Semi(l) | Token::Open(l) => {
                let Some(((name, line), args)) = words.split_first() else {
                    return Err(format!("{}: a `;` or `{{` with no directive", here(*l)));
                };
                let block = if matches!(t, Token::Open(_)) {
                    Some(parse_block(path, tokens, at, true)?)
                } else {
                    None
                };
                out.push(Directive {
                    name: name.clone(),
                    args: args.iter().map(|(a, _)| a.clone()).collect(),
                    block,
                    at: here(*line),
                });
                words.clear();
            }
            Token::Close(l) => {
                if !inner {
                    return Err(format!("{}: a `}}` with no block to close", here(*l)));
                }
                return Ok(out);
            }
        }
    }
    if inner {
        return Err(format!("{}: a block is not closed", path.display()));
    }
    if let Some((w, l)) = words.first() {
        return Err(format!("{}: `{w}` has no `;`", here(*l)));
    }
    Ok(out)
}
