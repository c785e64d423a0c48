#!/usr/bin/env python3
"""Set sysctls inside several network namespaces from one process.

usage: netns_sysctl.py NS:key=value [NS:key=value ...]
  e.g. gw1:net.ipv4.ip_forward=1 host1:net.ipv6.conf.all.disable_ipv6=1
NS is a name under /run/netns ("-" = the current namespace)."""
import ctypes
import os
import sys

CLONE_NEWNET = 0x40000000


def main():
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/self/ns/net", os.O_RDONLY)
    rc = 0
    for arg in sys.argv[1:]:
        ns, _, kv = arg.partition(":")
        key, _, val = kv.partition("=")
        if not key or not _:
            print("bad argument %r" % arg, file=sys.stderr)
            return 2
        fd = own if ns == "-" else os.open("/run/netns/" + ns, os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            print("setns %s: %s" % (ns, os.strerror(ctypes.get_errno())), file=sys.stderr)
            return 1
        if fd != own:
            os.close(fd)
        try:
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(val)
        except OSError as e:
            print("%s: %s: %s" % (ns, key, e), file=sys.stderr)
            rc = 1
    libc.setns(own, CLONE_NEWNET)
    return rc


if __name__ == "__main__":
    sys.exit(main())
