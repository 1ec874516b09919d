//! The request target as a path under the served root (RFC 9112 §3.2). This is the
//! only place a URL becomes a file name, so it refuses, rather than repairs, every
//! form that could name something outside the root: `..` segments (raw or
//! percent-encoded), encoded `/` or `\`, NUL, backslashes, and any target that is not
//! origin-form or an `http(s)://` absolute-form. Decoding is by hand, not with a
//! crate, because it must know which bytes arrived percent-encoded.

use crate::wire::Error;

/// Decodes `target` into `out` as `/seg/seg` with no empty, `.` or `..` segment.
/// `out` is cleared first; the caller reuses it so that decoding never allocates once
/// it has grown.
///
/// # Errors
/// [`Error::BadTarget`] naming the rule the target broke.
pub fn decode_path(target: &str, out: &mut String) -> Result<(), Error> {
    out.clear();
    let path = origin_path(target)?;
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut raw: Vec<u8> = std::mem::take(out).into_bytes();
    for segment in path.split('/') {
        let start = raw.len();
        raw.push(b'/');
        decode_segment(segment.as_bytes(), &mut raw)?;
        let decoded = &raw[start + 1..];
        if decoded.is_empty() || decoded == b"." {
            raw.truncate(start);
        } else if decoded == b".." {
            return Err(Error::BadTarget("a `..` segment"));
        }
    }
    if raw.is_empty() {
        raw.push(b'/');
    }
    *out = String::from_utf8(raw).map_err(|_| Error::BadTarget("path is not UTF-8"))?;
    Ok(())
}

/// The path part of an origin-form or absolute-form target.
fn origin_path(target: &str) -> Result<&str, Error> {
    if target.starts_with('/') {
        return Ok(target);
    }
    let lower_starts = |p: &str| {
        target
            .get(..p.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(p))
    };
    let rest = if lower_starts("http://") {
        &target[7..]
    } else if lower_starts("https://") {
        &target[8..]
    } else {
        return Err(Error::BadTarget(
            "not an origin-form or http absolute-form target",
        ));
    };
    Ok(rest.find('/').map_or("/", |i| &rest[i..]))
}

fn decode_segment(seg: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
    let mut i = 0;
    while let Some(&b) = seg.get(i) {
        let byte = match b {
            b'%' => {
                let (Some(hi), Some(lo)) =
                    (seg.get(i + 1).and_then(hex), seg.get(i + 2).and_then(hex))
                else {
                    return Err(Error::BadTarget("invalid percent-escape"));
                };
                i += 3;
                match hi << 4 | lo {
                    b'/' | b'\\' => return Err(Error::BadTarget("an encoded path separator")),
                    0 => return Err(Error::BadTarget("an encoded NUL")),
                    decoded => decoded,
                }
            }
            b'\\' => return Err(Error::BadTarget("a backslash")),
            0 => return Err(Error::BadTarget("a NUL byte")),
            _ => {
                i += 1;
                b
            }
        };
        out.push(byte);
    }
    Ok(())
}

fn hex(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> String {
        let mut out = String::new();
        decode_path(t, &mut out).unwrap_or_else(|e| panic!("{t}: {e}"));
        out
    }

    fn rejected(t: &str) -> bool {
        decode_path(t, &mut String::new()).is_err()
    }

    #[test]
    fn plain_paths_are_normalised() {
        assert_eq!(ok("/boot.ipxe"), "/boot.ipxe");
        assert_eq!(ok("/a//b/./c"), "/a/b/c");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("/boot.ipxe?mac=52:54:00:77:00:10#x"), "/boot.ipxe");
        assert_eq!(ok("/debian%20installer/linux"), "/debian installer/linux");
        assert_eq!(ok("/%E2%82%AC"), "/\u{20ac}");
    }

    #[test]
    fn absolute_form_keeps_only_its_path() {
        assert_eq!(ok("http://10.77.0.1/boot.ipxe"), "/boot.ipxe");
        assert_eq!(ok("HTTP://host"), "/");
        assert!(rejected("http://host/../etc/passwd"));
    }

    #[test]
    fn every_escape_form_is_refused() {
        for t in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/..",
            "/%2e%2e/etc/passwd",
            "/%2E%2E/etc/passwd",
            "/.%2e/etc/passwd",
            "/a%2f..%2f..%2fetc/passwd",
            "/a%2F..",
            "/a%5c..%5c..",
            "/..\\..\\etc\\passwd",
            "/a\\b",
            "/a%00.txt",
            "/a\0",
            "/%zz",
            "/%2",
            "/%ff%fe",
            "etc/passwd",
            "*",
            "file:///etc/passwd",
            "host:80",
        ] {
            assert!(rejected(t), "{t:?} was accepted");
        }
    }

    #[test]
    fn output_buffer_is_reused() {
        let mut out = String::with_capacity(64);
        decode_path("/a", &mut out).unwrap();
        decode_path("/bb", &mut out).unwrap();
        assert_eq!(out, "/bb");
        assert!(out.capacity() >= 64);
    }
}
