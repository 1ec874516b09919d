#!/usr/bin/env python3
"""Idle and slowloris HTTP connections, for the flood tests (standard library).

  idle_flood.py HOST PORT IDLE SLOW SECONDS

Opens IDLE connections that send nothing and SLOW connections that send a
request head one byte a second (never finishing it), prints
"open N" once all are connected, keeps them for SECONDS (bounded), then
prints "closed-by-server IDLE SLOW" (how many of each the server closed)
and exits.
"""

import resource
import select
import socket
import sys
import time


def main():
    host, port, idle, slow, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    socks = []
    for i in range(idle + slow):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.connect((host, port))
        s.setblocking(False)
        socks.append(s)
    print(f"open {len(socks)}", flush=True)
    head = b"GET /kernel HTTP/1.1\r\nHost: flood\r\nX-Slow: " + b"a" * 4096
    slow_socks = socks[idle:]
    closed = set()
    poller = select.poll()
    for s in socks:
        poller.register(s, select.POLLIN)
    by_fd = {s.fileno(): s for s in socks}
    end = time.monotonic() + seconds
    sent = 0
    while time.monotonic() < end:
        for s in slow_socks:
            if s.fileno() in closed or sent >= len(head):
                continue
            try:
                s.send(head[sent:sent + 1])
            except OSError:
                closed.add(s.fileno())
        sent += 1
        deadline = time.monotonic() + 1.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for fd, _ in poller.poll(left * 1000):
                s = by_fd[fd]
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data or data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 503"):
                    closed.add(fd)
                    poller.unregister(fd)
    slow_fds = {s.fileno() for s in slow_socks}
    print(f"closed-by-server {len(closed - slow_fds)} {len(closed & slow_fds)}", flush=True)


if __name__ == "__main__":
    main()
