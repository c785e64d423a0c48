#!/usr/bin/env python3
"""Minimal syslog receiver for the lab: UDP and TCP on one port.

Every message is appended to --out as one line "proto<TAB>src<TAB>message"
(message newlines escaped as \\n) and flushed at once. TCP accepts both
RFC 6587 framings: octet counting ("LEN SP MSG") and newline-terminated.
--ready FILE is created once both sockets listen. Exits on SIGTERM/SIGINT.
"""
import argparse
import os
import selectors
import signal
import socket
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=514)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready")
    ap.add_argument("--no-udp", action="store_true")
    ap.add_argument("--no-tcp", action="store_true")
    a = ap.parse_args()

    out = open(a.out, "a", encoding="utf-8", buffering=1)
    sel = selectors.DefaultSelector()
    bufs = {}

    def emit(proto, src, data):
        msg = data.decode("utf-8", "replace").rstrip("\r\n\0")
        if not msg:
            return
        msg = msg.replace("\\", "\\\\").replace("\n", "\\n")
        out.write("%s\t%s:%d\t%s\n" % (proto, src[0], src[1], msg))
        out.flush()

    if not a.no_udp:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        u.bind((a.addr, a.port))
        sel.register(u, selectors.EVENT_READ, "udp")
    if not a.no_tcp:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind((a.addr, a.port))
        t.listen(16)
        sel.register(t, selectors.EVENT_READ, "listen")

    def stop(*_):
        out.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if a.ready:
        open(a.ready, "w").close()
    print("listening on %s:%d" % (a.addr, a.port), file=sys.stderr, flush=True)

    def drain(conn, final=False):
        buf, src = bufs[conn]
        while buf:
            sp = buf.find(b" ")
            if buf[:1].isdigit() and sp > 0 and buf[:sp].isdigit():
                n = int(buf[:sp])
                if len(buf) - sp - 1 < n:
                    break
                emit("tcp", src, buf[sp + 1:sp + 1 + n])
                buf = buf[sp + 1 + n:]
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                if final:
                    emit("tcp", src, buf)
                    buf = b""
                break
            emit("tcp", src, buf[:nl])
            buf = buf[nl + 1:]
        bufs[conn] = (buf, src)

    while True:
        for key, _ in sel.select():
            s, kind = key.fileobj, key.data
            if kind == "udp":
                data, src = s.recvfrom(65535)
                emit("udp", src, data)
            elif kind == "listen":
                conn, src = s.accept()
                bufs[conn] = (b"", src)
                sel.register(conn, selectors.EVENT_READ, "tcp")
            else:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if data:
                    buf, src = bufs[s]
                    bufs[s] = (buf + data, src)
                    drain(s)
                else:
                    drain(s, final=True)
                    sel.unregister(s)
                    s.close()
                    del bufs[s]


if __name__ == "__main__":
    main()
