//! The simulator's TFTP download against the real transfer engine on a virtual
//! clock: EDK2's probe-then-download, a server that grants no window, a lost
//! block, and a server that never answers.

use std::time::Instant;

use super::*;
use crate::proto::tftp::{accept, Event as ServerEvent, Settings, Transfer, Transmit, Where};
use crate::store::{Options, Snapshot};
use crate::testutil;
use crate::wire::tftp::data_header;

const IPXE_EFI: usize = 850_528;

fn snapshot() -> Snapshot {
    let bytes: Vec<u8> = (0..IPXE_EFI).map(|i| (i % 251) as u8).collect();
    let mtime = std::time::UNIX_EPOCH;
    Snapshot::from_memory(
        [("/ipxe.efi", &bytes[..], mtime)],
        &Options {
            max_bytes: u64::MAX,
            mlock: false,
        },
    )
    .unwrap()
}

/// Plays `d` against a server with `settings`, dropping the DATA datagrams
/// whose ordinal (counting from 0) is in `lose`; the client's event, the
/// server transfers' events and the virtual time taken.
fn play(
    t0: Instant,
    mut d: Download,
    settings: Settings,
    lose: &[usize],
    answer: bool,
) -> (Event, Vec<ServerEvent>, Duration) {
    let snapshot = snapshot();
    let mut now = t0;
    let mut transfers: Vec<(u16, Transfer)> = Vec::new();
    let mut ended = Vec::new();
    let (mut out, mut scratch) = ([0u8; 1500], [0u8; 1500]);
    let mut sent_data = 0;
    for _ in 0..100_000 {
        // Exchange datagrams until both sides are quiet at `now`.
        loop {
            let mut moved = false;
            while let Some((len, to)) = d.poll_transmit(now, &mut out) {
                moved = true;
                match to {
                    To::Server if answer => {
                        let accepted =
                            accept(&out[..len], &snapshot, &settings, Where::default()).unwrap();
                        let tid = 1000 + transfers.len() as u16;
                        transfers.push((tid, Transfer::new(now, accepted, &settings)));
                    }
                    To::Server => {}
                    To::Tid(tid) => {
                        if let Some((_, t)) = transfers.iter_mut().find(|(id, _)| *id == tid) {
                            let _ = t.handle(now, &out[..len]);
                        }
                    }
                }
            }
            for (tid, t) in &mut transfers {
                t.handle_timeout(now);
                while let Some(tx) = t.poll_transmit(now, &mut scratch) {
                    moved = true;
                    match tx {
                        Transmit::Control { len } => d.handle(now, *tid, &scratch[..len]).unwrap(),
                        Transmit::Window { first, count, .. } => {
                            for k in first..first + u64::from(count) {
                                let mut data = data_header(k as u16).to_vec();
                                data.extend_from_slice(&t.payload()[t.block(k)]);
                                if !lose.contains(&sent_data) {
                                    d.handle(now, *tid, &data).unwrap();
                                }
                                sent_data += 1;
                            }
                        }
                    }
                }
                if let Some(e) = t.poll_event() {
                    ended.push(e);
                }
            }
            if !moved {
                break;
            }
        }
        if let Some(e) = d.poll_event() {
            return (e, ended, now - t0);
        }
        let next = transfers
            .iter()
            .filter_map(|(_, t)| t.poll_timeout())
            .chain(d.poll_timeout())
            .min()
            .expect("something is waiting");
        now = now.max(next);
        d.handle_timeout(now);
    }
    panic!("the download never ended");
}

#[test]
fn edk2_probes_the_size_then_downloads_in_windows() {
    let t0 = testutil::t0();
    let (e, server, took) = play(
        t0,
        Download::new(t0, Request::edk2("ipxe.efi")),
        Settings::default(),
        &[],
        true,
    );
    assert_eq!(
        e,
        Event::Done {
            bytes: IPXE_EFI as u64,
            tsize: Some(IPXE_EFI as u64),
            resends: 0
        }
    );
    assert_eq!(server[0], ServerEvent::Done { probe: true }, "{server:?}");
    assert_eq!(took, Duration::ZERO, "no timer needed on a lossless link");
}

#[test]
fn a_server_that_grants_no_window_is_followed_in_lock_step() {
    let t0 = testutil::t0();
    let settings = Settings {
        max_windowsize: 1,
        ..Settings::default()
    };
    let (e, _, _) = play(
        t0,
        Download::new(t0, Request::edk2("ipxe.efi")),
        settings,
        &[],
        true,
    );
    assert!(
        matches!(e, Event::Done { bytes, .. } if bytes == IPXE_EFI as u64),
        "{e:?}"
    );
}

#[test]
fn a_lost_block_is_recovered_and_the_file_arrives_whole() {
    let t0 = testutil::t0();
    let (e, _, took) = play(
        t0,
        Download::new(t0, Request::edk2("ipxe.efi")),
        Settings::default(),
        &[5, 6, 300],
        true,
    );
    assert!(
        matches!(e, Event::Done { bytes, .. } if bytes == IPXE_EFI as u64),
        "{e:?}"
    );
    assert!(took > Duration::ZERO, "recovery waited for a timer");
}

#[test]
fn with_no_answer_the_request_is_resent_then_abandoned() {
    let t0 = testutil::t0();
    let (e, _, took) = play(
        t0,
        Download::new(t0, Request::edk2("ipxe.efi")),
        Settings::default(),
        &[],
        false,
    );
    assert_eq!(e, Event::Failed("no answer to the read request".into()));
    assert_eq!(
        took,
        Duration::from_secs(4 * 6),
        "5 resends, 4 s apart, then give up"
    );
}
