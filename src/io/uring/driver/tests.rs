use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use super::{Completion, Driver, OpId};
use crate::io::udp::MsgIn;
use crate::io::uring::op::{Op, Recv, RecvMsg, Shared};
use crate::io::uring::ring::Ring;

fn driver() -> Driver<u8> {
    let mut ring = Ring::new(0, 8).unwrap();
    ring.provide(4, 256).unwrap();
    Driver::new(ring)
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Turns until a completion tagged `tag` arrives (at most 5 s each).
fn next(d: &mut Driver<u8>, tag: u8) -> Completion<u8> {
    let mut out = Vec::new();
    for _ in 0..20 {
        d.turn(Some(Duration::from_millis(250)), &mut out).unwrap();
        if let Some(i) = out.iter().position(|c| c.tag == tag) {
            return out.swap_remove(i);
        }
    }
    panic!("no completion tagged {tag}");
}

#[test]
fn an_op_comes_back_with_its_last_completion_holding_what_the_kernel_wrote() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut d = driver();
    let socket: Shared = Rc::new(server.try_clone().unwrap());
    d.submit(7, Op::RecvMsg(RecvMsg::new(socket, MsgIn::new(64))))
        .unwrap();
    assert_eq!(d.live(), 1);
    client
        .send_to(b"hello", server.local_addr().unwrap())
        .unwrap();
    let c = next(&mut d, 7);
    assert_eq!(c.result, 5);
    let Some(Op::RecvMsg(r)) = c.op else {
        panic!("the op comes back with its one completion: {c:?}");
    };
    let msg = r.into_msg();
    let (got, bytes) = msg.received(5).unwrap();
    assert_eq!(bytes, b"hello");
    assert_eq!(got.peer, client.local_addr().unwrap());
    assert_eq!(d.live(), 0);
}

#[test]
fn a_multishot_op_stays_in_flight_until_cancelled() {
    let (mut client, server) = tcp_pair();
    let mut d = driver();
    let socket = Rc::new(server);
    let id = d
        .submit(1, Op::Recv(Recv::multishot(socket.clone())))
        .unwrap();
    for round in 0..3u8 {
        client.write_all(&[round; 10]).unwrap();
        let c = next(&mut d, 1);
        assert!(c.op.is_none(), "still armed after round {round}: {c:?}");
        assert_eq!(c.result, 10);
        d.buffers().give_back(c.buffer().unwrap());
    }
    assert_eq!(Rc::strong_count(&socket), 2, "the op holds the socket");
    d.cancel(id).unwrap();
    let c = next(&mut d, 1);
    assert_eq!(c.result, -libc::ECANCELED);
    assert!(matches!(c.op, Some(Op::Recv(_))));
    drop(c);
    assert_eq!(d.live(), 0);
    assert_eq!(Rc::strong_count(&socket), 1, "the op let the socket go");
}

#[test]
fn a_stale_completion_is_not_taken_for_the_slot_s_next_op() {
    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut d = driver();
    let socket: Shared = Rc::new(server);
    let first = d
        .submit(1, Op::RecvMsg(RecvMsg::new(socket.clone(), MsgIn::new(16))))
        .unwrap();
    d.cancel(first).unwrap();
    assert_eq!(next(&mut d, 1).result, -libc::ECANCELED);
    let second = d
        .submit(2, Op::RecvMsg(RecvMsg::new(socket, MsgIn::new(16))))
        .unwrap();
    assert_ne!(first, second, "the reused slot has a new generation");
    // A completion that still names the first op finds nothing.
    assert!(d.complete(OpId::user_data(first), 0, 0).is_none());
    assert_eq!(d.live(), 1);
}

#[test]
fn a_dropped_driver_cancels_and_drains_before_letting_go() {
    let (_client, server) = tcp_pair();
    let udp = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
    let tcp = Rc::new(server);
    let mut d = driver();
    d.submit(1, Op::Recv(Recv::multishot(tcp.clone()))).unwrap();
    for _ in 0..3 {
        d.submit(2, Op::RecvMsg(RecvMsg::new(udp.clone(), MsgIn::new(64))))
            .unwrap();
    }
    let mut out = Vec::new();
    d.turn(Some(Duration::ZERO), &mut out).unwrap();
    assert_eq!(d.live(), 4);
    assert_eq!(Rc::strong_count(&tcp), 2);
    assert_eq!(Rc::strong_count(&udp), 4);
    drop(d);
    // Every op had its last completion and was dropped: nothing leaked.
    assert_eq!(Rc::strong_count(&tcp), 1);
    assert_eq!(Rc::strong_count(&udp), 1);
}
