//! Deciding a request's response and writing its head: lookup, conditionals
//! (RFC 9110 §13), ranges (§14), and the header block. Pure: it reads the request,
//! the snapshot and the date, and writes into the caller's buffer.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::reason;
use super::{Context, Error};
use crate::proto::boot::{Origin, Page};
use crate::store::BootFile;
use crate::wire::http::range::{self, Spec};
use crate::wire::http::{target, Method, Request, Version};

/// What the connection sends after the head that [`respond`] wrote.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) status: u16,
    pub(super) close: bool,
    /// File bytes that follow the head: (file, first offset, length).
    pub(super) body: Option<(Arc<BootFile>, u64, u64)>,
    /// Bytes of `out` that are body (an error's text), for the access log.
    pub(super) inline_body: u64,
    pub(super) error: Option<Error>,
}

/// Writes the response head for `req` into `out` (cleared first). `path` is the
/// caller's reusable decode buffer.
pub(super) fn respond(
    req: &Request<'_>,
    ctx: &Context<'_>,
    path: &mut String,
    out: &mut Vec<u8>,
) -> Plan {
    let close = req.close || (req.version == Version::Http10 && !req.keep_alive) || has_body(req);
    match choose(req, ctx, path) {
        Ok(Choice::File {
            file,
            status,
            first,
            len,
        }) => {
            let head_only = req.method == Method::Head;
            write_file_head(out, ctx, req.version, close, &file, status, first, len);
            let body = (!head_only && len > 0).then_some((file, first, len));
            Plan {
                status,
                close,
                body,
                inline_body: 0,
                error: None,
            }
        }
        Ok(Choice::Page(page)) => {
            out.clear();
            status_line(out, page.status, ctx);
            let _ = write!(
                out,
                "Content-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
                page.content_type,
                page.body.len()
            );
            connection(out, req.version, close);
            out.extend_from_slice(b"\r\n");
            let mut inline_body = 0;
            if req.method != Method::Head {
                out.extend_from_slice(page.body.as_bytes());
                inline_body = page.body.len() as u64;
            }
            Plan {
                status: page.status,
                close,
                body: None,
                inline_body,
                error: None,
            }
        }
        Ok(Choice::NotModified(file)) => {
            out.clear();
            status_line(out, 304, ctx);
            validators(out, &file);
            connection(out, req.version, close);
            out.extend_from_slice(b"\r\n");
            Plan {
                status: 304,
                close,
                body: None,
                inline_body: 0,
                error: None,
            }
        }
        Err(e) => error(out, ctx, e, req.version, close, req.method == Method::Head),
    }
}

/// Requests with a body are answered and then the connection closes: this server
/// reads no bodies, and a body it skipped by its length is how requests are
/// smuggled past proxies that frame differently.
fn has_body(req: &Request<'_>) -> bool {
    req.transfer_encoding || req.content_length.is_some_and(|n| n > 0)
}

enum Choice {
    File {
        file: Arc<BootFile>,
        status: u16,
        first: u64,
        len: u64,
    },
    NotModified(Arc<BootFile>),
    /// A page rendered for this request (boot profiles).
    Page(Page),
}

fn choose(req: &Request<'_>, ctx: &Context<'_>, path: &mut String) -> Result<Choice, Error> {
    if req.transfer_encoding {
        return Err(Error::TransferEncoding);
    }
    target::decode_path(req.target, path)?;
    if req.method == Method::Other {
        return Err(Error::Method);
    }
    if let Some(n) = req.content_length.filter(|&n| n > 0) {
        return Err(Error::Body(n));
    }
    if let Some(boot) = ctx.boot {
        let query = req.target.split('#').next().unwrap_or("");
        let query = query.split_once('?').map_or("", |(_, q)| q);
        let origin = Origin {
            host: req.host.and_then(|h| std::str::from_utf8(h).ok()),
            peer: ctx.peer,
            unix_secs: ctx.unix_secs,
            tls: ctx.tls,
            // grub sends `Host` without the port it connected to; for any
            // other client a `Host` without one means the scheme's own
            // (and may be a proxy's or NAT's address).
            port: if req.user_agent.is_some_and(|a| a.starts_with(b"GRUB")) {
                ctx.port
            } else {
                0
            },
        };
        if let Some(page) = boot.answer(path, query, origin) {
            return Ok(Choice::Page(page));
        }
    }
    let file = ctx.snapshot.get(path).ok_or(Error::NotFound)?;
    if not_modified(req, file) {
        return Ok(Choice::NotModified(Arc::clone(file)));
    }
    let full = Choice::File {
        file: Arc::clone(file),
        status: 200,
        first: 0,
        len: file.len(),
    };
    // RFC 9110 §14.2: Range is defined for GET only.
    let (Method::Get, Some(value)) = (req.method, req.range) else {
        return Ok(full);
    };
    if req.if_range.is_some_and(|v| !if_range_matches(v, file)) {
        return Ok(full);
    }
    match range::resolve(value, file.len()) {
        Spec::Whole => Ok(full),
        Spec::Part { first, last } => Ok(Choice::File {
            file: Arc::clone(file),
            status: 206,
            first,
            len: last - first + 1,
        }),
        Spec::Unsatisfiable => Err(Error::RangeNotSatisfiable { len: file.len() }),
    }
}

/// RFC 9110 §13.2.2 steps 3-4: If-None-Match (weak comparison), else If-Modified-Since.
fn not_modified(req: &Request<'_>, file: &BootFile) -> bool {
    if let Some(list) = req.if_none_match {
        return list == b"*"
            || list.split(|&b| b == b',').any(|tag| {
                let tag = crate::wire::http::trim(tag);
                tag.strip_prefix(b"W/").unwrap_or(tag) == file.etag().as_bytes()
            });
    }
    match req.if_modified_since.and_then(parse_date) {
        Some(since) => whole_seconds(file.mtime()) <= since,
        None => false,
    }
}

/// RFC 9110 §13.1.5: a strong ETag equal to ours, or a date equal to Last-Modified.
fn if_range_matches(value: &[u8], file: &BootFile) -> bool {
    if value.starts_with(b"\"") {
        return value == file.etag().as_bytes();
    }
    if value.starts_with(b"W/") {
        return false;
    }
    parse_date(value).is_some_and(|d| d == whole_seconds(file.mtime()))
}

fn parse_date(v: &[u8]) -> Option<u64> {
    let t = httpdate::parse_http_date(std::str::from_utf8(v).ok()?).ok()?;
    Some(whole_seconds(t))
}

fn whole_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[allow(
    clippy::too_many_arguments,
    reason = "one flat call per response; a struct would only rename them"
)]
fn write_file_head(
    out: &mut Vec<u8>,
    ctx: &Context<'_>,
    version: Version,
    close: bool,
    file: &BootFile,
    status: u16,
    first: u64,
    len: u64,
) {
    out.clear();
    status_line(out, status, ctx);
    out.extend_from_slice(b"Content-Length: ");
    push_decimal(out, len);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(file.header_block().as_bytes());
    if status == 206 {
        let _ = write!(
            out,
            "Content-Range: bytes {first}-{}/{}\r\n",
            first + len - 1,
            file.len()
        );
    }
    connection(out, version, close);
    out.extend_from_slice(b"\r\n");
}

/// Writes an error response (a short text body unless `head_only`).
pub(super) fn error(
    out: &mut Vec<u8>,
    ctx: &Context<'_>,
    e: Error,
    version: Version,
    close: bool,
    head_only: bool,
) -> Plan {
    let status = e.status();
    let close = close || e.closes();
    let text = reason(status);
    out.clear();
    status_line(out, status, ctx);
    let body_len = text.len() + 1;
    let _ = write!(
        out,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Length: {body_len}\r\n"
    );
    match e {
        Error::Method => out.extend_from_slice(b"Allow: GET, HEAD\r\n"),
        // RFC 9110 §15.5.17: a 416 says the current length.
        Error::RangeNotSatisfiable { len } => {
            out.extend_from_slice(b"Content-Range: bytes */");
            push_decimal(out, len);
            out.extend_from_slice(b"\r\n");
        }
        _ => {}
    }
    connection(out, version, close);
    out.extend_from_slice(b"\r\n");
    let mut inline_body = 0;
    if !head_only {
        let _ = writeln!(out, "{text}");
        inline_body = body_len as u64;
    }
    Plan {
        status,
        close,
        body: None,
        inline_body,
        error: Some(e),
    }
}

fn status_line(out: &mut Vec<u8>, status: u16, ctx: &Context<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\nServer: rackboot\r\nDate: ");
    out.extend_from_slice(ctx.date.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(crate::wire::decimal(n, &mut [0; 20]));
}

fn validators(out: &mut Vec<u8>, file: &BootFile) {
    let _ = write!(
        out,
        "Last-Modified: {}\r\nETag: {}\r\n",
        file.last_modified(),
        file.etag()
    );
}

fn connection(out: &mut Vec<u8>, version: Version, close: bool) {
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::Http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
}
