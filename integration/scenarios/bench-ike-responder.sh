# shellcheck shell=bash
# bench-ike-responder: how many IKE SAs (one child SA each, installed in the kernel) a
# responder establishes per second: vpnd, then strongSwan's charon, in gw1, against the
# same load generator (labtool ike-load, built on vpnd's engine) in peer2 opening SAs from
# many UDP source ports at once. Same suite (aes256gcm16-prfsha256-x25519 / aes256gcm16),
# same machine, same run; both with logging at "info"-like levels. Reports, never gates.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=900

BENCH_IKE_COUNT=${BENCH_IKE_COUNT:-400}
BENCH_IKE_CONCURRENCY=${BENCH_IKE_CONCURRENCY:-32}

# _cpu PID : its user+system CPU time in clock ticks (all threads).
_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# The first AES-GCM SA makes the kernel load its crypto modules, which takes seconds under
# emulation: pay that before any daemon is timed (the first daemon used to carry it alone).
_warm_kernel() {
    ip -n gw1 xfrm state add src 192.0.2.1 dst 192.0.2.3 proto esp spi 0x100 mode tunnel \
        aead 'rfc4106(gcm(aes))' "0x$(printf '%072d' 0)" 128
    ip -n gw1 xfrm state delete src 192.0.2.1 dst 192.0.2.3 proto esp spi 0x100
}

_load() { # NAME PID : run the generator against gw1 (the responder PID), keep its output; its
    # JSON line gets the responder's CPU ticks over the run as "cpu_ticks".
    local c0 c1 json
    c0=$(_cpu "$2")
    ip netns exec peer2 "$LABTOOL" ike-load --local 192.0.2.3 --target 192.0.2.1 \
        --count "$BENCH_IKE_COUNT" --concurrency "$BENCH_IKE_CONCURRENCY" --ports 16 \
        --local-ts 203.0.113.64/26 --remote-ts 198.51.100.0/25 --timeout 300 \
        >"$LAB_LOGDIR/load-$1.txt" 2>&1 || lab_fail "load generator against $1 failed: $(tail -3 "$LAB_LOGDIR/load-$1.txt")"
    c1=$(_cpu "$2")
    cat "$LAB_LOGDIR/load-$1.txt" >&2
    json=$(sed -n 's/^ike-load-json: //p' "$LAB_LOGDIR/load-$1.txt")
    python3 -c 'import json, sys; j = json.loads(sys.argv[1]); j["cpu_ticks"] = int(sys.argv[2]); print(json.dumps(j))' "$json" $((c1 - c0))
}

scenario_run() {
    LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}
    local conf=$LAB_WORKDIR/vpnd.yaml d=$LAB_WORKDIR/charon-gw1 ours theirs
    ip -n peer2 route replace default dev t0
    _warm_kernel

    write_vpnd_conf "$conf" start=respond peer_name=load peer_addr=192.0.2.3 \
        remote_id=load.lab.example psk=lab-load-secret remote_ts=203.0.113.64/26 dpd=0 reverse_route=
    sed -i 's/level: debug/level: info/' "$conf"
    # vpnd's DoS bounds raised as charon's "tuned" ones below: with the defaults
    # (block_threshold 5, cookie_threshold 10) a one-address generator would measure them.
    printf 'dos:\n  cookie_threshold: 0\n  block_threshold: 0\n  half_open_limit: 0\n' >>"$conf"
    start_vpnd gw1 "$conf"
    ours=$(_load vpnd "$(cat "$LAB_WORKDIR/vpnd-gw1.pid")")
    # The generator leaves its IKE SAs up: list them the operator's way on each daemon.
    local show_ours show_theirs
    show_ours=$(median_ms 5 ip netns exec gw1 "$LAB_TARGET/vpnctl" --socket "$LAB_WORKDIR/vpnd.sock" show crypto session) ||
        lab_fail "vpnctl show crypto session failed"
    lab_log "vpnctl show crypto session lists $(ip netns exec gw1 "$LAB_TARGET/vpnctl" --socket "$LAB_WORKDIR/vpnd.sock" show crypto session | grep -c '^Session status: UP-ACTIVE$') sessions"
    stop_vpnd gw1

    write_swanctl_conf "$d" name=load local_addr=192.0.2.1 remote_addr=192.0.2.3 \
        local_id=gw1.lab.example remote_id=load.lab.example psk=lab-load-secret \
        local_ts=198.51.100.0/25 remote_ts=203.0.113.64/26 start_action=none
    write_strongswan_conf "$d" "$LAB_LOGDIR/charon-gw1.log"
    # charon logs as little as vpnd does at info: one line per IKE SA, no packet dumps.
    sed -i 's/default = 1/default = 0/; s/ike = 2/ike = 1/; s/flush_line = yes/flush_line = no/' "$d/strongswan.conf"
    start_charon gw1 "$d"
    theirs=$(_load charon "$(charon_pid gw1)")
    show_theirs=$(median_ms 5 swanctl_in gw1 --list-sas) || lab_fail "swanctl --list-sas failed"
    lab_log "swanctl --list-sas lists $(swanctl_in gw1 --list-sas | grep -c ' ESTABLISHED') IKE SAs"
    stop_charon gw1
    # Again with its DoS thresholds raised and its IKE SA table sized: with the defaults a
    # one-address generator measures charon's cookie and half-open limits, not its IKE work.
    local tuned
    sed -i 's/^charon {/charon {\n    cookie_threshold = 1000000\n    cookie_threshold_ip = 1000000\n    block_threshold = 1000000\n    init_limit_half_open = 0\n    ikesa_table_size = 65536\n    ikesa_table_segments = 16/' "$d/strongswan.conf"
    start_charon gw1 "$d"
    tuned=$(_load charon-tuned "$(charon_pid gw1)")
    stop_charon gw1

    python3 - "$ours" "$theirs" "$show_ours" "$show_theirs" "$tuned" <<'PY' | tee "$LAB_RESULTS/bench-ike-responder.txt" >&2
import json, os, sys
o, t, u = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[5])
hz = os.sysconf("SC_CLK_TCK")
def cpu(x):  # the responder's CPU time per established IKE SA (with its child), ms
    return x["cpu_ticks"] * 1000 / hz / max(x["established"], 1)
print(f"bench-ike: responder IKE SAs/s (each with one child SA in the kernel), same generator, same VM run")
print(f"bench-ike: vpnd            {o['rate']:8.1f} /s  ({o['established']} of {o['count']} in {o['seconds']:.1f} s, {o['failed']} failed), CPU {cpu(o):.2f} ms/SA")
print(f"bench-ike: charon default  {t['rate']:8.1f} /s  ({t['established']} of {t['count']} in {t['seconds']:.1f} s, {t['failed']} failed), CPU {cpu(t):.2f} ms/SA")
print(f"bench-ike: charon tuned    {u['rate']:8.1f} /s  ({u['established']} of {u['count']} in {u['seconds']:.1f} s, {u['failed']} failed; cookie_threshold, cookie_threshold_ip, block_threshold 1000000, init_limit_half_open 0, ikesa_table_size 65536), CPU {cpu(u):.2f} ms/SA")
for name, x in (("default", t), ("tuned", u)):
    r = o['rate'] / x['rate'] if x['rate'] else float('inf')
    c = cpu(o) / cpu(x) if cpu(x) else float('inf')
    print(f"bench-ike: ratio vpnd/charon {name} = {r:.2f}x the rate (target > 1: {'MET' if r > 1 else 'NOT MET'}), {c:.2f}x the CPU per SA")
so, st = int(sys.argv[3]), int(sys.argv[4])
print(f"bench-show: listing {o['established']} IKE SAs: vpnctl show crypto session {so} ms, swanctl --list-sas {st} ms (median of 5): vpnctl takes {so / st if st else 0:.2f}x charon's time")
PY
}
