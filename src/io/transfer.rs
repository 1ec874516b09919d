//! Starting a TFTP transfer, the same for both backends: the worker's
//! endpoint decides what a datagram on the request port is; a request it
//! admits gets its own socket (its TID) here, bound to the address the request
//! reached, whose route tells the path MTU the blocks must fit.

use std::net::UdpSocket;
use std::sync::Arc;
use std::time::Instant;

use super::{access, udp};
use crate::config;
use crate::proto::tftp::endpoint::{Datagram, Handled, Id, Limits};
use crate::proto::tftp::Endpoint;
use crate::store::Published;

/// A worker's endpoint for `config`, serving what `published` holds; `root`
/// is the canonical root directory (an absolute name inside it is served).
pub(crate) fn endpoint(
    config: &config::Tftp,
    published: Arc<Published>,
    root: Option<&str>,
) -> Endpoint {
    let limits = Limits {
        max_transfers: config.max_transfers,
        max_per_client: config.max_per_client,
        single_port: config.single_port,
    };
    // Each interface with a root of its own, by its address.
    let roots = config
        .interface_roots
        .iter()
        .filter_map(|(name, prefix)| match crate::io::dhcp::interface(name) {
            Ok(i) => Some((std::net::IpAddr::V4(i.addr), prefix.as_str().into())),
            Err(e) => {
                tracing::error!(interface = %name, error = %e, "tftp: an interface root is not served");
                None
            }
        })
        .collect();
    Endpoint::new(config.settings, limits, published, root).with_local_roots(roots)
}

/// Hands `d` to `endpoint`; a request it admits becomes a transfer: its id
/// and its own socket (`None` in single-port mode), for the backend to arm.
/// Refusals and drops are logged here; their ERROR replies wait in the
/// endpoint's `poll_transmit`.
pub(crate) fn on_request(
    endpoint: &mut Endpoint,
    now: Instant,
    d: Datagram<'_>,
    metrics: &crate::metrics::Tftp,
    sink: &crate::fleet::Sink,
) -> Option<(Id, Option<UdpSocket>)> {
    let peer = d.peer;
    let bytes = d.bytes;
    let admit = match endpoint.handle(now, d) {
        Ok(Handled::Admit(a)) => a,
        Ok(Handled::Delivered(_, Err(e))) => {
            tracing::debug!(%peer, reason = e.kind(), error = %e, "tftp datagram dropped");
            return None;
        }
        Ok(Handled::Delivered(_, Ok(()))) => return None,
        Ok(Handled::Ignored(why)) => {
            tracing::debug!(%peer, why, "tftp datagram ignored");
            return None;
        }
        Err(e) => {
            access::tftp_refused_from(peer, &e, bytes, sink);
            metrics.refused();
            return None;
        }
    };
    let (socket, mtu) = match udp::transfer_socket(admit.local, peer, endpoint.single_port()) {
        Ok((socket, mtu)) => (socket, Ok(mtu)),
        Err(e) => {
            tracing::warn!(local = %admit.local, error = %e, "cannot open a transfer socket");
            (None, Err(()))
        }
    };
    match endpoint.open(now, admit, mtu) {
        Ok(id) => {
            metrics.started();
            if sink.on() {
                access::tftp_started(peer, endpoint.path_of(id).unwrap_or("-"), sink);
            }
            Some((id, socket))
        }
        Err(e) => {
            access::tftp_refused_from(peer, &e, bytes, sink);
            metrics.refused();
            None
        }
    }
}
