//! Transfer engine tests on a fake clock: byte fixtures in, windows out.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::testutil;
use crate::wire::tftp;

const SEC: Duration = Duration::from_secs(1);

fn ack(block: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    tftp::write_ack(&mut b, block).unwrap();
    b
}

fn transfer(len: usize, negotiated: Negotiated) -> Transfer {
    let payload = Payload::Owned(Arc::from(vec![0x5au8; len]));
    Transfer::new(
        testutil::t0(),
        Accepted {
            path: "/f".into(),
            payload,
            negotiated,
        },
        &Settings::default(),
    )
}

fn plain() -> Negotiated {
    Negotiated {
        blksize: 512,
        windowsize: 1,
        timeout: None,
        oack: Vec::new(),
        tsize: false,
    }
}

fn windowed(windowsize: u16) -> Negotiated {
    Negotiated {
        windowsize,
        ..plain()
    }
}

/// EDK2's download request: blksize 1468, windowsize 4 (CLIENTS.md).
fn edk2(tsize: bool) -> Negotiated {
    let mut oack = vec![("blksize", 1468), ("windowsize", 4)];
    if tsize {
        oack.insert(0, ("tsize", 850_528));
    }
    Negotiated {
        blksize: 1468,
        windowsize: 4,
        timeout: None,
        oack,
        tsize,
    }
}

fn window(first: u64, count: u16, blksize: u16) -> Option<Transmit> {
    Some(Transmit::Window {
        first,
        count,
        blksize,
    })
}

#[test]
fn without_options_blocks_go_in_lock_step() {
    let t0 = testutil::t0();
    let mut x = transfer(1000, plain());
    let mut s = [0xa5u8; 1500];
    assert_eq!(x.poll_transmit(t0, &mut s), window(1, 1, 512));
    assert_eq!(x.poll_transmit(t0, &mut s), None);
    x.handle(t0, &ack(1)).unwrap();
    assert_eq!(x.poll_transmit(t0, &mut s), window(2, 1, 512));
    assert_eq!(x.block(2), 512..1000);
    x.handle(t0, &ack(2)).unwrap();
    assert_eq!(x.poll_event(), Some(Event::Done { probe: false }));
    assert_eq!(x.poll_timeout(), None);
}

#[test]
fn edk2_size_probe_ends_cleanly_after_the_oack() {
    let t0 = testutil::t0();
    let mut x = transfer(850_528, edk2(true));
    let mut s = [0xa5u8; 1500];
    let Some(Transmit::Control { len }) = x.poll_transmit(t0, &mut s) else {
        panic!()
    };
    assert_eq!(
        &s[..len],
        b"\x00\x06tsize\x00850528\x00blksize\x001468\x00windowsize\x004\x00"
    );
    x.handle(t0, b"\x00\x05\x00\x08User aborted the transfer\x00")
        .unwrap();
    assert_eq!(x.poll_event(), Some(Event::Done { probe: true }));
    assert!(x.is_finished());
}

#[test]
fn edk2_download_goes_in_windows_of_four() {
    let t0 = testutil::t0();
    let mut x = transfer(850_528, edk2(false));
    let mut s = [0u8; 1500];
    assert!(matches!(
        x.poll_transmit(t0, &mut s),
        Some(Transmit::Control { .. })
    ));
    x.handle(t0, &ack(0)).unwrap();
    let blocks = x.blocks();
    assert_eq!(blocks, 580); // 850,528 / 1468 = 579 full blocks + 1 short
    let mut expect = 1;
    while expect <= blocks {
        let count = (blocks - expect + 1).min(4) as u16;
        assert_eq!(x.poll_transmit(t0, &mut s), window(expect, count, 1468));
        expect += u64::from(count);
        x.handle(t0, &ack((expect - 1) as u16)).unwrap();
    }
    assert_eq!(x.poll_event(), Some(Event::Done { probe: false }));
    assert_eq!(x.stats().resent, 0);
}

#[test]
fn an_unacked_window_is_resent_with_back_off_then_abandoned() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, windowed(4));
    let mut s = [0u8; 64];
    assert_eq!(x.poll_transmit(t0, &mut s), window(1, 4, 512));
    assert_eq!(x.poll_timeout(), Some(t0 + SEC));
    let mut now = t0 + SEC;
    x.handle_timeout(now);
    assert_eq!(
        x.poll_transmit(now, &mut s),
        window(1, 4, 512),
        "whole window again"
    );
    assert_eq!(x.poll_timeout(), Some(now + 2 * SEC), "backed off");
    for _ in 0..Settings::default().retries {
        now = x.poll_timeout().unwrap();
        x.handle_timeout(now);
        let _ = x.poll_transmit(now, &mut s);
    }
    assert_eq!(x.poll_event(), Some(Event::Failed(Failure::Timeout)));
    assert!(x.poll_timeout().is_none());
}

#[test]
fn progress_resets_the_back_off() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, plain());
    let mut s = [0u8; 64];
    let _ = x.poll_transmit(t0, &mut s);
    x.handle_timeout(t0 + SEC);
    let _ = x.poll_transmit(t0 + SEC, &mut s);
    x.handle(t0 + SEC, &ack(1)).unwrap();
    let _ = x.poll_transmit(t0 + SEC, &mut s);
    assert_eq!(x.poll_timeout(), Some(t0 + 2 * SEC));
}

#[test]
fn an_ack_inside_the_window_restarts_it_after_that_block() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, windowed(4));
    let mut s = [0u8; 64];
    assert_eq!(x.poll_transmit(t0, &mut s), window(1, 4, 512));
    x.handle(t0, &ack(2)).unwrap(); // 3 and 4 were lost
    assert_eq!(x.poll_transmit(t0, &mut s), window(3, 4, 512));
}

#[test]
fn duplicate_acks_are_ignored_and_never_cause_a_resend() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, windowed(4));
    let mut s = [0u8; 64];
    let _ = x.poll_transmit(t0, &mut s);
    x.handle(t0, &ack(4)).unwrap();
    assert_eq!(x.poll_transmit(t0, &mut s), window(5, 4, 512));
    assert_eq!(x.handle(t0, &ack(4)), Err(Error::DuplicateAck(4)));
    assert_eq!(x.poll_transmit(t0, &mut s), None);
    assert_eq!(x.stats().duplicate_acks, 1);
}

#[test]
fn acks_for_blocks_never_sent_and_stray_packets_are_dropped() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, windowed(2));
    let mut s = [0u8; 64];
    let _ = x.poll_transmit(t0, &mut s);
    assert_eq!(x.handle(t0, &ack(9)), Err(Error::AckNotSent(9)));
    assert_eq!(
        x.handle(t0, b"\x00\x03\x00\x01data"),
        Err(Error::Unexpected(tftp::Opcode::Data))
    );
    assert!(x.handle(t0, b"\x00").is_err());
    assert!(x.handle(t0, b"\x00\x04\x00").is_err());
    x.handle(t0, &ack(2)).unwrap();
    assert_eq!(x.poll_transmit(t0, &mut s), window(3, 2, 512));
}

#[test]
fn block_numbers_roll_over_past_65535() {
    let t0 = testutil::t0();
    // 70,000 blocks of 8 bytes plus the final empty block.
    let mut x = transfer(
        70_000 * 8,
        Negotiated {
            blksize: 8,
            windowsize: 64,
            ..plain()
        },
    );
    let mut s = [0u8; 64];
    let mut acked = 0u64;
    while let Some(Transmit::Window { first, count, .. }) = x.poll_transmit(t0, &mut s) {
        assert_eq!(first, acked + 1);
        acked = first + u64::from(count) - 1;
        x.handle(t0, &ack(acked as u16)).unwrap(); // the wire number wraps
    }
    assert_eq!(acked, 70_001);
    assert_eq!(x.block(70_001), 560_000..560_000);
    assert_eq!(x.poll_event(), Some(Event::Done { probe: false }));
}

#[test]
fn a_client_error_mid_transfer_ends_it() {
    let t0 = testutil::t0();
    let mut x = transfer(10_000, plain());
    let mut s = [0u8; 64];
    let _ = x.poll_transmit(t0, &mut s);
    x.handle(t0, b"\x00\x05\x00\x03disk full\x00").unwrap();
    assert_eq!(
        x.poll_event(),
        Some(Event::Failed(Failure::ClientError { code: 3 }))
    );
}

#[test]
fn an_empty_file_is_one_empty_block() {
    let t0 = testutil::t0();
    let mut x = transfer(0, plain());
    let mut s = [0u8; 64];
    assert_eq!(x.poll_transmit(t0, &mut s), window(1, 1, 512));
    assert_eq!(x.block(1), 0..0);
    x.handle(t0, &ack(1)).unwrap();
    assert_eq!(x.poll_event(), Some(Event::Done { probe: false }));
}

#[test]
fn lowercase_looks_names_up_in_lower_case() {
    let snapshot = crate::store::Snapshot::from_memory(
        [("/pxelinux.0", &b"nbp"[..], std::time::UNIX_EPOCH)],
        &crate::store::Options {
            max_bytes: u64::MAX,
            mlock: false,
        },
    )
    .unwrap();
    let rrq = b"\x00\x01PXELinux.0\x00octet\x00";
    let plain = Settings::default();
    assert!(matches!(
        Request::parse(rrq, &snapshot, &Where::default(), &plain),
        Err(Error::NotFound(_))
    ));
    let lower = Settings {
        lowercase: true,
        ..Settings::default()
    };
    let r = Request::parse(rrq, &snapshot, &Where::default(), &lower).unwrap();
    assert_eq!(r.path(), "/pxelinux.0");
}

#[test]
fn grub_gets_the_stub_its_own_page_and_shims_second_stage_wherever_asked() {
    use crate::proto::boot::{Loader, Paths, Profile, Profiles};
    let profile = Profile {
        name: "sb".into(),
        loader: Loader::Grub,
        kernel: "/linux".into(),
        cmdline: "console=ttyS0".into(),
        matches: crate::proto::boot::Match {
            mac: vec!["52:54:00:*".into()],
            ..Default::default()
        },
        ..Profile::default()
    };
    let profiles =
        Profiles::new(Paths::default(), vec![profile], None, vec![], "h".into()).unwrap();
    let files = [
        ("/linux", &b"kernel"[..], std::time::UNIX_EPOCH),
        ("/grubx64.efi", &b"grub"[..], std::time::UNIX_EPOCH),
    ];
    let options = crate::store::Options {
        max_bytes: u64::MAX,
        mlock: false,
    };
    let snapshot = crate::store::Snapshot::from_memory(files, &options)
        .unwrap()
        .with_profiles(Some(Arc::new(profiles)));
    let get = |name: &str| {
        let rrq = [&b"\x00\x01"[..], name.as_bytes(), b"\x00octet\x00"].concat();
        Request::parse(&rrq, &snapshot, &Where::default(), &Settings::default()).map(|r| {
            String::from_utf8_lossy(r.grant(&Settings::default(), None).payload.bytes())
                .into_owned()
        })
    };
    let stub = get("/grub/x86_64-efi/grub.cfg").unwrap();
    assert!(
        stub.contains("configfile \"($root)/boot.grub?mac=${net_default_mac}"),
        "{stub}"
    );
    let page = get("/boot.grub?mac=52:54:00:12:34:56&arch=x86_64&platform=efi").unwrap();
    assert!(page.contains("    linux /linux console=ttyS0\n"), "{page}");
    assert_eq!(get("debian-installer/amd64/grubx64.efi").unwrap(), "grub");
    // A machine no profile takes still gets a page that says so; a grub
    // request without a MAC, and names that are none of these, are not found.
    let stranger = get("/boot.grub?mac=02:00:00:00:00:01").unwrap();
    assert!(
        stranger.starts_with("echo 'rackboot: no profile takes machine"),
        "{stranger}"
    );
    assert!(matches!(
        get("/boot.grub?arch=x86_64"),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(get("grub/grub.cfg.bak"), Err(Error::NotFound(_))));
    assert!(matches!(get("mmx64.efi"), Err(Error::NotFound(_))));
}
