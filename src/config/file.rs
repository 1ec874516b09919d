//! The TOML file as written, mirrored by serde structs (first of the two steps:
//! parse, then `Config::validate`). Unknown keys are rejected so that a typo
//! never silently falls back to a default. Values that need checks beyond their
//! type keep their span, so that an error can name the line.

use serde::Deserialize;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Directory whose files are served.
    pub root: Option<Spanned<String>>,
    /// Worker threads; 0 = one per core.
    pub workers: Option<Spanned<i64>>,
    /// `[http]`
    #[serde(default)]
    pub http: Http,
    /// `[tftp]`; TFTP is off unless this table (or `--tftp`) says where.
    pub tftp: Option<Tftp>,
    /// `[store]`
    #[serde(default)]
    pub store: Store,
    /// `[log]`
    #[serde(default)]
    pub log: Log,
}

/// `[http]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    /// Address and port to listen on.
    pub listen: Option<Spanned<String>>,
    /// Largest request head, bytes.
    pub max_head_bytes: Option<Spanned<i64>>,
    /// Most header fields in a request.
    pub max_headers: Option<Spanned<i64>>,
    /// Longest request target, bytes.
    pub max_target_bytes: Option<Spanned<i64>>,
    /// Keep-alive idle timeout, seconds.
    pub idle_secs: Option<Spanned<i64>>,
    /// Time allowed to send a whole request head, seconds.
    pub head_secs: Option<Spanned<i64>>,
    /// Time a response may make no progress, seconds.
    pub send_secs: Option<Spanned<i64>>,
    /// Open connections per worker.
    pub max_connections: Option<Spanned<i64>>,
    /// Microseconds a worker keeps polling after activity before it sleeps.
    pub busy_poll_us: Option<Spanned<i64>>,
}

/// `[tftp]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tftp {
    /// Address and port to answer on (`ADDR` alone means port 69).
    pub listen: Option<Spanned<String>>,
    /// Answer every transfer from the listening port (clients behind NAT).
    pub single_port: Option<bool>,
    /// First retransmission timeout, seconds.
    pub timeout_secs: Option<Spanned<i64>>,
    /// Retransmissions of one window before a transfer is abandoned.
    pub retries: Option<Spanned<i64>>,
    /// Largest window granted.
    pub max_windowsize: Option<Spanned<i64>>,
    /// Live transfers per worker.
    pub max_transfers: Option<Spanned<i64>>,
    /// Live transfers per client address, per worker.
    pub max_per_client: Option<Spanned<i64>>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Cap on the bytes loaded from the root, MiB.
    pub max_mib: Option<Spanned<i64>>,
    /// Lock boot files in memory.
    pub mlock: Option<bool>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `text` or `json`.
    pub format: Option<LogFormat>,
    /// One line per HTTP request.
    pub access: Option<bool>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: Option<Level>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Log verbosity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Failures the operator must act on.
    Error,
    /// Degraded but serving.
    Warn,
    /// Lifecycle and access lines.
    #[default]
    Info,
    /// Per-request decisions.
    Debug,
    /// Everything.
    Trace,
}
