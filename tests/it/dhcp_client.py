#!/usr/bin/env python3
"""A scripted DHCP client for the integration tests (Python standard library only).

It plays the firmware identities of CLIENTS.md (EDK2 PXE, iPXE, UEFI HTTP boot, the
Debian installer) by the options it sends, and prints what it got as JSON lines.

  dhcp_client.py IFACE MAC dora     [identity options]   DISCOVER, offers, REQUEST, ACK
  dhcp_client.py IFACE MAC decline  IP SERVER            DECLINE of IP
  dhcp_client.py IFACE MAC release  IP SERVER            RELEASE of IP, unicast to SERVER
  dhcp_client.py IFACE MAC pxe4011  SERVER               proxyDHCP REQUEST to SERVER:4011
  dhcp_client.py IFACE MAC garbage  SERVER [--repeat N]  bad datagrams to SERVER:67

Identity options: --arch N --vendor TEXT --user-class TEXT --ipxe --uuid
--client-id HEX
--prefer SERVER (take that server's offer) --wait SECS --first (stop at the
first answer: one server on the link) --pxe-at IP (after a proxy offer, ask
the proxy's :4011 from IP, as PXE firmware does) --boot-server (after an ACK
with a PXE menu, take its address and ask :4011 for the first item).
"""

import argparse
import json
import random
import socket
import struct
import subprocess
import sys
import time

MAGIC = b"\x63\x82\x53\x63"


def packet(mac, xid, msg_type, opts, ciaddr="0.0.0.0", broadcast=True):
    head = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, 1, 6, 0, xid, 0, 0x8000 if broadcast else 0,
        socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, b"\0" * 4,
        mac + b"\0" * 10, b"", b"",
    )
    body = bytes([53, 1, msg_type])
    for code, value in opts:
        body += bytes([code, len(value)]) + value
    return head + MAGIC + body + b"\xff" + b"\0" * 16


def parse(data):
    if len(data) < 240 or data[236:240] != MAGIC:
        return None
    xid = struct.unpack("!I", data[4:8])[0]
    out = {
        "xid": xid,
        "yiaddr": socket.inet_ntoa(data[16:20]),
        "siaddr": socket.inet_ntoa(data[20:24]),
        "sname": data[44:108].split(b"\0")[0].decode("latin-1"),
        "file": data[108:236].split(b"\0")[0].decode("latin-1"),
        "options": {},
    }
    i = 240
    while i < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(data):
            break
        n = data[i + 1]
        value = data[i + 2:i + 2 + n]
        out["options"][str(code)] = out["options"].get(str(code), "") + value.hex()
        i += 2 + n
    opts = out["options"]
    out["type"] = int(opts.get("53", "00"), 16)
    if "54" in opts:
        out["server"] = socket.inet_ntoa(bytes.fromhex(opts["54"]))
    return out


def identity(args):
    opts = [(55, bytes([1, 3, 6, 12, 15, 28, 42, 43, 51, 54, 58, 59, 60, 66, 67, 97, 175]))]
    if args.arch is not None:
        opts.append((93, struct.pack("!H", args.arch)))
        opts.append((94, b"\x01\x03\x10"))
    if args.vendor:
        opts.append((60, args.vendor.encode()))
    if args.user_class:
        opts.append((77, args.user_class.encode()))
    if args.ipxe:
        opts.append((175, b"\xb1\x05\x01\x1a\xf4\x10\x00"))
    if args.uuid:
        opts.append((97, b"\x00" + bytes(range(16))))
    if args.client_id:
        opts.append((61, bytes.fromhex(args.client_id.replace(":", ""))))
    return opts


def open_socket(iface, port=68):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
    s.bind(("0.0.0.0", port))
    return s


def collect(s, xid, want_types, wait, first=False):
    end = time.monotonic() + wait
    got = []
    while not (first and got):
        left = end - time.monotonic()
        if left <= 0:
            return got
        s.settimeout(left)
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return got
        p = parse(data)
        if p and p["xid"] == xid and p["type"] in want_types:
            got.append(p)
    return got


def dora(args, mac):
    s = open_socket(args.iface)
    xid = random.getrandbits(32)
    ident = identity(args)
    offers = []
    for _ in range(3):
        s.sendto(packet(mac, xid, 1, ident), ("255.255.255.255", 67))
        offers = collect(s, xid, {2}, args.wait, args.first)
        if offers:
            break
    print(json.dumps({"offers": offers}))
    usable = [o for o in offers if o["yiaddr"] != "0.0.0.0"]
    proxy = [o for o in offers if o["yiaddr"] == "0.0.0.0" and "server" in o]
    if not usable and proxy and args.pxe_at:
        return boot_server(args, mac, ident, proxy[0])
    if args.prefer:
        usable = [o for o in usable if o.get("server") == args.prefer]
    if not usable:
        return 1
    offer = usable[0]
    req = ident + [
        (50, socket.inet_aton(offer["yiaddr"])),
        (54, socket.inet_aton(offer["server"])),
    ]
    # Resent, as clients do, when no answer comes in time (an ACK waits for
    # the server's journal to reach the disk, slow on a loaded machine).
    for _ in range(3):
        s.sendto(packet(mac, xid, 3, req), ("255.255.255.255", 67))
        acks = collect(s, xid, {5, 6}, args.wait, args.first)
        if acks:
            break
    print(json.dumps({"ack": acks[0] if acks else None}))
    ok = acks and acks[0]["type"] == 5
    if ok and args.boot_server and any(menu_items(acks[0])):
        return boot_server_from(args, mac, ident, acks[0])
    return 0 if ok else 1


def boot_server_from(args, mac, ident, ack):
    """What BIOS PXE firmware does with a PXE menu in its ACK: it takes the
    address, picks the first item and asks the boot server on :4011."""
    ip = ack["yiaddr"]
    subprocess.run(["ip", "addr", "add", f"{ip}/24", "dev", args.iface], check=True)
    try:
        args.pxe_at = ip
        return boot_server(args, mac, ident, ack, "boot")
    finally:
        subprocess.run(["ip", "addr", "del", f"{ip}/24", "dev", args.iface], check=False)


def menu_items(offer):
    """The boot server types of a proxy offer's PXE menu (option 43.9)."""
    v = bytes.fromhex(offer["options"].get("43", ""))
    i, items = 0, []
    while i + 1 < len(v) and v[i] != 255:
        code, n = v[i], v[i + 1]
        body = v[i + 2:i + 2 + n]
        if code == 9:
            j = 0
            while j + 2 < len(body):
                items.append(struct.unpack("!H", body[j:j + 2])[0])
                j += 3 + body[j + 2]
        i += 2 + n
    return items


def boot_server(args, mac, ident, offer, key="ack"):
    """What PXE firmware does after a proxy offer, from the address another
    server gave it (--pxe-at): a REQUEST to the proxy's :4011, naming the
    menu's first item from a boot server (option 43.71, layer 0) when the offer
    had a menu."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.pxe_at, 68))
    # Type 0 is "boot from the local disk": firmware asks no server for it.
    items = [t for t in menu_items(offer) if t != 0]
    opts = list(ident)
    if items:
        opts.append((43, bytes([71, 4]) + struct.pack("!HH", items[0], 0) + b"\xff"))
    xid = random.getrandbits(32)
    s.sendto(packet(mac, xid, 3, opts, ciaddr=args.pxe_at, broadcast=False), (offer["server"], 4011))
    acks = collect(s, xid, {5}, args.wait, args.first)
    print(json.dumps({key: acks[0] if acks else None}))
    return 0 if acks else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("iface")
    ap.add_argument("mac")
    ap.add_argument("action")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--arch", type=int)
    ap.add_argument("--vendor")
    ap.add_argument("--user-class")
    ap.add_argument("--ipxe", action="store_true")
    ap.add_argument("--uuid", action="store_true")
    ap.add_argument("--client-id", help="option 61, hex bytes")
    ap.add_argument("--prefer")
    ap.add_argument("--wait", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=1, help="garbage: send the bad datagrams this many times")
    ap.add_argument("--first", action="store_true", help="stop at the first answer")
    ap.add_argument("--pxe-at", help="after a proxy offer, ask its :4011 from this address")
    ap.add_argument("--boot-server", action="store_true",
                    help="after an ACK with a PXE menu, ask :4011 for its first item")
    args = ap.parse_args()
    mac = bytes.fromhex(args.mac.replace(":", ""))
    if args.action == "dora":
        return dora(args, mac)
    if args.action == "decline":
        ip, server = args.rest
        s = open_socket(args.iface)
        opts = [(50, socket.inet_aton(ip)), (54, socket.inet_aton(server))]
        s.sendto(packet(mac, random.getrandbits(32), 4, opts), ("255.255.255.255", 67))
        return 0
    if args.action == "release":
        ip, server = args.rest
        s = open_socket(args.iface)
        opts = [(54, socket.inet_aton(server))]
        s.sendto(packet(mac, random.getrandbits(32), 7, opts, ciaddr=ip, broadcast=False), (server, 67))
        return 0
    if args.action == "pxe4011":
        (server,) = args.rest
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 68))
        xid = random.getrandbits(32)
        s.sendto(packet(mac, xid, 3, identity(args), broadcast=False), (server, 4011))
        acks = collect(s, xid, {5}, args.wait)
        print(json.dumps({"ack": acks[0] if acks else None}))
        return 0 if acks else 1
    if args.action == "garbage":
        (server,) = args.rest
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        good = packet(mac, 7, 1, [])
        bad = [
            b"",
            good[:100],
            good[:236] + b"\0\0\0\0" + good[240:],
            good[:2] + b"\x64" + good[3:],
            good[:240] + bytes([53, 1, 1, 12, 250, 1]),
            good[:240] + bytes([53, 1, 1]) + bytes([12, 1, 97]) * 300,
            good[:240] + bytes([53, 1, 3, 50, 4, 192, 168, 250, 9, 255]),
            good[:240] + bytes([53, 1, 1, 61, 255]) + b"\x07" * 255 + b"\xff",
        ]
        for i in range(args.repeat):
            for b in bad:
                s.sendto(b, (server, 67))
            if i % 100 == 99:
                time.sleep(0.01)
        return 0
    print(f"unknown action {args.action}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
