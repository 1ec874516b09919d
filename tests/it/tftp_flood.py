#!/usr/bin/env python3
"""Read requests that never acknowledge, for the TFTP flood test (standard
library).

  tftp_flood.py HOST PORT FILE COUNT SECONDS

Sends COUNT RRQs for FILE, each from its own socket, spread over source
addresses 127.0.0.2-201 (past the per-address limit), 1,000 a second; keeps
every socket open and silent (no ACK, no ICMP) for SECONDS, then exits.
"""

import resource
import socket
import sys
import time


def main():
    host, port, name, count, seconds = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    rrq = b"\x00\x01" + name.encode() + b"\x00octet\x00blksize\x001468\x00"
    socks = []
    end = time.monotonic() + seconds
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((f"127.0.0.{2 + i % 200}", 0))
        s.sendto(rrq, (host, port))
        socks.append(s)
        if i % 100 == 99:
            time.sleep(0.1)
    print(f"sent {len(socks)}", flush=True)
    time.sleep(max(0.0, end - time.monotonic()))


if __name__ == "__main__":
    main()
