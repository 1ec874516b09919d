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
    /// An HTTP/1.1 request without a `Host` field, or one with two (RFC 9112 §3.2).
    #[error("missing or repeated Host")]
    BadHost,
    /// The request target cannot name a file under the served root.
    #[error("request target rejected: {0}")]
    BadTarget(&'static str),
    /// A datagram shorter than its fixed fields.
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the fixed fields need.
        need: usize,
        /// Bytes received.
        have: usize,
    },
    /// A NUL-terminated field (TFTP filename, mode, option) has no NUL.
    #[error("{0} is not NUL-terminated")]
    Unterminated(&'static str),
    /// A TFTP option name came without its value.
    #[error("option without a value")]
    OptionWithoutValue,
    /// An emitter's buffer is too small for the message.
    #[error("no room in the output buffer")]
    NoRoom,
    /// A DHCP message carried more option fragments than allowed.
    #[error("more than {limit} options")]
    TooManyOptions {
        /// The limit.
        limit: usize,
    },
}

impl Error {
    /// A short label for logs and drop counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Malformed(_) => "malformed",
            Error::HeadTooLarge { .. } => "head_too_large",
            Error::TooManyHeaders { .. } => "too_many_headers",
            Error::TargetTooLong { .. } => "target_too_long",
            Error::BadContentLength => "bad_content_length",
            Error::BadHost => "bad_host",
            Error::BadTarget(_) => "bad_target",
            Error::Truncated { .. } => "truncated",
            Error::Unterminated(_) => "unterminated",
            Error::OptionWithoutValue => "option_without_value",
            Error::NoRoom => "no_room",
            Error::TooManyOptions { .. } => "too_many_options",
        }
    }
}
