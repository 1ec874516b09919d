//! The `Range` request header (RFC 9110 §14.1-14.2), `bytes` unit only, resolved
//! against a representation's length.

use super::{digits, trim};

/// What a `Range` value asks of a representation of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    /// Serve the whole representation: the field is invalid, uses another unit, or
    /// asks for several ranges (answered 200 with the whole file; see README).
    Whole,
    /// One satisfiable range: `first..=last`, both inside the representation.
    Part {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive.
        last: u64,
    },
    /// No byte of the representation is selected: 416 with `bytes */len`.
    Unsatisfiable,
}

/// Resolves a `Range` field value against a representation of `len` bytes.
pub fn resolve(value: &[u8], len: u64) -> Spec {
    let Some(set) = strip_unit(trim(value)) else {
        return Spec::Whole;
    };
    let mut specs = set
        .split(|&b| b == b',')
        .map(trim)
        .filter(|s| !s.is_empty());
    let Some(one) = specs.next() else {
        return Spec::Whole;
    };
    if specs.next().is_some() {
        return Spec::Whole;
    }
    let Some(dash) = one.iter().position(|&b| b == b'-') else {
        return Spec::Whole;
    };
    let (first, last) = (&one[..dash], &one[dash + 1..]);
    if first.is_empty() {
        // Suffix form "-n": the last n bytes.
        let Some(n) = digits(last) else {
            return Spec::Whole;
        };
        if n == 0 || len == 0 {
            return Spec::Unsatisfiable;
        }
        return Spec::Part {
            first: len - n.min(len),
            last: len - 1,
        };
    }
    let Some(first) = digits(first) else {
        return Spec::Whole;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match digits(last) {
            Some(l) if l >= first => l,
            _ => return Spec::Whole, // RFC 9110 §14.1.1: last < first is invalid, so ignored
        }
    };
    if first >= len {
        return Spec::Unsatisfiable;
    }
    Spec::Part {
        first,
        last: last.min(len - 1),
    }
}

fn strip_unit(v: &[u8]) -> Option<&[u8]> {
    let (unit, rest) = v.split_at_checked(6)?;
    unit.eq_ignore_ascii_case(b"bytes=").then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(first: u64, last: u64) -> Spec {
        Spec::Part { first, last }
    }

    #[test]
    fn the_three_single_range_forms_resolve() {
        assert_eq!(resolve(b"bytes=0-99", 1000), part(0, 99));
        assert_eq!(resolve(b"bytes=500-", 1000), part(500, 999));
        assert_eq!(resolve(b"bytes=-100", 1000), part(900, 999));
        assert_eq!(resolve(b"Bytes= 10-19 ", 1000), part(10, 19));
    }

    #[test]
    fn ranges_are_clamped_to_the_end() {
        assert_eq!(resolve(b"bytes=990-5000", 1000), part(990, 999));
        assert_eq!(resolve(b"bytes=-5000", 1000), part(0, 999));
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(resolve(b"bytes=1000-", 1000), Spec::Unsatisfiable);
        assert_eq!(resolve(b"bytes=2000-3000", 1000), Spec::Unsatisfiable);
        assert_eq!(resolve(b"bytes=-0", 1000), Spec::Unsatisfiable);
        assert_eq!(resolve(b"bytes=-5", 0), Spec::Unsatisfiable);
        assert_eq!(resolve(b"bytes=0-", 0), Spec::Unsatisfiable);
    }

    #[test]
    fn invalid_or_multiple_ranges_serve_the_whole_file() {
        for v in [
            &b"bytes=9-1"[..],
            b"items=0-1",
            b"bytes=",
            b"bytes=a-b",
            b"bytes=0-1,5-6",
            b"bytes=--1",
            b"bytes=0-99999999999999999999",
            b"",
        ] {
            assert_eq!(
                resolve(v, 1000),
                Spec::Whole,
                "{}",
                String::from_utf8_lossy(v)
            );
        }
    }
}
