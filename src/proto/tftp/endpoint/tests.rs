//! Endpoint tests on a fake clock: request datagrams in, refusals, windows
//! and transfer records out.

use super::*;
use crate::testutil;
use std::time::SystemTime;

const SEC: Duration = Duration::from_secs(1);

fn endpoint(limits: Limits) -> Endpoint {
    let files = [("/ipxe.efi", &[7u8; 1000][..], SystemTime::UNIX_EPOCH)];
    let options = crate::store::Options {
        max_bytes: 1 << 20,
        mlock: false,
    };
    let snapshot = Arc::new(Snapshot::from_memory(files, &options).unwrap());
    let published = Published::new(snapshot);
    Endpoint::new(Settings::default(), limits, published, Some("/srv/tftp"))
}

fn limits(single_port: bool) -> Limits {
    Limits {
        max_transfers: 2,
        max_per_client: 1,
        single_port,
    }
}

fn rrq(name: &str) -> Vec<u8> {
    // RFC 1350 §5: opcode 1, file name, NUL, mode, NUL.
    [&[0, 1][..], name.as_bytes(), b"\0octet\0"].concat()
}

fn peer(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, last], port))
}

fn datagram(bytes: &[u8], from: SocketAddr) -> Datagram<'_> {
    Datagram {
        local: IpAddr::from([10, 0, 0, 1]),
        peer: from,
        bytes,
        truncated: false,
        unix_secs: 0,
    }
}

fn start(e: &mut Endpoint, now: Instant, from: SocketAddr) -> Id {
    let request = rrq("ipxe.efi");
    let Ok(Handled::Admit(a)) = e.handle(now, datagram(&request, from)) else {
        panic!("not admitted");
    };
    e.open(now, a, Ok(Some(1500))).unwrap()
}

/// Every datagram queued now: (port, peer, what, control bytes).
fn drain(e: &mut Endpoint, now: Instant) -> Vec<(Port, SocketAddr, Transmit, Vec<u8>)> {
    let mut scratch = [0xa5u8; 600];
    let mut out = Vec::new();
    while let Some(o) = e.poll_transmit(now, &mut scratch) {
        let bytes = match o.what {
            Transmit::Control { len } => scratch[..len].to_vec(),
            Transmit::Window { .. } => Vec::new(),
        };
        out.push((o.port, o.peer, o.what, bytes));
    }
    out
}

#[test]
fn a_request_becomes_a_transfer_that_ends_with_its_record() {
    let t0 = testutil::t0();
    let mut e = endpoint(limits(false));
    let client = peer(2, 1000);
    let id = start(&mut e, t0, client);
    let window = Transmit::Window {
        first: 1,
        count: 1,
        blksize: 512,
    };
    assert_eq!(
        drain(&mut e, t0),
        [(Port::Transfer(id), client, window, vec![])]
    );
    assert_eq!(e.poll_timeout(), Some(t0 + SEC));
    e.handle_transfer(t0, id, client, &[0, 4, 0, 1]).unwrap();
    assert_eq!(drain(&mut e, t0).len(), 1);
    e.handle_transfer(t0 + SEC / 2, id, client, &[0, 4, 0, 2])
        .unwrap();
    assert!(drain(&mut e, t0 + SEC / 2).is_empty());
    let ended = e.poll_event().unwrap();
    assert_eq!(
        (ended.id, &*ended.path, ended.result, ended.bytes),
        (id, "/ipxe.efi", "done", 1000)
    );
    assert_eq!(ended.duration, SEC / 2);
    assert_eq!(e.live(), 0);
    // The id is reused only once released.
    let other = start(&mut e, t0 + SEC, peer(3, 1000));
    assert_ne!(other, id);
    e.release(id);
    assert_eq!(start(&mut e, t0 + SEC, peer(4, 1000)), id);
}

#[test]
fn limits_refuse_with_error_0_and_a_stranger_gets_error_5() {
    let t0 = testutil::t0();
    let mut e = endpoint(limits(false));
    let a = start(&mut e, t0, peer(2, 1000));
    let request = rrq("ipxe.efi");
    // A second transfer from the same address passes max_per_client.
    let refused = e.handle(t0, datagram(&request, peer(2, 1001)));
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    start(&mut e, t0, peer(3, 1000));
    let refused = e.handle(t0, datagram(&request, peer(4, 1000)));
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    let sent = drain(&mut e, t0);
    let errors: Vec<_> = sent
        .iter()
        .filter(|s| s.0 == Port::Request)
        .map(|s| (s.1, s.3[..4].to_vec()))
        .collect();
    assert_eq!(
        errors,
        [
            (peer(2, 1001), vec![0, 5, 0, 0]),
            (peer(4, 1000), vec![0, 5, 0, 0])
        ]
    );
    // A datagram from another port to transfer `a`'s socket.
    let e5 = e.handle_transfer(t0, a, peer(2, 999), &[0, 4, 0, 1]);
    assert_eq!(e5, Err(Error::UnknownTid));
    let sent = drain(&mut e, t0);
    assert_eq!(sent[0].0, Port::Transfer(a));
    assert_eq!(sent[0].1, peer(2, 999));
    assert_eq!(sent[0].3[..4], [0, 5, 0, 5]);
}

#[test]
fn a_repeated_request_is_ignored_unless_single_port_routes_it() {
    let t0 = testutil::t0();
    let client = peer(2, 1000);
    let request = rrq("ipxe.efi");
    let mut e = endpoint(limits(false));
    start(&mut e, t0, client);
    assert!(matches!(
        e.handle(t0, datagram(&request, client)),
        Ok(Handled::Ignored(_))
    ));
    let mut e = endpoint(limits(true));
    let id = start(&mut e, t0, client);
    drain(&mut e, t0);
    for block in [1, 2] {
        let ack = [0, 4, 0, block];
        assert!(matches!(
            e.handle(t0, datagram(&ack, client)),
            Ok(Handled::Delivered(x, Ok(()))) if x == id
        ));
        drain(&mut e, t0);
    }
    assert_eq!(e.poll_event().map(|x| x.result), Some("done"));
}

#[test]
fn bad_requests_are_refused_before_any_socket_and_strays_ignored() {
    let t0 = testutil::t0();
    let mut e = endpoint(limits(false));
    let from = peer(2, 1000);
    let r = e.handle(t0, datagram(&rrq("../etc/passwd"), from));
    assert!(matches!(r, Err(Error::AccessViolation(_))), "{r:?}");
    let r = e.handle(t0, datagram(&rrq("missing"), from));
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    let long = Datagram {
        truncated: true,
        ..datagram(&[0, 1], from)
    };
    assert!(matches!(e.handle(t0, long), Err(Error::Wire(_))));
    assert!(matches!(
        e.handle(t0, datagram(&[0, 4, 0, 1], from)),
        Ok(Handled::Ignored(_))
    ));
    let codes: Vec<_> = drain(&mut e, t0).iter().map(|s| s.3[3]).collect();
    assert_eq!(codes, [2, 1, 4]);
    // An absolute name inside the root is the same file.
    let r = e.handle(t0, datagram(&rrq("/srv/tftp/ipxe.efi"), from));
    assert!(matches!(r, Ok(Handled::Admit(_))));
    // No socket: the client is told to retry.
    let Ok(Handled::Admit(a)) = e.handle(t0, datagram(&rrq("ipxe.efi"), from)) else {
        panic!()
    };
    assert!(matches!(e.open(t0, a, Err(())), Err(Error::Busy(_))));
    assert_eq!(drain(&mut e, t0)[0].3[..4], [0, 5, 0, 0]);
}

#[test]
fn a_silent_client_times_out_on_the_endpoint_timer() {
    let t0 = testutil::t0();
    let mut e = endpoint(limits(false));
    let id = start(&mut e, t0, peer(2, 1000));
    drain(&mut e, t0);
    while let Some(now) = e.poll_timeout() {
        e.handle_timeout(now);
        drain(&mut e, now);
        if let Some(ended) = e.poll_event() {
            assert_eq!((ended.id, ended.result), (id, "timeout"));
            assert!(now > t0 + 20 * SEC);
            return;
        }
    }
    panic!("no timeout");
}

#[test]
fn a_full_worker_ends_the_transfer_silent_longest_for_a_new_request() {
    let t0 = testutil::t0();
    let mut e = endpoint(limits(false));
    let silent = start(&mut e, t0, peer(2, 1000));
    let talking = start(&mut e, t0, peer(3, 1000));
    let _ = drain(&mut e, t0);
    let request = rrq("ipxe.efi");
    // Full, and nobody silent for EVICT_SILENT yet: refused.
    let refused = e.handle(t0, datagram(&request, peer(4, 1000)));
    assert!(matches!(refused, Err(Error::Busy(_))), "{refused:?}");
    let _ = drain(&mut e, t0);
    // The second client acknowledges; the first never does.
    let later = t0 + EVICT_SILENT * 2;
    e.handle_transfer(later, talking, peer(3, 1000), &[0, 4, 0, 1])
        .unwrap();
    let _ = drain(&mut e, later);
    // The silent one goes and the new request is admitted.
    let Ok(Handled::Admit(a)) = e.handle(later, datagram(&request, peer(4, 1000))) else {
        panic!("not admitted");
    };
    let ended = e.poll_event().unwrap();
    assert_eq!((ended.id, ended.result), (silent, "evicted"));
    assert!(e.poll_event().is_none(), "the acknowledging transfer stays");
    let fresh = e.open(later, a, Ok(Some(1500))).unwrap();
    let sent = drain(&mut e, later);
    assert_eq!(
        (sent[0].0, sent[0].1, &sent[0].3[..4]),
        (Port::Transfer(silent), peer(2, 1000), &[0, 5, 0, 0][..]),
        "the silent client is told"
    );
    assert_eq!(e.live(), 2);
    e.release(silent);
    assert_ne!(fresh, silent);
}
