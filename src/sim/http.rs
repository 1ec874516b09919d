//! A virtual machine's HTTP GET, sans-IO, as iPXE and the installer make it:
//! one request on a keep-alive connection, a response read to its
//! `Content-Length`, the body's bytes counted (and its first bytes kept, for a
//! boot script or an answer file). The caller owns the connection and feeds
//! the bytes it reads.

/// Where a URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Host as written (name or address).
    pub host: String,
    /// Port (80 when the URL names none).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Why a fetch failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an `http://` URL the simulator can follow.
    #[error("not an http:// URL: {0}")]
    Url(String),
    /// The response head could not be parsed.
    #[error("malformed response head")]
    Head,
    /// No `Content-Length` (chunked or close-delimited bodies are not read).
    #[error("response without Content-Length")]
    NoLength,
    /// The connection closed before the body ended.
    #[error("connection closed after {got} of {want} body bytes")]
    Closed {
        /// Body bytes received.
        got: u64,
        /// Body bytes announced.
        want: u64,
    },
}

/// `http://host[:port]/path` split up.
///
/// # Errors
/// Any other scheme, or no host.
pub fn target(url: &str) -> Result<Target, Error> {
    let bad = || Error::Url(url.to_owned());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    // An IPv6 host is bracketed (`[fd00::1]:8080`); the brackets stay in
    // the host, as the `Host` header writes it.
    let (host, port) = match authority.rfind(']') {
        Some(end) if authority.starts_with('[') => match &authority[end + 1..] {
            "" => (authority, 80),
            p => (
                &authority[..=end],
                p.strip_prefix(':')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            ),
        },
        _ => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
            None => (authority, 80),
        },
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Target {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// What a finished GET got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    /// The body's first bytes, up to the limit asked for.
    pub body: Vec<u8>,
    /// The server keeps the connection open for the next request.
    pub keep_alive: bool,
}

#[derive(Debug)]
enum State {
    Head(Vec<u8>),
    Body {
        status: u16,
        left: u64,
        keep_alive: bool,
    },
    Done,
}

/// One GET.
#[derive(Debug)]
pub struct Get {
    request: Vec<u8>,
    sent: bool,
    keep: usize,
    state: State,
    bytes: u64,
    body: Vec<u8>,
    result: Option<Result<Response, Error>>,
}

impl Get {
    /// A GET of `target` with `user_agent`, keeping up to `keep` body bytes.
    pub fn new(target: &Target, user_agent: &str, keep: usize) -> Self {
        let host = if target.port == 80 {
            target.host.clone()
        } else {
            format!("{}:{}", target.host, target.port)
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\nConnection: keep-alive\r\n\r\n",
            target.path
        );
        Self {
            request: request.into_bytes(),
            sent: false,
            keep,
            state: State::Head(Vec::new()),
            bytes: 0,
            body: Vec::new(),
            result: None,
        }
    }

    /// The request bytes, once.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<&[u8]> {
        if std::mem::replace(&mut self.sent, true) {
            return None;
        }
        Some(&self.request)
    }

    /// Bytes read from the connection; returns how many belong to this
    /// response (the rest is the next one's, or unexpected).
    pub fn handle(&mut self, bytes: &[u8]) -> usize {
        let mut used = 0;
        while used < bytes.len() {
            let rest = &bytes[used..];
            match &mut self.state {
                State::Done => break,
                State::Head(head) => {
                    let before = head.len();
                    head.extend_from_slice(rest);
                    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                        used = bytes.len();
                        if head.len() > 64 * 1024 {
                            self.finish(Err(Error::Head));
                        }
                        continue;
                    };
                    let head_len = end + 4;
                    used += head_len - before;
                    let parsed = parse_head(&head[..head_len]);
                    match parsed {
                        Ok((status, left, keep_alive)) => {
                            self.state = State::Body {
                                status,
                                left,
                                keep_alive,
                            };
                            self.maybe_done();
                        }
                        Err(e) => self.finish(Err(e)),
                    }
                }
                State::Body { left, .. } => {
                    let n = rest.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    self.bytes += n as u64;
                    let room = self.keep.saturating_sub(self.body.len());
                    self.body.extend_from_slice(&rest[..n.min(room)]);
                    used += n;
                    self.maybe_done();
                }
            }
        }
        used
    }

    /// Body bytes still due that this GET does not keep: a driver may drop
    /// them unread (and report them with [`Self::handle_discarded`]).
    pub fn discardable(&self) -> u64 {
        match self.state {
            State::Body { left, .. } if self.body.len() >= self.keep => left,
            _ => 0,
        }
    }

    /// `n` body bytes (at most [`Self::discardable`]) arrived and were dropped
    /// unread.
    pub fn handle_discarded(&mut self, n: u64) {
        if let State::Body { left, .. } = &mut self.state {
            let n = n.min(*left);
            *left -= n;
            self.bytes += n;
            self.maybe_done();
        }
    }

    /// The connection closed (EOF).
    pub fn handle_eof(&mut self) {
        match self.state {
            State::Done => {}
            State::Body { left, .. } => self.finish(Err(Error::Closed {
                got: self.bytes,
                want: self.bytes + left,
            })),
            State::Head(_) => self.finish(Err(Error::Closed { got: 0, want: 0 })),
        }
    }

    /// The response once complete (or why it failed), once.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Result<Response, Error>> {
        self.result.take()
    }

    fn maybe_done(&mut self) {
        if let State::Body {
            status,
            left: 0,
            keep_alive,
        } = self.state
        {
            let body = std::mem::take(&mut self.body);
            self.finish(Ok(Response {
                status,
                bytes: self.bytes,
                body,
                keep_alive,
            }));
        }
    }

    fn finish(&mut self, result: Result<Response, Error>) {
        self.state = State::Done;
        self.result = Some(result);
    }
}

/// Status, body length and keep-alive from a complete response head.
fn parse_head(head: &[u8]) -> Result<(u16, u64, bool), Error> {
    let mut storage = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut storage);
    match r.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Error::Head),
    }
    let status = r.code.ok_or(Error::Head)?;
    let header = |name: &str| {
        r.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let length = match header("content-length") {
        Some(v) => v.trim().parse().map_err(|_| Error::Head)?,
        // 304 and 204 carry no body.
        None if status == 304 || status == 204 => 0,
        None => return Err(Error::NoLength),
    };
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let keep_alive = r.version == Some(1) && !close;
    Ok((status, length, keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRIPT: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n#!ipxe\nboot\n";

    fn get(url: &str, keep: usize) -> Get {
        Get::new(&target(url).unwrap(), "iPXE/1.0.0", keep)
    }

    #[test]
    fn urls_split_into_host_port_and_path() {
        assert_eq!(
            target("http://10.0.0.1:8080/boot.ipxe?mac=52:54:00:00:00:01").unwrap(),
            Target {
                host: "10.0.0.1".into(),
                port: 8080,
                path: "/boot.ipxe?mac=52:54:00:00:00:01".into()
            }
        );
        assert_eq!(target("http://boot").unwrap().path, "/");
        assert!(target("https://h/x").is_err() && target("http://:80/").is_err());
        let v6 = target("http://[fd00:9::1]:8080/boot.ipxe").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("[fd00:9::1]", 8080));
        assert_eq!(target("http://[::1]/x").unwrap().port, 80);
        assert!(target("http://[::1]x/").is_err());
    }

    #[test]
    fn the_request_goes_once_and_a_response_split_anywhere_reads_whole() {
        let mut g = get("http://10.0.0.1:8080/boot.ipxe", 64);
        let req = String::from_utf8(g.poll_transmit().unwrap().to_vec()).unwrap();
        assert!(
            req.starts_with("GET /boot.ipxe HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n"),
            "{req}"
        );
        assert!(g.poll_transmit().is_none());
        for split in 1..SCRIPT.len() {
            let mut g = get("http://h/boot.ipxe", 64);
            let _ = g.poll_transmit();
            let used = g.handle(&SCRIPT[..split]) + g.handle(&SCRIPT[split..]);
            assert_eq!(used, SCRIPT.len());
            let r = g.poll_event().unwrap().unwrap();
            assert_eq!((r.status, r.bytes, r.keep_alive), (200, 12, true));
            assert_eq!(r.body, b"#!ipxe\nboot\n");
        }
    }

    #[test]
    fn bytes_past_the_body_are_left_for_the_next_response() {
        let mut g = get("http://h/k", 4);
        let mut stream = SCRIPT.to_vec();
        stream.extend_from_slice(b"HTTP/1.1 404 Not Found\r\n");
        assert_eq!(g.handle(&stream), SCRIPT.len());
        let r = g.poll_event().unwrap().unwrap();
        assert_eq!(
            (r.bytes, r.body.as_slice()),
            (12, &b"#!ip"[..]),
            "kept only 4 bytes"
        );
    }

    #[test]
    fn body_bytes_past_what_is_kept_can_be_dropped_unread() {
        let mut g = get("http://h/k", 4);
        assert_eq!(g.discardable(), 0, "the head is not read yet");
        g.handle(&SCRIPT[..SCRIPT.len() - 8]);
        assert_eq!(g.discardable(), 8);
        g.handle_discarded(5);
        assert_eq!((g.discardable(), g.poll_event()), (3, None));
        g.handle_discarded(100);
        let r = g.poll_event().unwrap().unwrap();
        assert_eq!((r.bytes, r.body.as_slice()), (12, &b"#!ip"[..]));
    }

    #[test]
    fn a_close_mid_body_and_a_missing_length_are_failures() {
        let mut g = get("http://h/k", 0);
        g.handle(&SCRIPT[..SCRIPT.len() - 5]);
        g.handle_eof();
        assert_eq!(
            g.poll_event(),
            Some(Err(Error::Closed { got: 7, want: 12 }))
        );
        let mut g = get("http://h/k", 0);
        g.handle(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(g.poll_event(), Some(Err(Error::NoLength)));
        let mut g = get("http://h/k", 0);
        g.handle(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        let r = g.poll_event().unwrap().unwrap();
        assert_eq!((r.status, r.keep_alive), (404, false));
    }
}
