#!/bin/bash
# bench-vpnctl-host.sh [SESSIONS]: the bench-vpnctl-show figures on this machine itself (no
# VM: vpnd's control socket and session table need no IPsec). Builds release binaries,
# serves SESSIONS (10,000) synthetic sessions with `labtool fake-sessions`, and prints the
# median of 11 runs of each `vpnctl show crypto session` layout.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
n=${1:-10000}
cargo build --release -q -p vpnd -p vpnd-labtool
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
./target/release/labtool fake-sessions --sessions "$n" --socket "$dir/s.sock" >/dev/null &
pid=$!
for _ in $(seq 100); do [[ -S $dir/s.sock ]] && break; sleep 0.1; done
median() {
    local i s e
    local -a t=()
    for i in $(seq 11); do
        s=$(date +%s%N)
        "$@" >/dev/null
        e=$(date +%s%N)
        t+=($(((e - s) / 1000000)))
    done
    printf '%s\n' "${t[@]}" | sort -n | sed -n 6p
}
echo "vpnctl --version: $(median ./target/release/vpnctl --version) ms"
for layout in "" brief summary detail; do
    echo "vpnctl show crypto session ${layout:-(plain)}, $n sessions: $(median ./target/release/vpnctl --socket "$dir/s.sock" show crypto session $layout) ms"
done
echo "vpnctl --json show crypto session, $n sessions: $(median ./target/release/vpnctl --socket "$dir/s.sock" --json show crypto session) ms"
