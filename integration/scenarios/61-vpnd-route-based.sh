# shellcheck shell=bash
# 61-vpnd-route-based: a route-based peer (issue 13.1): vpnd creates the XFRM interface
# ipsec1 (if_id 7), its child proposes 0.0.0.0/0 both ways (charon narrows it), its SAs and
# policies carry the if_id, and the routing table decides what enters the tunnel: vpnd's
# reverse route into ipsec1 (protocol 118, to the narrowed remote selector) carries host1's
# pings. `show crypto session` names ipsec1 as the Interface. vpnd stopped: the interface
# stays, the route goes; vpnd started again uses the interface; `vpnd --flush` removes it.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _tx_packets IFACE : packets sent through IFACE in gw1.
_tx_packets() { ip -n gw1 -j -s link show "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["stats64"]["tx"]["packets"])'; }

_two_sas_with_if_id() { [[ $(ip -n gw1 xfrm state | grep -c 'if_id 0x7') == 2 ]]; }
# _vpnd_routes : vpnd's routes into ipsec1 in the main table, "dst metric" per line.
_vpnd_routes() {
    ip -n gw1 -j route show table main proto 118 dev ipsec1 |
        python3 -c 'import json, sys
for r in json.load(sys.stdin): print(r["dst"], r.get("metric", 0))'
}
_has_route() { [[ $(_vpnd_routes) == "203.0.113.0/26 0" ]]; }

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d"
    write_vpnd_conf "$conf" local_ts=0.0.0.0/0 remote_ts=0.0.0.0/0
    sed -i 's/^    start: initiate$/    start: initiate\n    interface: ipsec1\n    if_id: 7/' "$conf"
    grep -q 'if_id: 7' "$conf" || lab_fail "config edit"
    start_vpnd gw1 "$conf"
    ip -n gw1 -d link show ipsec1 >"$LAB_LOGDIR/ipsec1.txt" || lab_fail "vpnd did not create ipsec1"
    assert_contains "$LAB_LOGDIR/ipsec1.txt" 'xfrm if_id 0x7' "ipsec1 is an XFRM interface with if_id 7"
    assert_contains "$LAB_LOGDIR/ipsec1.txt" 'alias vpnd' "ipsec1 marked as vpnd's"
    wait_ike_established peer1 site 40
    lab_wait 10 "both SAs carry if_id 7" _two_sas_with_if_id
    lab_wait 10 "vpnd's route into ipsec1" _has_route
    local before
    before=$(_tx_packets ipsec1)
    ping_ok host1 203.0.113.10 5
    assert_ge $((before + 5)) "$(_tx_packets ipsec1)" "packets routed through ipsec1"
    local json
    json=$(_vpnctl --json show crypto session detail) || lab_fail "vpnctl failed"
    assert_eq ipsec1 "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["sessions"][0]["interface"])' "$json")" "show crypto session: Interface"
    _vpnctl show crypto session detail >"$LAB_LOGDIR/show-detail.txt"
    assert_contains "$LAB_LOGDIR/show-detail.txt" '^Interface: ipsec1$' "show crypto session detail: Interface: ipsec1"

    stop_vpnd gw1
    ip -n gw1 link show ipsec1 >/dev/null 2>&1 || lab_fail "ipsec1 went away at stop (traffic routed into it would leave in clear)"
    assert_eq "" "$(_vpnd_routes)" "vpnd's route gone at stop"
    assert_eq 0 "$(ping_count host1 203.0.113.10 2)" "no ping while vpnd is stopped"

    # A fresh log: start_vpnd waits for "vpnd running" in it.
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-run1.log"
    start_vpnd gw1 "$conf"
    vpnd_log_has gw1 'using the existing XFRM interface' || lab_fail "vpnd did not reuse ipsec1"
    wait_ike_established peer1 site 40
    lab_wait 10 "both SAs carry if_id 7 again" _two_sas_with_if_id
    lab_wait 10 "vpnd's route into ipsec1 again" _has_route
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1

    ip netns exec gw1 "$VPND" -c "$conf" --flush >"$LAB_LOGDIR/flush.log" 2>&1 || lab_fail "vpnd --flush failed"
    assert_contains "$LAB_LOGDIR/flush.log" ' 1 interfaces owned by vpnd' "flush report"
    if ip -n gw1 link show ipsec1 >/dev/null 2>&1; then lab_fail "ipsec1 still there after --flush"; fi
}
