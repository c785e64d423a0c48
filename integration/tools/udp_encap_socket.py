#!/usr/bin/env python3
"""Hold a UDP socket with UDP_ENCAP_ESPINUDP on PORT (as an IKE daemon's NAT-T socket
does), so the kernel decapsulates ESP-in-UDP arriving on it. Runs until killed."""
import signal
import socket
import sys

UDP_ENCAP = 100            # <linux/udp.h>
UDP_ENCAP_ESPINUDP = 2

port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port))
s.setsockopt(socket.IPPROTO_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
print(f"bound udp/{port} with UDP_ENCAP_ESPINUDP", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    s.recv(65535)  # only IKE (non-ESP) datagrams reach userspace
