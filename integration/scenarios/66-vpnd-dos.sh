# shellcheck shell=bash
# 66-vpnd-dos: a half-open flood while a real peer connects (issue 11 item 2, RFC 7296 2.6).
# labtool ike-flood in peer2 sends 30,000 IKE_SA_INITs from 16 addresses x 16 ports at
# 3,000/s that never go further (no COOKIE echoed, no IKE_AUTH); meanwhile charon in peer1
# initiates to vpnd. Expected: past cookie_threshold half-open SAs the flood gets COOKIE
# answers only (counted by labtool and by `vpnctl show crypto isakmp stats`), charon echoes
# its cookie and its tunnel comes up within its normal retransmission time and carries
# pings, vpnd's half-open SAs stay within the bounds and go after half_open_timeout, and
# its resident memory is printed before, at the flood's peak and after.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

_stats() { # the JSON of vpnctl show crypto isakmp stats
    ip netns exec gw1 "$LAB_TARGET/vpnctl" --json --socket "$LAB_WORKDIR/vpnd.sock" show crypto isakmp stats
}

_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_stats"][sys.argv[1]])' "$1"; }

scenario_run() {
    LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}
    local conf=$LAB_WORKDIR/vpnd.yaml d=$LAB_WORKDIR/charon-peer1 pid i flood_pid sampler t0 t1
    local -a srcs=()
    ip -n peer2 route replace default dev t0
    for i in $(seq 100 115); do
        ip -n peer2 addr add "192.0.2.$i/24" dev t0 nodad
        srcs+=(--local "192.0.2.$i")
    done
    # peer1 as usual, plus a road-warrior entry that takes the flood's addresses, so the
    # flood reaches the IKE_SA_INIT intake rather than the "no peer configured" drop.
    write_vpnd_conf "$conf" start=respond dpd=0 extra="  - name: rw
    address: 192.0.2.64/26
    local_id: \"@gw1.lab.example\"
    psk: \"lab-rw-secret-0123456789\"
    start: respond
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.64/26]"
    # strongSwan's defaults, but a short half-open timeout so the scenario sees it pass.
    printf 'dos:\n  cookie_threshold: 10\n  block_threshold: 5\n  half_open_limit: 10000\n  half_open_timeout: 10s\n' >>"$conf"
    sed -i 's/level: debug/level: info/' "$conf"
    start_vpnd gw1 "$conf"
    pid=$(cat "$LAB_WORKDIR/vpnd-gw1.pid")
    local rss_before rss_peak rss_after
    rss_before=$(_rss "$pid")

    ( while kill -0 "$pid" 2>/dev/null; do _rss "$pid"; sleep 0.2; done ) >"$LAB_LOGDIR/rss.txt" &
    sampler=$!
    ip netns exec peer2 "$LABTOOL" ike-flood "${srcs[@]}" --target 192.0.2.1 \
        --count 30000 --ports 16 --rate 3000 >"$LAB_LOGDIR/flood.txt" 2>&1 &
    flood_pid=$!
    sleep 2 # the flood is on: cookies are being demanded

    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=start
    t0=$(date +%s.%N)
    start_charon peer1 "$d"
    # charon's first retransmission is at 4 s, its fifth at about 75 s: a COOKIE costs it
    # one round trip, so well inside the first.
    wait_ike_established peer1 site 20
    t1=$(date +%s.%N)
    wait "$flood_pid" || lab_fail "ike-flood failed: $(tail -3 "$LAB_LOGDIR/flood.txt")"
    cat "$LAB_LOGDIR/flood.txt" >&2
    local during
    during=$(_stats)
    lab_log "during the flood: $during"
    ping_ok host1 203.0.113.10 3

    local flood cookies half_open peak
    flood=$(sed -n 's/^ike-flood-json: //p' "$LAB_LOGDIR/flood.txt")
    cookies=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cookies"])' "$flood")
    half_open=$(_field half_open <<<"$during")
    peak=$(_field half_open_peak <<<"$during")
    assert_ge 15000 "$cookies" "COOKIE answers the flood received"
    assert_ge 15000 "$(_field cookies_sent <<<"$during")" "cookies vpnd counted"
    assert_ge 1 "$(_field cookies_valid <<<"$during")" "charon's cookie accepted"
    # At most cookie_threshold (the flood's own, before cookies) plus one per address
    # that got through the threshold's race: far below the flood.
    ((peak <= 100)) || lab_fail "half-open peak $peak: not bounded"
    grep -q 'IKE_SA_INIT now needs a COOKIE' "$LAB_LOGDIR/vpnd-gw1.log" ||
        lab_fail "vpnd did not log the switch to cookies"

    sleep 12 # half_open_timeout 10 s
    local after
    after=$(_stats)
    assert_eq 0 "$(_field half_open <<<"$after")" "half-open SAs after half_open_timeout"
    assert_eq 1 "$(_field established <<<"$after")" "charon's IKE SA still up"
    ping_ok host1 203.0.113.10 3
    kill "$sampler" 2>/dev/null || true
    rss_peak=$(sort -n "$LAB_LOGDIR/rss.txt" | tail -1)
    rss_after=$(_rss "$pid")
    ip netns exec gw1 "$LAB_TARGET/vpnctl" --socket "$LAB_WORKDIR/vpnd.sock" show crypto isakmp stats >&2
    python3 - "$t0" "$t1" "$rss_before" "$rss_peak" "$rss_after" "$half_open" "$peak" <<'PY' | tee "$LAB_RESULTS/66-vpnd-dos.txt" >&2
import sys
t0, t1 = float(sys.argv[1]), float(sys.argv[2])
before, peak, after = (int(x) for x in sys.argv[3:6])
print(f"dos: charon's tunnel up {t1 - t0:.1f} s after its start, during the flood")
print(f"dos: vpnd RSS before {before} kB, peak {peak} kB (+{peak - before} kB), after {after} kB")
print(f"dos: half-open at the flood's end {sys.argv[6]}, peak {sys.argv[7]}")
PY
    stop_charon peer1
    stop_vpnd gw1
}
