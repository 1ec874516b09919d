//! The client side of the admin socket, for `rackboot reload` and friends:
//! one request per connection, the answer read to its end.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long a request may take (a reload of a large tree takes seconds).
const TIMEOUT: Duration = Duration::from_secs(300);

/// Sends `POST path` to the admin socket at `socket`: the answer's status and body.
///
/// # Errors
/// The socket cannot be reached (the text says what to check), or the answer
/// is not HTTP.
pub fn post(socket: &Path, path: &str) -> Result<(u16, String), String> {
    request(socket, "POST", path, b"")
}

/// Sends `GET path` to the admin socket at `socket`: the answer's status and body.
///
/// # Errors
/// As [`post`].
pub fn get(socket: &Path, path: &str) -> Result<(u16, String), String> {
    request(socket, "GET", path, b"")
}

/// Sends `method path` with `body` (JSON) to the admin socket at `socket`:
/// the answer's status and body.
///
/// # Errors
/// As [`post`].
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        format!(
            "cannot reach the server's admin socket {}: {e} (is rackboot serving, as this user or root? \
             --admin-socket names another socket)",
            socket.display()
        )
    })?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: rackboot\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .and_then(|()| stream.write_all(body))
    .map_err(|e| format!("admin socket {}: {e}", socket.display()))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("admin socket {}: {e}", socket.display()))?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("admin socket {}: not an HTTP answer", socket.display()))?;
    Ok((status, body.to_owned()))
}
