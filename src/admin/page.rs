//! The fleet page: one static HTML file with its script and style inline
//! (the boot network has no internet, and there is no build step), served
//! from the binary. It holds no data: it asks `GET /api/v1/boots` and
//! `/api/v1/machines/{mac}/boots` every two seconds, with the bearer token
//! it was given in its URL's fragment (`/#token=...`, never sent to a
//! server) when it is served on TCP.

use std::io;

use tiny_http::{Header, Response};

use crate::fleet::view::Query;
use crate::fleet::{Phase, State};
use crate::proto::boot::facts::percent_decode;

const PAGE: &str = include_str!("fleet.html");

/// The page, for `GET /` (and `/fleet`); `None` for any other URL.
pub(super) fn static_file(url: &str) -> Option<Response<io::Cursor<Vec<u8>>>> {
    let path = url.split('?').next().unwrap_or(url);
    if !matches!(path, "/" | "/fleet" | "/index.html") {
        return None;
    }
    let mut response = Response::from_data(PAGE.as_bytes().to_vec());
    for (name, value) in [
        ("Content-Type", "text/html; charset=utf-8"),
        // Everything it needs is inline; it may only call its own origin.
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        ),
        ("Cache-Control", "no-cache"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(h);
        }
    }
    Some(response)
}

/// `GET /api/v1/boots`' query: `state`, `phase`, `q`, `limit`, `history`.
///
/// # Errors
/// A key or value it does not know, named, with what it takes.
pub(super) fn query(raw: &str) -> Result<Query, String> {
    let mut q = Query::default();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(&value.replace('+', " "))
            .ok_or_else(|| format!("`{key}` is not percent-encoded right"))?;
        match key {
            "state" => {
                q.state = Some(match value.as_str() {
                    "stuck" => State::Stuck,
                    "booting" => State::Booting,
                    "booted" => State::Booted,
                    _ => {
                        return Err(format!(
                            "`state` is {value:?}: use stuck, booting or booted"
                        ))
                    }
                });
            }
            "phase" => {
                q.phase = Some(Phase::parse(&value).ok_or_else(|| {
                    format!(
                        "`phase` is {value:?}: use one of {}",
                        Phase::ALL.map(Phase::name).join(", ")
                    )
                })?);
            }
            "q" => q.search = Some(value).filter(|v| !v.is_empty()),
            "limit" => {
                q.limit = Some(
                    value
                        .parse()
                        .map_err(|_| format!("`limit` is {value:?}: give a number of rows"))?,
                );
            }
            "history" => q.history = matches!(value.as_str(), "1" | "true" | ""),
            _ => {
                return Err(format!(
                    "unknown parameter `{key}`: use state, phase, q, limit or history"
                ))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boots_query_is_read_and_its_mistakes_are_named() {
        let q = query("state=stuck&phase=ipxe-dhcp&q=52%3A54+x&limit=5&history=1").unwrap();
        assert_eq!(q.state, Some(State::Stuck));
        assert_eq!(q.phase, Some(Phase::IpxeDhcp));
        assert_eq!(q.search.as_deref(), Some("52:54 x"));
        assert_eq!((q.limit, q.history), (Some(5), true));
        assert!(query("").unwrap().state.is_none());
        for (bad, says) in [
            ("state=dead", "stuck, booting or booted"),
            ("phase=bios", "dhcp, nbp"),
            ("limit=many", "number of rows"),
            ("sort=mac", "unknown parameter `sort`"),
            ("q=%zz", "percent-encoded"),
        ] {
            let e = query(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn only_the_page_is_served_without_the_api() {
        assert!(static_file("/").is_some());
        assert!(static_file("/fleet?x=1").is_some());
        assert!(static_file("/api/v1/boots").is_none());
        // Nothing from elsewhere: the only URL is the SVG namespace.
        assert!(PAGE.contains("/api/v1/boots"));
        assert!(!PAGE.contains("https://") && !PAGE.contains(" src="));
        assert_eq!(PAGE.matches("http://").count(), 1);
        assert!(PAGE.contains("\"http://www.w3.org/2000/svg\""));
    }
}
