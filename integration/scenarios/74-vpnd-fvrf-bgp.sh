# shellcheck shell=bash
# 74-vpnd-fvrf-bgp: a front-door VRF and a routing daemon over a route-based tunnel
# (issue 13.3 and its "done means"). gw1's uplink t0 is in the VRF "outside" (table 100):
# the main table has no route to the peer, so IKE works only through sockets bound to the
# VRF and ESP only because the XFRM interface's link is the VRF. The child proposes
# 0.0.0.0/0 both ways; BIRD on gw1 and on peer1 (strongSwan with its own XFRM interface)
# run eBGP across the tunnel and learn each other's inside subnet: host1's pings to hostp1
# follow the learnt route. `clear crypto session fvrf` selects by that VRF. Then the same
# with the IKE sockets on the wildcard address (one set per VRF).
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _bird NS ASN ROUTER_ID NEIGHBOR NEIGHBOR_ASN : BIRD 2 in NS, eBGP to NEIGHBOR over the
# tunnel, exporting the connected route of i0 and installing what it learns in the kernel.
_bird() {
    local ns=$1 conf=$LAB_WORKDIR/bird-$1.conf
    cat >"$conf" <<CONF
router id $3;
log "$LAB_LOGDIR/bird-$ns.log" all;
protocol device { scan time 2; }
protocol direct { ipv4; interface "i0"; }
protocol kernel { ipv4 { import none; export where source = RTS_BGP; }; }
protocol bgp tunnel {
    local $3 as $2;
    neighbor $4 as $5;
    connect retry time 2;
    ipv4 { import all; export where source = RTS_DEVICE; };
}
CONF
    ip netns exec "$ns" bird -f -c "$conf" -s "$LAB_WORKDIR/bird-$ns.ctl" -P "$LAB_WORKDIR/bird-$ns.pid" \
        >"$LAB_LOGDIR/bird-$ns.stdout" 2>&1 &
    echo $! >"$LAB_WORKDIR/bird-$ns.pid2"
}

_bgp_established() { ip netns exec "$1" birdc -s "$LAB_WORKDIR/bird-$1.ctl" show protocols tunnel | grep -q Established; }
_learnt() { ip -n "$1" route show "$2" proto bird | grep -q "dev ipsec1"; }
_session_field() {
    _vpnctl --json show crypto session detail |
        python3 -c 'import json, sys; s = json.load(sys.stdin)["sessions"]; x = s[0] if s else {}; print(x.get(sys.argv[1], x.get("key", {}).get(sys.argv[1])))' "$1"
}
_ike_spi() { swanctl_in peer1 --list-sas --ike site | sed -n 's/^site: #[0-9]*, ESTABLISHED, IKEv2, \([0-9a-f]*\)_i.*/\1/p' | head -1; }
_ike_spi_changed() { local s; s=$(_ike_spi); [[ -n $s && $s != "$1" ]]; }
_cleared() { _vpnctl --json clear crypto session "$@" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cleared"])'; }

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    # The front door: t0 (and with it the connected route to the peers) into VRF outside.
    ip -n gw1 link add outside type vrf table 100
    ip -n gw1 link set outside up
    ip -n gw1 link set t0 master outside
    if ip -n gw1 route get 192.0.2.2 >/dev/null 2>&1; then lab_fail "the main table still reaches the peer"; fi
    ip -n gw1 route get 192.0.2.2 vrf outside >/dev/null || lab_fail "VRF outside does not reach the peer"

    # peer1: strongSwan route-based too (its own XFRM interface, if_id 7, no routes of its own).
    ip -n peer1 link add ipsec1 type xfrm dev t0 if_id 7
    ip -n peer1 addr add 198.51.100.250/30 dev ipsec1
    ip -n peer1 link set ipsec1 up
    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=0.0.0.0/0 remote_ts=0.0.0.0/0 start_action=none \
        child_extra="if_id_in = 7;if_id_out = 7"
    write_strongswan_conf "$d" "$LAB_LOGDIR/charon-peer1.log"
    sed -i 's/^charon {$/charon {\n    install_routes = no/' "$d/strongswan.conf"
    start_charon peer1 "$d"

    write_vpnd_conf "$conf" local_ts=0.0.0.0/0 remote_ts=0.0.0.0/0 reverse_route=
    sed -i 's/^    start: initiate$/    start: initiate\n    interface: ipsec1\n    if_id: 7\n    fvrf: outside/' "$conf"
    printf 'vrfs:\n  outside: 100\n' >>"$conf"
    grep -q 'fvrf: outside' "$conf" || lab_fail "config edit"
    start_vpnd gw1 "$conf"
    ip -n gw1 -d link show ipsec1 >"$LAB_LOGDIR/ipsec1.txt" || lab_fail "vpnd did not create ipsec1"
    assert_contains "$LAB_LOGDIR/ipsec1.txt" '@outside:' "ipsec1's link is the VRF outside"
    ip -n gw1 addr add 198.51.100.249/30 dev ipsec1
    wait_ike_established peer1 site 40
    assert_eq outside "$(_session_field fvrf)" "show crypto session: fvrf"
    assert_eq ipsec1 "$(_session_field interface)" "show crypto session: Interface"

    _bird gw1 64512 198.51.100.249 198.51.100.250 64513
    _bird peer1 64513 198.51.100.250 198.51.100.249 64512
    lab_wait 40 "BGP established across the tunnel" _bgp_established gw1
    lab_wait 20 "gw1 learnt 203.0.113.0/26 via ipsec1" _learnt gw1 203.0.113.0/26
    lab_wait 20 "peer1 learnt 198.51.100.0/25 via ipsec1" _learnt peer1 198.51.100.0/25
    ip -n gw1 route show proto bird >"$LAB_LOGDIR/gw1-bird-routes.txt"
    start_capture gw1 t0 esp
    ping_ok host1 203.0.113.10 5
    # tcpdump reads the capture ring a little behind the wire.
    sleep 1
    local pcap
    pcap=$(stop_capture gw1 t0)
    assert_ge 10 "$(pcap_count "$pcap" esp)" "the pings (and BGP) as ESP on the uplink in the VRF"

    # clear selects by the real VRF.
    local before
    before=$(_ike_spi)
    [[ -n $before ]] || lab_fail "no IKE SPI from swanctl"
    assert_eq 0 "$(_cleared fvrf inside)" "clear fvrf inside: nothing"
    assert_eq "$before" "$(_ike_spi)" "the IKE SA survived a clear of another VRF"
    assert_eq 1 "$(_cleared fvrf outside)" "clear fvrf outside: the session"
    lab_wait 60 "a new IKE SA after the clear" _ike_spi_changed "$before"
    lab_wait 40 "BGP re-established" _bgp_established gw1
    lab_wait 20 "route learnt again" _learnt gw1 203.0.113.0/26
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1

    # The wildcard: a socket set in the main table and one bound to the VRF.
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-run1.log"
    sed -i '/^  addresses: /d; /^local:$/d' "$conf"
    start_vpnd gw1 "$conf"
    ip netns exec gw1 ss -Hunl >"$LAB_LOGDIR/gw1-sockets.txt"
    assert_contains "$LAB_LOGDIR/gw1-sockets.txt" '0.0.0.0%outside:500' "a wildcard IKE socket in VRF outside"
    wait_ike_established peer1 site 40
    lab_wait 40 "BGP over the wildcard run" _bgp_established gw1
    lab_wait 20 "route learnt in the wildcard run" _learnt gw1 203.0.113.0/26
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1
    for ns in gw1 peer1; do lab_stop_pid "$(cat "$LAB_WORKDIR/bird-$ns.pid2")" "bird in $ns" 10; done
}
