//! HTTP/1.1 request heads (RFC 9112 §2-3), parsed zero-copy with httparse, plus the
//! pieces httparse leaves to its caller: `Range` (range.rs) and the request target
//! as a path under the served root (target.rs). Responses are written by `proto/http`.

pub mod range;
pub mod target;

use crate::wire::Error;

/// Upper bound on the header count a caller may configure; it sizes the parse array
/// on the stack so that parsing never allocates.
pub const MAX_HEADERS_CAP: usize = 256;

/// Size limits applied while a head is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes from the request line to the blank line, inclusive (431 past it).
    pub max_head: usize,
    /// Header fields (431 past it); at most [`MAX_HEADERS_CAP`].
    pub max_headers: usize,
    /// Bytes of the request target (414 past it).
    pub max_target: usize,
}

/// Request methods this server distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// Any other method token; answered 405.
    Other,
}

impl Method {
    /// The method token as sent, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Other => "OTHER",
        }
    }
}

/// Protocol version of the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: the connection closes after the response unless keep-alive is asked.
    Http10,
    /// HTTP/1.1: persistent unless `Connection: close`.
    Http11,
}

/// A parsed request head: borrowed fields of the buffer it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'b> {
    /// The method.
    pub method: Method,
    /// The request target exactly as sent (not yet decoded).
    pub target: &'b str,
    /// The protocol version.
    pub version: Version,
    /// `Connection: close` was sent.
    pub close: bool,
    /// `Connection: keep-alive` was sent (meaningful for HTTP/1.0).
    pub keep_alive: bool,
    /// Value of `Range`, if exactly one was sent.
    pub range: Option<&'b [u8]>,
    /// Value of `If-Range`.
    pub if_range: Option<&'b [u8]>,
    /// Value of `If-None-Match`.
    pub if_none_match: Option<&'b [u8]>,
    /// Value of `If-Modified-Since`.
    pub if_modified_since: Option<&'b [u8]>,
    /// Value of `Content-Length` (one field, digits only).
    pub content_length: Option<u64>,
    /// A `Transfer-Encoding` field was sent.
    pub transfer_encoding: bool,
    /// Value of `User-Agent`, for the access log.
    pub user_agent: Option<&'b [u8]>,
    /// Value of `Host`: the name the client used for this server.
    pub host: Option<&'b [u8]>,
}

/// Outcome of [`parse`] on the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<'b> {
    /// A whole head: the request, and how many bytes of the buffer it used.
    Complete {
        /// The request.
        request: Request<'b>,
        /// Length of the head, blank line included.
        head_len: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Parses one request head from the start of `buf`.
///
/// # Errors
/// A [`wire::Error`](Error) when the bytes cannot become a valid head within `limits`.
pub fn parse<'b>(buf: &'b [u8], limits: &Limits) -> Result<Parse<'b>, Error> {
    let max_headers = limits.max_headers.min(MAX_HEADERS_CAP);
    // Left uninitialised: zeroing 256 headers (8 KiB) was 90 % of this
    // function's time at 90,000 requests/s (perf, bench/backends' 1 KB cell).
    let mut storage =
        [const { std::mem::MaybeUninit::<httparse::Header<'b>>::uninit() }; MAX_HEADERS_CAP];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut storage[..max_headers]) {
        Ok(s) => s,
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Error::TooManyHeaders { limit: max_headers })
        }
        Err(e) => return Err(Error::Malformed(parse_reason(e))),
    };
    let head_len = match status {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return partial(buf, limits),
    };
    if head_len > limits.max_head {
        return Err(Error::HeadTooLarge {
            limit: limits.max_head,
        });
    }
    let target = req.path.ok_or(Error::Malformed("no request target"))?;
    if target.len() > limits.max_target {
        return Err(Error::TargetTooLong {
            limit: limits.max_target,
        });
    }
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let version = match req.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    let mut request = Request {
        method,
        target,
        version,
        close: false,
        keep_alive: false,
        range: None,
        if_range: None,
        if_none_match: None,
        if_modified_since: None,
        content_length: None,
        transfer_encoding: false,
        user_agent: None,
        host: None,
    };
    let mut ranges = 0usize;
    let mut hosts = 0usize;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim(h.value);
        if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim(token);
                request.close |= token.eq_ignore_ascii_case(b"close");
                request.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"range") {
            ranges += 1;
            request.range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-range") {
            request.if_range = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            request.if_none_match = Some(value);
        } else if name.eq_ignore_ascii_case(b"if-modified-since") {
            request.if_modified_since = Some(value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // RFC 9112 §6.3: a repeated or invalid length makes the framing unknowable.
            if request.content_length.is_some() {
                return Err(Error::BadContentLength);
            }
            request.content_length = Some(digits(value).ok_or(Error::BadContentLength)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            request.transfer_encoding = true;
        } else if name.eq_ignore_ascii_case(b"user-agent") {
            request.user_agent = Some(value);
        } else if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            request.host = Some(value);
        }
    }
    // RFC 9112 §3.2: an HTTP/1.1 request names its host once; two Host
    // fields are refused in any version.
    if hosts > 1 || (hosts == 0 && version == Version::Http11) {
        return Err(Error::BadHost);
    }
    if ranges > 1 {
        // Two Range fields are not a valid request; RFC 9110 §14.2 lets us ignore Range.
        request.range = None;
    }
    Ok(Parse::Complete { request, head_len })
}

/// A partial head is still an error once it can no longer fit the limits.
fn partial<'b>(buf: &[u8], limits: &Limits) -> Result<Parse<'b>, Error> {
    let request_line_done = buf.contains(&b'\n');
    // "METHOD " + target + " HTTP/1.1\r\n": 32 bytes cover any method we would accept.
    if !request_line_done && buf.len() > limits.max_target.saturating_add(32) {
        return Err(Error::TargetTooLong {
            limit: limits.max_target,
        });
    }
    if buf.len() >= limits.max_head {
        return Err(Error::HeadTooLarge {
            limit: limits.max_head,
        });
    }
    Ok(Parse::Partial)
}

fn parse_reason(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "unsupported version",
        httparse::Error::TooManyHeaders => "too many headers",
    }
}

/// Strips optional white space (RFC 9110 §5.6.3) from both ends.
pub fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// A non-empty run of ASCII digits as a `u64`; `None` on anything else or overflow.
pub fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_head: 1024,
        max_headers: 8,
        max_target: 64,
    };

    fn complete(buf: &[u8]) -> (Request<'_>, usize) {
        match parse(buf, &LIMITS) {
            Ok(Parse::Complete { request, head_len }) => (request, head_len),
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn ipxe_request_parses_with_its_fields() {
        let buf = b"GET /boot.ipxe HTTP/1.1\r\nConnection: keep-alive\r\nUser-Agent: iPXE/1.0.0+git-20190125.36a4c85-5.1\r\nHost: 10.77.0.1\r\n\r\nGET /next";
        let (r, len) = complete(buf);
        assert_eq!(len, buf.len() - b"GET /next".len());
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.target, "/boot.ipxe");
        assert_eq!(r.version, Version::Http11);
        assert!(r.keep_alive && !r.close);
        assert_eq!(
            r.user_agent,
            Some(&b"iPXE/1.0.0+git-20190125.36a4c85-5.1"[..])
        );
    }

    #[test]
    fn conditional_and_range_fields_are_trimmed() {
        let (r, _) = complete(
            b"HEAD /k HTTP/1.0\r\nRange:  bytes=0-9 \r\nIf-Range: \"e\"\r\nIf-None-Match: *\r\nIf-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\nConnection: Close\r\n\r\n",
        );
        assert_eq!(r.method, Method::Head);
        assert_eq!(r.version, Version::Http10);
        assert_eq!(r.range, Some(&b"bytes=0-9"[..]));
        assert_eq!(r.if_range, Some(&b"\"e\""[..]));
        assert_eq!(r.if_none_match, Some(&b"*"[..]));
        assert!(r.if_modified_since.is_some());
        assert!(r.close);
    }

    #[test]
    fn an_unfinished_head_is_partial_until_it_passes_a_limit() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x", &LIMITS),
            Ok(Parse::Partial)
        );
        let long_line = [b'a'; 200];
        assert_eq!(
            parse(&long_line, &LIMITS),
            Err(Error::TargetTooLong { limit: 64 })
        );
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.resize(1024, b'a');
        assert_eq!(
            parse(&big, &LIMITS),
            Err(Error::HeadTooLarge { limit: 1024 })
        );
    }

    #[test]
    fn limits_on_headers_and_target_are_enforced() {
        let many = b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n";
        assert_eq!(
            parse(many, &LIMITS),
            Err(Error::TooManyHeaders { limit: 8 })
        );
        let mut long = b"GET /".to_vec();
        long.extend_from_slice(&[b'a'; 80]);
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert_eq!(
            parse(&long, &LIMITS),
            Err(Error::TargetTooLong { limit: 64 })
        );
    }

    #[test]
    fn repeated_or_invalid_content_length_is_rejected() {
        let two = b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(parse(two, &LIMITS), Err(Error::BadContentLength));
        let bad = b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n";
        assert_eq!(parse(bad, &LIMITS), Err(Error::BadContentLength));
        let (r, _) = complete(b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.content_length, Some(5));
    }

    #[test]
    fn garbage_and_other_versions_are_malformed() {
        assert!(matches!(
            parse(b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", &LIMITS),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            parse(b"PRI * HTTP/2.0\r\n\r\n", &LIMITS),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn two_range_fields_drop_the_range() {
        let (r, _) =
            complete(b"GET / HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n");
        assert_eq!(r.range, None);
    }

    #[test]
    fn an_http_1_1_request_names_its_host_once() {
        for bad in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n",
        ] {
            assert_eq!(parse(bad, &LIMITS).err(), Some(Error::BadHost), "{bad:?}");
        }
        // HTTP/1.0 needs none; an empty value is a Host (RFC 9112 §3.2).
        assert!(complete(b"GET / HTTP/1.0\r\n\r\n").0.host.is_none());
        assert_eq!(
            complete(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").0.host,
            Some(&b""[..])
        );
    }

    #[test]
    fn digits_reject_signs_spaces_and_overflow() {
        assert_eq!(digits(b"0"), Some(0));
        assert_eq!(digits(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits(b"18446744073709551616"), None);
        assert_eq!(digits(b"+1"), None);
        assert_eq!(digits(b""), None);
    }
}
