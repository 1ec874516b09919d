//! The access log: one line per HTTP response and per TFTP transfer, written
//! the same way by both backends from the records the engines build
//! ([`http::Access`], [`tftp::endpoint::Ended`]).

use std::net::SocketAddr;

use crate::proto::http::Access;
use crate::proto::tftp::{self, endpoint::Ended};

/// One HTTP response's line.
pub(crate) fn http(worker: usize, peer: SocketAddr, a: &Access) {
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
pub(crate) fn tftp_refused(peer: SocketAddr, e: &tftp::Error) {
    tracing::info!(target: "rackboot::access", proto = %"tftp", %peer, result = %"refused", reason = %e.kind(), error = %e, "transfer");
}

/// A finished TFTP transfer's line.
pub(crate) fn tftp_ended(e: &Ended) {
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
