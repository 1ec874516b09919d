use super::*;

/// An EDK2 PXE SOLICIT as its PxeBcDhcp6 code builds one: ORO, a DUID-UUID,
/// IA_NA, elapsed time, vendor class 343 "PXEClient:Arch:00007:UNDI:003000",
/// client architecture 7, NII 1.3.0.
pub(crate) fn edk2_solicit() -> Vec<u8> {
    let mut b = vec![1, 0x12, 0x34, 0x56];
    let mut opt = |code: u16, data: &[u8]| {
        b.extend_from_slice(&code.to_be_bytes());
        b.extend_from_slice(&(data.len() as u16).to_be_bytes());
        b.extend_from_slice(data);
    };
    opt(6, &[0, 59, 0, 60, 0, 23, 0, 24]);
    let mut duid = vec![0, 4];
    duid.extend_from_slice(&[0x11; 16]);
    opt(1, &duid);
    opt(3, &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    opt(8, &[0, 0]);
    let class = b"PXEClient:Arch:00007:UNDI:003000";
    let mut vendor = 343u32.to_be_bytes().to_vec();
    vendor.extend_from_slice(&(class.len() as u16).to_be_bytes());
    vendor.extend_from_slice(class);
    opt(16, &vendor);
    opt(61, &[0, 7]);
    opt(62, &[1, 3, 0]);
    b
}

#[test]
fn an_edk2_solicit_reads_as_its_firmware_says() {
    let bytes = edk2_solicit();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.kind, MessageType::Solicit);
    assert_eq!(m.xid, [0x12, 0x34, 0x56]);
    assert_eq!(m.options.client_arch(), Some(7));
    let (enterprise, class) = m.options.vendor_class().unwrap();
    assert_eq!(enterprise, 343);
    assert!(class.starts_with(b"PXEClient:Arch:00007"));
    assert_eq!(m.options.requested().collect::<Vec<_>>(), [59, 60, 23, 24]);
    let ias = m.options.ia_nas().unwrap();
    assert_eq!(ias.len(), 1);
    assert_eq!(ias[0].iaid, 1);
    assert_eq!(ias[0].addresses().count(), 0);
    assert_eq!(m.elapsed(), Some(0));
    // A DUID-UUID carries no MAC.
    assert_eq!(duid_mac(m.client_id().unwrap()), None);
}

#[test]
fn duids_with_a_link_layer_address_give_the_mac() {
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let mut ll = vec![0, 3, 0, 1];
    ll.extend_from_slice(&mac);
    assert_eq!(duid_mac(&ll), Some(mac));
    let mut llt = vec![0, 1, 0, 1, 0x2b, 0x00, 0x00, 0x01];
    llt.extend_from_slice(&mac);
    assert_eq!(duid_mac(&llt), Some(mac));
    // Another hardware type, a short one, an enterprise DUID: none.
    assert_eq!(duid_mac(&[0, 3, 0, 6, 1, 2, 3, 4, 5, 6]), None);
    assert_eq!(duid_mac(&[0, 3, 0, 1, 1, 2]), None);
    assert_eq!(duid_mac(&[0, 2, 0, 0, 0, 9, 1]), None);
}

#[test]
fn options_that_overrun_the_message_are_refused() {
    let mut bytes = edk2_solicit();
    bytes.truncate(bytes.len() - 1);
    assert!(matches!(
        Message::parse(&bytes),
        Err(Error::Truncated { .. })
    ));
    // A header cut short.
    assert!(Message::parse(&[1, 0, 0, 1, 0, 1, 0]).is_err());
    assert!(Message::parse(&[1, 0]).is_err());
    // Unknown type, a relay where a client message belongs.
    assert!(Message::parse(&[200, 0, 0, 1]).is_err());
    assert!(Message::parse(&[12, 0, 0, 1]).is_err());
    // An IA_NA shorter than its fixed fields.
    let mut short = vec![3, 0, 0, 1];
    short.extend_from_slice(&[0, 3, 0, 4, 0, 0, 0, 1]);
    assert!(Message::parse(&short).unwrap().options.ia_nas().is_err());
    // Too many options.
    let mut many = vec![1, 0, 0, 1];
    for _ in 0..=MAX_OPTIONS {
        many.extend_from_slice(&[0, 99, 0, 0]);
    }
    assert!(matches!(
        Message::parse(&many),
        Err(Error::TooManyOptions { .. })
    ));
    // Huge.
    let mut huge = vec![1, 0, 0, 1];
    huge.resize(MAX_LEN + 1, 0);
    assert!(Message::parse(&huge).is_err());
}

fn relayed(inner: &[u8], hops: u8, link: Ipv6Addr, extra: &[(u16, &[u8])]) -> Vec<u8> {
    let mut buf = vec![0; 8192];
    let mut w = Writer::new(&mut buf);
    w.relay_forw(hops, link, "fe80::1".parse().unwrap())
        .unwrap();
    for (code, data) in extra {
        w.option(*code, data).unwrap();
    }
    w.option(code::RELAY_MSG, inner).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

#[test]
fn relayed_messages_unwrap_to_the_client_and_its_link() {
    let inner = edk2_solicit();
    let link: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let mac = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
    let mut ll = vec![0, 1];
    ll.extend_from_slice(&mac);
    let once = relayed(&inner, 0, link, &[(code::INTERFACE_ID, b"eth7"), (79, &ll)]);
    let twice = relayed(&once, 1, Ipv6Addr::UNSPECIFIED, &[]);
    let r = Received::parse(&twice).unwrap();
    assert_eq!(r.relays.len(), 2);
    assert_eq!(r.relays[1].interface_id(), Some(&b"eth7"[..]));
    assert_eq!(r.link(), Some(link));
    assert_eq!(r.mac(), Some(mac));
    assert_eq!(r.message.kind, MessageType::Solicit);
    // A relay that names its link by a link-local address names no prefix.
    let local = relayed(&inner, 0, "fe80::1".parse().unwrap(), &[]);
    assert_eq!(Received::parse(&local).unwrap().link(), None);
    // Not relayed: no link, the DUID-UUID has no MAC.
    let direct = Received::parse(&inner).unwrap();
    assert!(direct.relays.is_empty());
    assert_eq!(direct.link(), None);
    assert_eq!(direct.mac(), None);
}

#[test]
fn relay_nesting_past_the_hop_limit_is_refused() {
    let mut msg = edk2_solicit();
    for hop in 0..usize::from(HOP_LIMIT) {
        msg = relayed(&msg, hop as u8, Ipv6Addr::UNSPECIFIED, &[]);
    }
    assert_eq!(Received::parse(&msg).unwrap().relays.len(), 32);
    let deeper = relayed(&msg, HOP_LIMIT, Ipv6Addr::UNSPECIFIED, &[]);
    assert!(Received::parse(&deeper).is_err());
    // A relay without a message, a relay cut short.
    let empty = {
        let mut buf = vec![0; 64];
        let mut w = Writer::new(&mut buf);
        w.relay_forw(0, Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED)
            .unwrap();
        let n = w.len();
        buf.truncate(n);
        buf
    };
    assert!(Received::parse(&empty).is_err());
    assert!(Received::parse(&empty[..20]).is_err());
}

#[test]
fn a_relayed_reply_is_written_outside_in() {
    let inner = edk2_solicit();
    let link: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let forw = relayed(&inner, 3, link, &[(code::INTERFACE_ID, b"port9")]);
    let received = Received::parse(&forw).unwrap();
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    let open = w.relay_reply(&received.relays[0]).unwrap();
    w.message(MessageType::Advertise, received.message.xid)
        .unwrap();
    let ia = w.ia_na(1, 100, 160).unwrap();
    w.ia_addr("2001:db8:1::99".parse().unwrap(), 200, 300)
        .unwrap();
    w.end(ia).unwrap();
    w.status(status::SUCCESS, "ok").unwrap();
    w.end(open).unwrap();
    let n = w.len();
    let out = &buf[..n];
    assert_eq!(out[0], MessageType::RelayRepl.to_u8());
    assert_eq!(out[1], 3);
    assert_eq!(&out[2..18], &link.octets());
    let opts = Options::parse(&out[34..]).unwrap();
    assert_eq!(opts.get(code::INTERFACE_ID), Some(&b"port9"[..]));
    let msg = Message::parse(opts.get(code::RELAY_MSG).unwrap()).unwrap();
    assert_eq!(msg.kind, MessageType::Advertise);
    assert_eq!(msg.xid, [0x12, 0x34, 0x56]);
    let ia = msg.options.ia_nas().unwrap();
    let addr: Vec<IaAddr> = ia[0].addresses().collect();
    assert_eq!(
        addr,
        [IaAddr {
            addr: "2001:db8:1::99".parse().unwrap(),
            preferred: 200,
            valid: 300
        }]
    );
    assert_eq!((ia[0].t1, ia[0].t2), (100, 160));
    let st = msg.options.get(code::STATUS_CODE).unwrap();
    assert_eq!(st, &[0, 0, b'o', b'k']);
    // No room: an error, not a panic.
    let mut tiny = [0u8; 10];
    let mut w = Writer::new(&mut tiny);
    assert!(w.relay_reply(&received.relays[0]).is_err());
}

#[test]
fn user_classes_and_vendor_items_are_read_by_length() {
    let mut b = vec![1, 0, 0, 1];
    // User class: "iPXE" then "x".
    b.extend_from_slice(&[0, 15, 0, 9, 0, 4, b'i', b'P', b'X', b'E', 0, 1, b'x']);
    // Vendor class with an item overrunning its option: no item, no panic.
    b.extend_from_slice(&[0, 16, 0, 7, 0, 0, 1, 87, 0, 9, b'H']);
    let m = Message::parse(&b).unwrap();
    let classes: Vec<&[u8]> = m.options.user_classes().collect();
    assert_eq!(classes, [&b"iPXE"[..], &b"x"[..]]);
    assert_eq!(m.options.vendor_class(), Some((343, &b""[..])));
}
