#!/usr/bin/env python3
"""Parse a FreeRADIUS `detail` file into JSON lines.

Each record is a header line (the time, column 0) followed by tab-indented
"Attr = value" lines and a blank line. Output: one JSON object per record,
{"_header": "<header line>", "Attr": "value", ...}; string values are
unquoted/unescaped; an attribute that appears several times becomes a list.

Options:
  --where Attr=Value   keep records whose Attr equals Value (repeatable;
                       for list values: Value is one of them)
  --get Attr[,Attr..]  print these attributes of each kept record, one
                       line per record, tab-separated (lists as JSON,
                       absent attributes as <missing>)
  --count              print the number of kept records
"""
import argparse
import json
import re
import sys

ATTR = re.compile(r"^\s+([A-Za-z0-9_.:-]+)\s*(?:\+?[=:]=?|=)\s*(.*)$")


def unquote(v):
    v = v.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        v = v[1:-1]
        out, i = [], 0
        while i < len(v):
            c = v[i]
            if c == "\\" and i + 1 < len(v):
                n = v[i + 1]
                if n in "01234567" and re.match(r"[0-7]{3}", v[i + 1:i + 4]):
                    out.append(chr(int(v[i + 1:i + 4], 8)))
                    i += 4
                    continue
                out.append({"n": "\n", "r": "\r", "t": "\t"}.get(n, n))
                i += 2
                continue
            out.append(c)
            i += 1
        return "".join(out)
    return v


def parse(text):
    recs, cur = [], None
    for line in text.splitlines():
        if not line.strip():
            if cur is not None:
                recs.append(cur)
                cur = None
            continue
        if not line[0].isspace():
            if cur is not None:
                recs.append(cur)
            cur = {"_header": line.strip()}
            continue
        m = ATTR.match(line)
        if not m:
            continue
        if cur is None:
            cur = {"_header": ""}
        k, v = m.group(1), unquote(m.group(2))
        if k in cur:
            if not isinstance(cur[k], list):
                cur[k] = [cur[k]]
            cur[k].append(v)
        else:
            cur[k] = v
    if cur is not None:
        recs.append(cur)
    return recs


def matches(rec, k, v):
    got = rec.get(k)
    return v in got if isinstance(got, list) else got == v


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--where", action="append", default=[])
    ap.add_argument("--get")
    ap.add_argument("--count", action="store_true")
    a = ap.parse_args()
    try:
        with open(a.file, encoding="utf-8", errors="replace") as f:
            recs = parse(f.read())
    except FileNotFoundError:
        recs = []
    for w in a.where:
        k, _, v = w.partition("=")
        recs = [r for r in recs if matches(r, k, v)]
    if a.count:
        print(len(recs))
    elif a.get:
        for r in recs:
            vals = []
            for k in a.get.split(","):
                v = r.get(k, "<missing>")
                vals.append(json.dumps(v) if isinstance(v, list) else v)
            print("\t".join(vals))
    else:
        for r in recs:
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
