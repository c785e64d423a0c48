# shellcheck shell=bash
# integration/lib-xfrm.sh - scenarios that drive vpnd-xfrm directly through labtool
# (integration/labtool), with no IKE: both gateways get SAs keyed from their SPIs.
# Sourced by the 4x-xfrm-* scenarios after lib.sh.

LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}

# xfrm_install_pair ALG [labtool sa-pair options...] : SA pairs + policies between gw1
# (198.51.100.0/25) and peer1 (203.0.113.0/26), mirrored on both sides.
xfrm_install_pair() {
    local alg=$1
    shift
    local enc_gw1=() enc_peer=()
    local args=("$@") i
    for ((i = 0; i < ${#args[@]}; i++)); do
        if [[ ${args[i]} == --encap ]]; then
            local ports=${args[i + 1]}
            enc_gw1=(--encap "$ports")
            enc_peer=(--encap "${ports#*:}:${ports%%:*}")
            unset 'args[i]' 'args[i+1]'
        fi
    done
    # Plain routes to the far subnets: the kernel looks up a route before the policy, and
    # without the SAs these routes would carry the traffic in clear (ping_fail_check).
    ip -n gw1 route replace 203.0.113.0/26 via 192.0.2.2 dev t0
    ip -n peer1 route replace 198.51.100.0/25 via 192.0.2.1 dev t0
    ip netns exec gw1 "$LABTOOL" sa-pair --alg "$alg" --local 192.0.2.1 --remote 192.0.2.2 \
        --local-net 198.51.100.0/25 --remote-net 203.0.113.0/26 \
        --spi-out 0xc0010001 --spi-in 0xc0020001 "${enc_gw1[@]}" "${args[@]}" >&2 ||
        lab_fail "labtool sa-pair in gw1 failed"
    ip netns exec peer1 "$LABTOOL" sa-pair --alg "$alg" --local 192.0.2.2 --remote 192.0.2.1 \
        --local-net 203.0.113.0/26 --remote-net 198.51.100.0/25 \
        --spi-out 0xc0020001 --spi-in 0xc0010001 "${enc_peer[@]}" "${args[@]}" >&2 ||
        lab_fail "labtool sa-pair in peer1 failed"
}

# xfrm_compare_counters NS : every SA's bytes and packets from one vpnd-xfrm dump equal
# what `ip -s xfrm state` reports in NS; prints "SPI bytes packets" lines of ours.
xfrm_compare_counters() {
    local ns=$1 ours theirs
    ours=$(ip netns exec "$ns" "$LABTOOL" counters) || lab_fail "labtool counters in $ns failed"
    theirs=$(xfrm_counters "$ns")
    echo "$ours" >"$LAB_LOGDIR/$ns-labtool-counters.json"
    echo "$theirs" >"$LAB_LOGDIR/$ns-iproute2-counters.json"
    python3 - "$LAB_LOGDIR/$ns-labtool-counters.json" "$LAB_LOGDIR/$ns-iproute2-counters.json" <<'PY' ||
import json, sys
ours = {sa["id"]["spi"]: sa for sa in json.load(open(sys.argv[1]))}
theirs = {sa["spi_int"]: sa for sa in json.load(open(sys.argv[2]))}
if set(ours) != set(theirs):
    sys.exit(f"SPIs differ: vpnd-xfrm {sorted(map(hex, ours))} vs iproute2 {sorted(map(hex, theirs))}")
for spi, sa in ours.items():
    for f in ("bytes", "packets"):
        if sa[f] != theirs[spi][f]:
            sys.exit(f"SPI {spi:#x} {f}: vpnd-xfrm {sa[f]} vs iproute2 {theirs[spi][f]}")
    print(f"{spi:#010x} {sa['id']['src']}->{sa['id']['dst']} bytes={sa['bytes']} packets={sa['packets']}")
PY
        lab_fail "vpnd-xfrm counters in $ns differ from ip -s xfrm state"
}

# xfrm_sa_field NS SPI FIELD : FIELD of SPI from one labtool dump (jq-free).
xfrm_sa_field() {
    ip netns exec "$1" "$LABTOOL" counters | python3 -c '
import json, sys
spi, field = int(sys.argv[1], 0), sys.argv[2]
m = [sa for sa in json.load(sys.stdin) if sa["id"]["spi"] == spi]
print(m[0][field] if len(m) == 1 else "missing")' "$2" "$3"
}

# xfrm_pair_scenario ALG [sa-pair options] : install, ping 5 across, compare counters,
# check exact packet counts both ways, flush, check nothing of ours is left.
xfrm_pair_scenario() {
    xfrm_install_pair "$@"
    ping_ok host1 203.0.113.10 5
    local gw1_out=0xc0010001 gw1_in=0xc0020001
    xfrm_compare_counters gw1 >&2
    xfrm_compare_counters peer1 >&2
    # 5 echo requests out through gw1's outbound SA, 5 replies in through its inbound SA;
    # 84-byte IP packets (ping's 56-byte payload) as the kernel counts them.
    assert_eq 5 "$(xfrm_sa_field gw1 $gw1_out packets)" "gw1 outbound SA packets"
    assert_eq 5 "$(xfrm_sa_field gw1 $gw1_in packets)" "gw1 inbound SA packets"
    assert_eq 420 "$(xfrm_sa_field gw1 $gw1_out bytes)" "gw1 outbound SA bytes"
    assert_eq 420 "$(xfrm_sa_field peer1 $gw1_out bytes)" "peer1 inbound SA bytes"
    assert_eq 0 "$(xfrm_sa_field peer1 $gw1_out integrity_failed)" "peer1 integrity failures"
    local out
    out=$(ip netns exec gw1 "$LABTOOL" flush) || lab_fail "labtool flush failed"
    assert_eq "flushed 3 policies, 2 SAs" "$out" "flush of vpnd-owned state in gw1"
    assert_eq 0 "$(xfrm_sa_count gw1)" "SAs left in gw1 after flush"
    assert_eq 0 "$(ip -n gw1 xfrm policy | grep -c '^src' || true)" "policies left in gw1 after flush"
    ping_fail_check
}

# ping_fail_check : with gw1's policies gone but peer1's still there, a ping must fail
# (peer1 requires ESP on the way back): proves the tunnel, not plain routing, carried it.
ping_fail_check() {
    assert_eq 0 "$(ping_count host1 203.0.113.10 2)" "ping after gw1 flush (peer1 still requires ESP)"
}
