//! Why a request was not answered with a file, and what the client is told: the one
//! place that maps a failure to a status code and to whether the connection survives.

use crate::wire;

/// A request that gets an error response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The head could not be parsed or broke a limit.
    #[error(transparent)]
    Wire(#[from] wire::Error),
    /// A method other than GET and HEAD.
    #[error("method not allowed")]
    Method,
    /// No file at that path.
    #[error("no such file in the served root")]
    NotFound,
    /// A `Transfer-Encoding` on a request: its framing is not supported.
    #[error("request bodies with Transfer-Encoding are not accepted")]
    TransferEncoding,
    /// A body on GET or HEAD: no meaning (RFC 9110 §9.3.1), and this server reads none.
    #[error("request body of {0} bytes on a GET or HEAD")]
    Body(u64),
    /// A `Range` that selects no byte.
    #[error("range not satisfiable for {len} bytes")]
    RangeNotSatisfiable {
        /// The representation's length, sent back as `Content-Range: bytes */len`.
        len: u64,
    },
}

impl Error {
    /// The status code sent for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::Wire(wire::Error::HeadTooLarge { .. } | wire::Error::TooManyHeaders { .. }) => {
                431
            }
            Error::Wire(wire::Error::TargetTooLong { .. }) => 414,
            Error::Wire(_) | Error::TransferEncoding => 400,
            Error::Method => 405,
            Error::NotFound => 404,
            Error::Body(_) => 400,
            Error::RangeNotSatisfiable { .. } => 416,
        }
    }

    /// Whether the connection must close after the response: where the request's
    /// framing is unknown, keeping the connection would read garbage as a request.
    pub fn closes(&self) -> bool {
        match self {
            Error::Wire(wire::Error::BadTarget(_)) => false,
            Error::Wire(_) | Error::TransferEncoding | Error::Body(_) => true,
            Error::Method | Error::NotFound | Error::RangeNotSatisfiable { .. } => false,
        }
    }

    /// A short label for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Wire(e) => e.kind(),
            Error::Method => "method",
            Error::NotFound => "not_found",
            Error::TransferEncoding => "transfer_encoding",
            Error::Body(_) => "body",
            Error::RangeNotSatisfiable { .. } => "range_not_satisfiable",
        }
    }
}

/// The reason phrase for a status code this server sends.
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        _ => "",
    }
}
