//! The access log: one line per HTTP response and per TFTP transfer, written
//! the same way by both backends from the records the engines build
//! ([`http::Access`], [`tftp::endpoint::Ended`]).

use std::net::{IpAddr, SocketAddr};

use crate::fleet::{Event, Fetch, Proto, Sink, Start};
use crate::io::clock;
use crate::proto::http::Access;
use crate::proto::tftp::{self, endpoint::Ended};

/// The address as the fleet view keys it (an IPv4 client of a dual-stack
/// socket as IPv4).
fn ip(peer: SocketAddr) -> IpAddr {
    peer.ip().to_canonical()
}

/// An HTTP response ended: its line when the access log is on (`log`), and
/// the fleet view's event.
pub(crate) fn http_done(worker: usize, peer: SocketAddr, a: &Access, log: bool, sink: &Sink) {
    if log {
        http(worker, peer, a);
    }
    sink.send(|| {
        let end = clock::now();
        Event::Fetch(Fetch {
            start: end.checked_sub(a.duration).unwrap_or(end),
            end,
            peer: ip(peer),
            proto: Proto::Http,
            path: a.target.clone(),
            status: a.status,
            result: a.error.unwrap_or("-").into(),
            bytes: a.bytes,
            resent: 0,
            blocks: (0, 0),
            blksize: 0,
        })
    });
}

/// A long HTTP body started (see [`crate::fleet::LONG_BODY`]).
pub(crate) fn http_begun(peer: SocketAddr, target: &str, sink: &Sink) {
    sink.send(|| {
        Event::Start(Start {
            at: clock::now(),
            peer: ip(peer),
            proto: Proto::Http,
            path: target.into(),
        })
    });
}

/// A TFTP transfer started.
pub(crate) fn tftp_started(peer: SocketAddr, path: &str, sink: &Sink) {
    sink.send(|| {
        Event::Start(Start {
            at: clock::now(),
            peer: ip(peer),
            proto: Proto::Tftp,
            path: path.into(),
        })
    });
}

/// The file a read request names (for a refusal's event).
fn rrq_file(bytes: &[u8]) -> &str {
    bytes
        .get(2..)
        .filter(|_| bytes.starts_with(&[0, 1]))
        .and_then(|rest| rest.split(|&b| b == 0).next())
        .and_then(|f| std::str::from_utf8(f).ok())
        .unwrap_or("-")
}

/// A refused TFTP request: its line and the fleet view's event.
pub(crate) fn tftp_refused_from(peer: SocketAddr, e: &tftp::Error, request: &[u8], sink: &Sink) {
    tftp_refused(peer, e);
    sink.send(|| {
        let at = clock::now();
        Event::Fetch(Fetch {
            start: at,
            end: at,
            peer: ip(peer),
            proto: Proto::Tftp,
            path: rrq_file(request).into(),
            status: 0,
            result: format!("refused: {}", e.kind()).into(),
            bytes: 0,
            resent: 0,
            blocks: (0, 0),
            blksize: 0,
        })
    });
}

/// A TFTP transfer ended: its line and the fleet view's event.
pub(crate) fn tftp_done(e: &Ended, sink: &Sink) {
    tftp_ended(e);
    sink.send(|| {
        let end = clock::now();
        Event::Fetch(Fetch {
            start: end.checked_sub(e.duration).unwrap_or(end),
            end,
            peer: ip(e.peer),
            proto: Proto::Tftp,
            path: e.path.clone(),
            status: 0,
            result: e.result.into(),
            bytes: e.bytes,
            resent: e.resent,
            blocks: e.blocks,
            blksize: e.blksize,
        })
    });
}

/// One HTTP response's line.
fn http(worker: usize, peer: SocketAddr, a: &Access) {
    tracing::info!(
        target: "rackboot::access",
        worker,
        %peer,
        method = %a.method.as_str(),
        target = %a.target,
        status = a.status,
        bytes = a.bytes,
        ms = a.duration.as_secs_f64() * 1000.0,
        agent = %a.user_agent.as_deref().unwrap_or("-"),
        error = %a.error.unwrap_or("-"),
        "request"
    );
}

/// A refused TFTP request's line.
fn tftp_refused(peer: SocketAddr, e: &tftp::Error) {
    tracing::info!(target: "rackboot::access", proto = %"tftp", %peer, result = %"refused", reason = %e.kind(), error = %e, "transfer");
}

/// A finished TFTP transfer's line.
fn tftp_ended(e: &Ended) {
    tracing::info!(
        target: "rackboot::access",
        proto = %"tftp",
        peer = %e.peer,
        file = %e.path,
        result = %e.result,
        bytes = e.bytes,
        blksize = e.blksize,
        windowsize = e.windowsize,
        resent = e.resent,
        ms = e.duration.as_secs_f64() * 1000.0,
        "transfer"
    );
}
