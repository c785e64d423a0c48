#!/bin/bash
# bench-metrics-host.sh [RUNS]: does scraping /metrics slow IKE down? On this machine (no VM:
# the responder's child traffic selector excludes what the generator offers, so vpnd
# answers TS_UNACCEPTABLE and keeps each IKE SA without a kernel SA, LAB.md's fair host
# benchmark). In a network namespace: vpnd responds with metrics on 127.0.0.1:9469;
# `labtool ike-load` opens 3,000 IKE SAs from 1,000 UDP ports (1,000 sessions), RUNS (3)
# times each without scrapes, with a scrape every 0.5 s, and with scrapes back to back.
# Prints IKE SAs/s and the scrapes' durations. Needs root (unshare).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
runs=${1:-3}
if [[ ${1:-} != --inside ]]; then
    cargo build --release -q -p vpnd -p vpnd-labtool
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    for _ in $(seq "$runs"); do
        for mode in none every-0.5s back-to-back; do
            printf '%-13s ' "$mode"
            BENCH_DIR=$dir MODE=$mode unshare --net bash "${BASH_SOURCE[0]}" --inside
        done
    done
    exit 0
fi
D=$BENCH_DIR
ip link set lo up
ip addr add 192.0.2.1/24 dev lo
ip addr add 192.0.2.3/24 dev lo
cat >"$D/vpnd.yaml" <<Y
local: { addresses: [192.0.2.1] }
control: { socket: $D/vpnd.sock }
metrics: { listen: 127.0.0.1:9469 }
log: { level: warn }
syslog: { local: false }
peers:
  - name: load
    address: 192.0.2.3
    local_id: "@gw1.lab.example"
    remote_id: "@load.lab.example"
    psk: lab-load-secret
    start: respond
    ike: { dpd: 0 }
    children: [ { name: lan, local_ts: [198.51.100.0/25], remote_ts: [198.18.0.0/26] } ]
Y
./target/release/vpnd -c "$D/vpnd.yaml" >"$D/vpnd.log" 2>&1 &
vpnd=$!
scraper=
trap 'kill $vpnd $scraper 2>/dev/null || true' EXIT
for _ in $(seq 50); do (echo >/dev/tcp/127.0.0.1/9469) 2>/dev/null && break; sleep 0.1; done
if [[ $MODE != none ]]; then
    EVERY=$([[ $MODE == every-0.5s ]] && echo 0.5 || echo 0) python3 - >"$D/scrapes.txt" <<'P' &
import os, socket, time
every = float(os.environ["EVERY"])
while True:
    t = time.time()
    s = socket.create_connection(("127.0.0.1", 9469))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: vpnd\r\n\r\n")
    while s.recv(1 << 16):
        pass
    s.close()
    print(round((time.time() - t) * 1000, 1), flush=True)
    time.sleep(every)
P
    scraper=$!
fi
rate=$(./target/release/labtool ike-load --local 192.0.2.3 --target 192.0.2.1 --count 3000 \
    --concurrency 32 --ports 1000 --local-ts 198.18.0.0/26 --remote-ts 198.51.100.0/25 \
    --timeout 300 2>&1 | grep -o '[0-9.]* IKE SAs/s')
if [[ -n $scraper ]]; then
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    scraper=
    stats=$(sort -n "$D/scrapes.txt" | awk '{a[NR]=$1} END {printf "%d scrapes, median %s ms, max %s ms", NR, a[int(NR/2)+1], a[NR]}')
fi
echo "$rate ${stats:-}"
