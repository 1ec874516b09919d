use super::*;

#[test]
fn a_written_request_reads_back_with_its_fields_and_options() {
    let mut buf = [0xa5u8; 600];
    let mac = [0x52, 0x54, 0, 0x77, 0, 0x10];
    let mut w = Writer::request(&mut buf, 0xdead_beef, mac, true).unwrap();
    w.message_type(MessageType::Discover).unwrap();
    w.option(code::CLIENT_ARCH, &[0, 7]).unwrap();
    let len = w.finish().unwrap();
    assert_eq!(len, MIN_LEN);
    let p = Packet::new_checked(&buf[..len]).unwrap();
    assert_eq!((p.op(), p.xid(), p.mac()), (1, 0xdead_beef, Some(mac)));
    assert_eq!(p.flags(), BROADCAST_FLAG);
    assert!(p.ciaddr().is_unspecified() && p.giaddr().is_unspecified());
    let o = p.options().unwrap();
    assert_eq!(o.message_type(), Some(MessageType::Discover));
    assert_eq!(o.client_arch(), Some(7));
    assert!(Writer::request(&mut [0u8; 100], 1, mac, false).is_err());
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/dhcp/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap()
}

/// A request with the given raw options (already TLV-encoded).
pub(crate) fn request(options: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    b[28..34].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
    b[236..240].copy_from_slice(&MAGIC);
    b.extend_from_slice(options);
    b.push(255);
    b
}

#[test]
fn edk2_discover_is_read() {
    let b = fixture("edk2-discover");
    let p = Packet::new_checked(&b).unwrap();
    assert_eq!(p.mac(), Some([0x52, 0x54, 0, 0x77, 0, 0x10]));
    let o = p.options().unwrap();
    assert_eq!(o.message_type(), Some(MessageType::Discover));
    assert_eq!(o.client_arch(), Some(7));
    assert_eq!(
        &*o.get(code::VENDOR_CLASS).unwrap(),
        b"PXEClient:Arch:00007:UNDI:003000"
    );
    assert!(!o.is_ipxe());
    assert_eq!(o.get(code::UUID).map(|u| u.len()), Some(17));
}

#[test]
fn ipxe_requests_are_told_apart() {
    for name in [
        "ipxe-bios-discover",
        "ipxe-efi-discover",
        "ipxe-efi-request",
    ] {
        let b = fixture(name);
        let o = Packet::new_checked(&b).unwrap().options().unwrap();
        assert!(o.is_ipxe(), "{name}");
        assert!(o.has_user_class(b"iPXE"), "{name}");
        assert!(o.has(code::IPXE), "{name}");
    }
    let b = fixture("ipxe-efi-request");
    let o = Packet::new_checked(&b).unwrap().options().unwrap();
    assert_eq!(o.message_type(), Some(MessageType::Request));
    assert_eq!(o.ip(code::SERVER_ID), Some(Ipv4Addr::new(10, 77, 0, 1)));
    assert_eq!(
        o.ip(code::REQUESTED_IP),
        Some(Ipv4Addr::new(10, 77, 0, 145))
    );
}

#[test]
fn the_installer_has_no_pxe_identity() {
    let b = fixture("d-i-discover");
    let o = Packet::new_checked(&b).unwrap().options().unwrap();
    assert_eq!(o.client_arch(), None);
    assert_eq!(&*o.get(code::VENDOR_CLASS).unwrap(), b"d-i");
    assert!(!o.is_ipxe());
}

#[test]
fn rfc3004_user_class_items_are_matched() {
    let b = request(&[
        77, 11, 4, b'i', b'P', b'X', b'E', 5, b'o', b't', b'h', b'e', b'r',
    ]);
    let o = Packet::new_checked(&b).unwrap().options().unwrap();
    assert!(o.has_user_class(b"iPXE") && o.has_user_class(b"other"));
    assert!(!o.has_user_class(b"iPX"));
}

#[test]
fn split_options_are_joined_and_overload_is_followed() {
    // Option 12 split in two fragments, option 52 = 1 (file holds options).
    let mut b = request(&[12, 3, b'a', b'b', b'c', 52, 1, 1, 12, 2, b'd', b'e']);
    b[108..113].copy_from_slice(&[53, 1, 1, 255, 0]);
    let o = Packet::new_checked(&b).unwrap().options().unwrap();
    assert_eq!(&*o.get(12).unwrap(), b"abcde");
    assert_eq!(o.message_type(), Some(MessageType::Discover));
}

#[test]
fn an_overload_inside_file_does_not_loop() {
    let mut b = request(&[52, 1, 3, 53, 1, 1]);
    b[108..111].copy_from_slice(&[52, 1, 3]);
    b[44..47].copy_from_slice(&[52, 1, 1]);
    let o = Packet::new_checked(&b).unwrap().options().unwrap();
    assert_eq!(o.fragments(52).count(), 1);
}

#[test]
fn bad_messages_are_refused() {
    let good = request(&[53, 1, 1]);
    assert!(matches!(
        Packet::new_checked(&good[..100]),
        Err(Error::Truncated { .. })
    ));
    let mut bad = good.clone();
    bad[236] = 0;
    assert!(Packet::new_checked(&bad).is_err());
    let mut bad = good.clone();
    bad[2] = 100;
    assert!(Packet::new_checked(&bad).is_err());
    let past = request(&[53, 1, 1, 12, 200, b'x']);
    assert!(Packet::new_checked(&past).unwrap().options().is_err());
    let many: Vec<u8> = (0..300).flat_map(|_| [12u8, 0]).collect();
    let many = request(&many);
    assert!(matches!(
        Packet::new_checked(&many).unwrap().options(),
        Err(Error::TooManyOptions { .. })
    ));
}

#[test]
fn the_writer_splits_long_options_and_pads() {
    let req = request(&[53, 1, 1]);
    let p = Packet::new_checked(&req).unwrap();
    let mut buf = [0u8; 1500];
    let mut w = Writer::reply(&mut buf, &p).unwrap();
    w.yiaddr(Ipv4Addr::new(10, 0, 0, 5));
    w.message_type(MessageType::Offer).unwrap();
    w.option(code::BOOTFILE, &[b'x'; 300]).unwrap();
    assert!(w.file(b"ipxe.efi"));
    let len = w.finish().unwrap();
    let r = Packet::new_checked(&buf[..len]).unwrap();
    assert_eq!((r.op(), r.xid(), r.chaddr()), (2, 0x1234_5678, p.chaddr()));
    assert_eq!(r.yiaddr(), Ipv4Addr::new(10, 0, 0, 5));
    assert_eq!(r.file(), b"ipxe.efi");
    let o = r.options().unwrap();
    assert_eq!(o.get(code::BOOTFILE).unwrap().len(), 300);
    assert_eq!(o.fragments(code::BOOTFILE).count(), 2);
    assert!(len >= MIN_LEN);
}

#[test]
fn sub_options_stop_at_a_bad_length() {
    let v = [1, 2, b'a', b'b', 2, 9, b'x'];
    let subs: Vec<_> = SubOptions::new(&v).collect();
    assert_eq!(subs, vec![(1, &b"ab"[..])]);
}
