//! The wire layer's one error type: why received bytes were not a valid message.
//! Small and `Copy`: the caller maps it to a reply or a counted drop.

/// A message that could not be read. Each variant names what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The HTTP request head does not follow RFC 9112's grammar.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// The request head did not end within the configured size.
    #[error("request head larger than {limit} bytes")]
    HeadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The request carried more header fields than allowed.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured limit.
        limit: usize,
    },
    /// The request target is longer than allowed.
    #[error("request target longer than {limit} bytes")]
    TargetTooLong {
        /// The configured limit.
        limit: usize,
    },
    /// Two `Content-Length` fields, or one with an invalid value (request smuggling).
    #[error("invalid or repeated Content-Length")]
    BadContentLength,
    /// The request target cannot name a file under the served root.
    #[error("request target rejected: {0}")]
    BadTarget(&'static str),
}
