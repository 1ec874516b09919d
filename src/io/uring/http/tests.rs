use std::io::Read;
use std::net::TcpStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::send::{Leg, Out, Sent};
use crate::config::Body;
use crate::io::uring::driver::{Completion, Driver};
use crate::io::uring::op::Shared;
use crate::io::uring::ring::Ring;
use crate::proto::http::{FileRange, Transmit};
use crate::store::Snapshot;

/// A real ring and a loopback TCP pair: the sends `Out::start` builds for
/// `body`, completed by the kernel, booked by `Out::completed`; returns each
/// outcome with the file's strong count once the driver has let go of what
/// the completion handed back, and the bytes the peer read.
fn send_through_the_kernel(body: Body) -> (Vec<(Sent, usize)>, Vec<u8>, Vec<u8>) {
    let content: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let options = crate::store::Options {
        max_bytes: 1 << 30,
        mlock: false,
    };
    let snapshot =
        Snapshot::from_memory([("/f", &content[..], SystemTime::UNIX_EPOCH)], &options).unwrap();
    let file = Arc::clone(snapshot.get("/f").unwrap());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0; 256 << 10];
        client.read_exact(&mut got).unwrap();
        got
    });
    let mut driver: Driver<Leg> = Driver::new(Ring::new(0, 8).unwrap());
    let socket: Shared = Rc::new(server);
    let mut out = Out::default();
    let mut seen = Vec::new();
    let mut done: Vec<Completion<Leg>> = Vec::new();
    let mut sent = 0;
    while (sent < 256 << 10 || driver.live() > 0) && seen.len() < 64 {
        if sent < 256 << 10 && !out.busy() {
            let t = Transmit {
                bytes: &[],
                file: Some(FileRange {
                    file: &file,
                    offset: 4096 + sent as u64,
                    len: (256 << 10) - sent as u64,
                }),
            };
            let ops = out.start(&socket, &t, body).unwrap();
            if ops.len() == 1 {
                for (leg, op) in ops {
                    driver.submit(leg, op).unwrap();
                }
            } else {
                driver.submit_linked(ops).unwrap();
            }
        }
        driver
            .turn(Some(Duration::from_secs(5)), &mut done)
            .unwrap();
        for c in done.drain(..) {
            let outcome = out.completed(c.tag, c.result, c.is_notification());
            if c.tag != Leg::Send {
                continue;
            }
            if let Sent::Bytes(n) = outcome {
                sent += n;
            }
            drop(c.op);
            seen.push((outcome, Arc::strong_count(&file)));
        }
    }
    (
        seen,
        reader.join().unwrap(),
        content[4096..4096 + (256 << 10)].to_vec(),
    )
}

#[test]
fn a_zero_copy_send_holds_its_file_until_the_kernel_lets_go() {
    let (seen, got, want) = send_through_the_kernel(Body::SendZc);
    assert_eq!(got, want);
    // The snapshot and the test hold the file; so does the send until its
    // notification (its completion says one is coming), and nothing after.
    let (first, count) = &seen[0];
    assert!(matches!(first, Sent::Bytes(_)), "{seen:?}");
    assert_eq!(*count, 3, "held after the send completed: {seen:?}");
    assert_eq!(seen.last().unwrap(), &(Sent::Notified, 2), "{seen:?}");
}

#[test]
fn a_splice_body_moves_through_the_pipe_intact() {
    let (seen, got, want) = send_through_the_kernel(Body::Splice);
    assert_eq!(got, want);
    assert!(
        seen.iter().all(|(s, _)| matches!(s, Sent::Bytes(_))),
        "{seen:?}"
    );
}

#[test]
fn a_plain_send_of_a_file_lets_it_go_with_its_completion() {
    let (seen, got, want) = send_through_the_kernel(Body::Send);
    assert_eq!(got, want);
    assert!(seen.iter().all(|s| s.1 == 2), "{seen:?}");
}
