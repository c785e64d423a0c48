#!/bin/bash
# bench-accounting-host.sh [SESSIONS]: the bench-accounting figures on this machine itself
# (no VM: accounting needs no IPsec). Runs FreeRADIUS on the loopback only (its stock
# `localhost` client, secret testing123; detail file with locking), feeds vpnd's accounting
# task SESSIONS (10,000) session-up events at once with `labtool acct-burst`, and checks that
# FreeRADIUS wrote one Start per session. Needs freeradius (integration/install-deps.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
n=${1:-10000}
cargo build --release -q -p vpnd-labtool
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cp -a /etc/freeradius/3.0 "$dir/fr"
mkdir -p "$dir/fr/log" "$dir/fr/run"
sed -i -E -e 's/^(\s*)(user|group)\s*=/\1# \2 =/' -e "s|^logdir\s*=.*|logdir = $dir/fr/log|" \
    -e "s|^run_dir\s*=.*|run_dir = $dir/fr/run|" "$dir/fr/radiusd.conf"
# Listen on the loopback only.
sed -i -E 's|^(\s*)ipaddr\s*=\s*\*|\1ipaddr = 127.0.0.1|' "$dir/fr/sites-enabled/default"
rm -f "$dir/fr/mods-enabled/detail"
sed -E -e "s|^(\s*)filename\s*=.*|\1filename = $dir/detail|" -e 's|^(\s*)#\s*locking\s*=.*|\1locking = yes|' \
    "$dir/fr/mods-available/detail" >"$dir/fr/mods-enabled/detail"
freeradius -f -d "$dir/fr" -l stdout >"$dir/fr.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q 'Ready to process' "$dir/fr.log" && break; sleep 0.1; done
./target/release/labtool acct-burst --sessions "$n" --server 127.0.0.1:1813 --dir "$dir/acct"
parse() { python3 integration/tools/parse_detail.py --where Acct-Status-Type=Start "$@" "$dir/detail"; }
starts=$(parse --count)
ids=$(parse --get Acct-Session-Id | sort -u | wc -l)
echo "acct-burst: FreeRADIUS wrote $starts Start records ($ids distinct sessions) for $n sessions"
