# shellcheck shell=bash
# 62-vpnd-vrf: two customers with the same subnets on one gateway (issue 13.2). peer1 (site
# A) and peer2 (site B) both protect 203.0.113.0/26, both talk to 198.51.100.0/25 behind
# gw1: host1 for A and host2 for B, with the same address. vpnd makes each peer route-based
# (ipsec1, ipsec2) and puts each XFRM interface in its ivrf (cust-a table 1001, cust-b table
# 1002), which it creates; vpnd's reverse routes put each site's subnet into its interface
# in its VRF's table (`ip route show proto 118 table N dev ipsecN`). Each inside host reaches
# only its own site: the peers' SA counters move only for their own customer's pings.
# `clear crypto session ivrf cust-a` clears site A only (issue 13.5): a new IKE SA with
# peer1, peer2's untouched; site A's route leaves with its child and comes back, site B's
# stays; the operator's route in table 1001 is never touched.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _in_packets NS : packets through NS's inbound SAs (from gw1).
_in_packets() { xfrm_counter "$1" 192.0.2.1 "$2" packets; }

_ike_spi() { swanctl_in "$1" --list-sas --ike site | sed -n 's/^site: #[0-9]*, ESTABLISHED, IKEv2, \([0-9a-f]*\)_i.*/\1/p' | head -1; }
_ike_spi_changed() { local s; s=$(_ike_spi "$1"); [[ -n $s && $s != "$2" ]]; }
_cleared() { _vpnctl --json clear crypto session "$@" | python3 -c 'import json, sys; print(json.load(sys.stdin)["cleared"])'; }

# _routes TABLE DEV : vpnd's routes in TABLE into DEV, "dst metric" per line.
_routes() {
    ip -n gw1 -j route show table "$1" proto 118 dev "$2" |
        python3 -c 'import json, sys
for r in json.load(sys.stdin): print(r["dst"], r.get("metric", 0))'
}
_both_routes() { [[ $(_routes 1001 ipsec1) == "203.0.113.0/26 0" && $(_routes 1002 ipsec2) == "203.0.113.0/26 0" ]]; }

_master() { ip -n gw1 -j link show "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)[0].get("master", "-"))'; }

scenario_run() {
    local d1=$LAB_WORKDIR/charon-peer1 d2=$LAB_WORKDIR/charon-peer2 conf=$LAB_WORKDIR/vpnd.yaml
    # Site B gets site A's subnet; gw1 gets a second inside link (host2) with host1's address.
    ip -n peer2 addr flush dev i0 && ip -n peer2 addr add 203.0.113.1/26 dev i0
    ip -n hostp2 addr flush dev e0 && ip -n hostp2 addr add 203.0.113.10/26 dev e0
    ip -n hostp2 route replace default via 203.0.113.1
    ip netns add host2 && echo host2 >>"$LAB_NS_FILE"
    ip link add name i1 netns gw1 type veth peer name e0 netns host2
    ip -n host2 link set lo up && ip -n host2 link set e0 up
    ip -n host2 addr add 198.51.100.10/25 dev e0 && ip -n host2 route add default via 198.51.100.1

    local site
    for site in 1 2; do
        local psk=lab-secret-0123456789
        [[ $site == 2 ]] && psk=lab-secret-peer2
        write_swanctl_conf "$LAB_WORKDIR/charon-peer$site" name=site local_addr=192.0.2.$((site + 1)) remote_addr=192.0.2.1 \
            local_id=peer$site.lab.example remote_id=gw1.lab.example psk=$psk \
            local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    done
    start_charon peer1 "$d1"
    start_charon peer2 "$d2"
    cat >"$conf" <<YAML
local:
  addresses: [192.0.2.1]
log:
  level: debug
control:
  socket: $LAB_WORKDIR/vpnd.sock
ike_defaults:
  proposals: [aes256gcm16-prfsha256-x25519]
vrfs:
  cust-a: 1001
  cust-b: 1002
peers:
  - name: site-a
    address: 192.0.2.2
    local_id: "@gw1.lab.example"
    remote_id: "@peer1.lab.example"
    psk: "lab-secret-0123456789"
    start: initiate
    interface: ipsec1
    if_id: 1
    ivrf: cust-a
    reverse_route: true
    children:
      - { name: lan, local_ts: [198.51.100.0/25], remote_ts: [203.0.113.0/26] }
  - name: site-b
    address: 192.0.2.3
    local_id: "@gw1.lab.example"
    remote_id: "@peer2.lab.example"
    psk: "lab-secret-peer2"
    start: initiate
    interface: ipsec2
    if_id: 2
    ivrf: cust-b
    reverse_route: true
    children:
      - { name: lan, local_ts: [198.51.100.0/25], remote_ts: [203.0.113.0/26] }
YAML
    start_vpnd gw1 "$conf"
    ip -n gw1 -d link show type vrf >"$LAB_LOGDIR/vrfs.txt"
    assert_contains "$LAB_LOGDIR/vrfs.txt" 'vrf table 1001' "VRF cust-a with table 1001"
    assert_contains "$LAB_LOGDIR/vrfs.txt" 'vrf table 1002' "VRF cust-b with table 1002"
    assert_eq cust-a "$(_master ipsec1)" "ipsec1 in cust-a"
    assert_eq cust-b "$(_master ipsec2)" "ipsec2 in cust-b"
    # The customers' inside links in their VRFs; an operator's route in cust-a's table.
    ip -n gw1 link set i0 master cust-a
    ip -n gw1 link set i1 master cust-b && ip -n gw1 link set i1 up
    ip -n gw1 addr add 198.51.100.1/25 dev i1
    ip -n gw1 route add 192.0.2.128/25 dev ipsec1 table 1001 metric 7
    wait_ike_established peer1 site 40
    wait_ike_established peer2 site 40
    lab_wait 10 "an SA pair with each site" bash -c "[[ \$(ip -n gw1 xfrm state | grep -c 'if_id 0x1') == 2 && \$(ip -n gw1 xfrm state | grep -c 'if_id 0x2') == 2 ]]"
    lab_wait 10 "vpnd's route into each site's interface, in its VRF's table" _both_routes
    assert_eq "" "$(ip -n gw1 route show table main proto 118)" "no vpnd route in the main table"

    local a0 b0 a1 b1
    a0=$(_in_packets peer1 192.0.2.2) b0=$(_in_packets peer2 192.0.2.3)
    ping_ok host1 203.0.113.10 5
    a1=$(_in_packets peer1 192.0.2.2) b1=$(_in_packets peer2 192.0.2.3)
    assert_eq $((a0 + 5)) "$a1" "customer A's pings reach site A"
    assert_eq "$b0" "$b1" "and not site B"
    ping_ok host2 203.0.113.10 4
    assert_eq "$a1" "$(_in_packets peer1 192.0.2.2)" "customer B's pings do not reach site A"
    assert_eq $((b1 + 4)) "$(_in_packets peer2 192.0.2.3)" "customer B's pings reach site B"

    _vpnctl show crypto session detail >"$LAB_LOGDIR/show-detail.txt" || lab_fail "show failed"
    assert_contains "$LAB_LOGDIR/show-detail.txt" '^Interface: ipsec2$' "show: site B's interface"
    assert_contains "$LAB_LOGDIR/show-detail.txt" 'ivrf: cust-b' "show: site B's ivrf"

    local a_spi b_spi
    a_spi=$(_ike_spi peer1) b_spi=$(_ike_spi peer2)
    [[ -n $a_spi && -n $b_spi ]] || lab_fail "no IKE SPIs from swanctl"
    local mon=$LAB_LOGDIR/route-monitor.txt monitor
    ip -n gw1 monitor route >"$mon" 2>&1 &
    monitor=$!
    sleep 0.5
    assert_eq 1 "$(_cleared ivrf cust-a)" "clear crypto session ivrf cust-a: one session"
    lab_wait 60 "site A back with a new IKE SA" _ike_spi_changed peer1 "$a_spi"
    assert_eq "$b_spi" "$(_ike_spi peer2)" "site B's IKE SA untouched by the clear of cust-a"
    lab_wait 10 "site A's SA pair again" bash -c "[[ \$(ip -n gw1 xfrm state | grep -c 'if_id 0x1') == 2 ]]"
    lab_wait 10 "both routes again" _both_routes
    kill "$monitor" 2>/dev/null || true
    wait "$monitor" 2>/dev/null || true
    assert_contains "$mon" '^Deleted 203\.0\.113\.0/26 dev ipsec1 table 1001 proto 118' "the clear removed site A's route"
    assert_not_contains "$mon" 'ipsec2' "site B's route untouched by the clear of cust-a"
    ping_ok host1 203.0.113.10 3
    ping_ok host2 203.0.113.10 2
    stop_vpnd gw1
    assert_eq "" "$(ip -n gw1 route show table all proto 118)" "no vpnd route after stop"
    assert_eq 1 "$(ip -n gw1 route show table 1001 192.0.2.128/25 | grep -c 'dev ipsec1 .*metric 7')" "the operator's route in table 1001 untouched"
}
