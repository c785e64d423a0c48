#!/usr/bin/env python3
"""Parse `ip -s xfrm state` output (stdin) into JSON.

Default: print a JSON list, one object per SA:
  {"src", "dst", "proto", "spi": "0xc1234567", "spi_int", "reqid", "mode",
   "bytes", "packets"}
With --get FIELD[,FIELD...] (space-separated values; and optional --src/--dst/--spi/--proto filters): print FIELD
of the single matching SA; exit 2 if zero or several SAs match.
"""
import argparse
import json
import re
import sys


def parse(text):
    sas = []
    cur = None
    want_current = False
    for line in text.splitlines():
        m = re.match(r"^src (\S+) dst (\S+)", line)
        if m:
            cur = {"src": m.group(1), "dst": m.group(2), "proto": None,
                   "spi": None, "spi_int": None, "reqid": None, "mode": None,
                   "bytes": None, "packets": None}
            sas.append(cur)
            want_current = False
            continue
        if cur is None:
            continue
        s = line.strip()
        m = re.match(r"proto (\S+) spi (0x[0-9a-fA-F]+)(?:\((\d+)\))?"
                     r"(?: reqid (\d+))?.*?(?: mode (\S+))?$", s)
        if m and cur["spi"] is None:
            cur["proto"] = m.group(1)
            cur["spi"] = "0x%08x" % int(m.group(2), 16)
            cur["spi_int"] = int(m.group(2), 16)
            cur["reqid"] = int(m.group(4)) if m.group(4) else None
            cur["mode"] = m.group(5)
            continue
        if s.startswith("lifetime current"):
            want_current = True
            continue
        if want_current:
            m = re.match(r"(\d+)\(bytes\), (\d+)\(packets\)", s)
            if m:
                cur["bytes"] = int(m.group(1))
                cur["packets"] = int(m.group(2))
                want_current = False
    return sas


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src")
    ap.add_argument("--dst")
    ap.add_argument("--spi", help="hex (0x...) or decimal")
    ap.add_argument("--proto")
    ap.add_argument("--get", help="field to print for the single matching SA")
    a = ap.parse_args()
    sas = parse(sys.stdin.read())
    if a.src:
        sas = [s for s in sas if s["src"] == a.src]
    if a.dst:
        sas = [s for s in sas if s["dst"] == a.dst]
    if a.proto:
        sas = [s for s in sas if s["proto"] == a.proto]
    if a.spi:
        spi = int(a.spi, 0)
        sas = [s for s in sas if s["spi_int"] == spi]
    if a.get:
        if len(sas) != 1:
            print("%d SAs match (src=%s dst=%s spi=%s), need exactly 1"
                  % (len(sas), a.src, a.dst, a.spi))
            return 2
        print(" ".join(str(sas[0].get(f)) for f in a.get.split(",")))
        return 0
    print(json.dumps(sas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
