# shellcheck shell=bash
# 59-vpnd-reverse-route: IOS `reverse-route` (issue 13.4). gw1 has no route to the remote
# subnet and no default route: vpnd's own route (protocol 118, via the peer's way, our inner
# address as source) carries host1's and gw1's own traffic into the tunnel while the child
# is up; it goes with the child (clear) and at stop, comes back with the next child, and an
# operator's route vpnd did not install is never touched.
# Then the same peer route-based (ipsec1) in ivrf cust-a (table 1001), with a metric and
# remote_peer: the route to the remote subnet is `dev ipsec1` in table 1001, the host route
# to the peer goes its way in the main table; host1 (its link in cust-a) reaches hostp1.
# Reloads change the metric (the route replaced, the SAs the same), turn the routes off
# and on again; a clear removes them (the kernel's route events) and the next child brings
# them back; at stop they go; the operator's route in table 1001 is never touched.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _vpnd_routes : vpnd's routes in gw1's main table, one "dst gateway dev prefsrc" per line.
_vpnd_routes() {
    ip -n gw1 -j route show table main proto 118 |
        python3 -c 'import json, sys
for r in json.load(sys.stdin): print(r["dst"], r.get("gateway", "-"), r["dev"], r.get("prefsrc", "-"))'
}

_has_route() { [[ $(_vpnd_routes) == "203.0.113.0/26 - t0 198.51.100.1" ]]; }
_no_route() { [[ -z $(_vpnd_routes) ]]; }

# _rb_routes : vpnd's routes into ipsec1 in table 1001, then its routes in the main table,
# "dst dev metric" each, one line.
_rb_routes() {
    local t
    for t in 1001 main; do
        ip -n gw1 -j route show table "$t" proto 118 |
            python3 -c 'import json, sys
print(" ".join(sorted("%s@%s@%s" % (r["dst"], r["dev"], r.get("metric", 0)) for r in json.load(sys.stdin))))'
    done | paste -sd '|'
}
_rb_routes_are() { [[ $(_rb_routes) == "$1" ]]; }
_spis() { ip -n gw1 xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' '; }
_reload() {
    local out=$LAB_LOGDIR/reload-$1.json
    _vpnctl --json reload >"$out" || lab_fail "vpnctl reload failed: $(cat "$out")"
    python3 -c 'import json, sys; r = json.load(open(sys.argv[1]))["reload"]; print(r["applied"], r["renegotiated"], [u["fields"] for u in r["updated"]])' "$out"
}

# The route-based half: peer1 through ipsec1 in VRF cust-a.
_route_based() {
    local conf=$LAB_WORKDIR/vpnd.yaml spis mon=$LAB_LOGDIR/route-monitor.txt
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-policy.log"
    write_vpnd_conf "$conf" reverse_route="{ metric: 5, remote_peer: true }"
    sed -i 's/^    start: initiate$/    start: initiate\n    interface: ipsec1\n    if_id: 1\n    ivrf: cust-a/' "$conf"
    printf 'vrfs:\n  cust-a: 1001\n' >>"$conf"
    grep -q 'ivrf: cust-a' "$conf" || lab_fail "config edit"
    start_vpnd gw1 "$conf"
    # host1's link into the customer's VRF; the operator's own route in its table.
    ip -n gw1 link set i0 master cust-a
    ip -n gw1 route add 192.0.2.128/25 dev ipsec1 table 1001 metric 7
    wait_ike_established peer1 site 40
    local want="203.0.113.0/26@ipsec1@5|192.0.2.2@t0@5"
    lab_wait 10 "vpnd's routes: into ipsec1 in table 1001, the peer's in main" _rb_routes_are "$want"
    lab_log "vpnd's routes: $(_rb_routes)"
    assert_eq "" "$(ip -n gw1 route show default table 1001)" "no default route in table 1001"
    ping_ok host1 203.0.113.10 3
    spis=$(_spis)

    lab_log "== reload: metric 9 (replaced in place, same SAs)"
    sed -i 's/metric: 5,/metric: 9,/' "$conf"
    assert_eq "True [] [['reverse_route']]" "$(_reload metric)" "the reload updated reverse_route only"
    lab_wait 10 "the routes with metric 9" _rb_routes_are "203.0.113.0/26@ipsec1@9|192.0.2.2@t0@9"
    assert_eq "$spis" "$(_spis)" "the SAs untouched by the reload"
    ping_ok host1 203.0.113.10 2
    lab_log "== reload: reverse_route off, then on again"
    cp "$conf" "$conf.on"
    sed -i '/^    reverse_route: /d' "$conf"
    assert_eq "True [] [['reverse_route']]" "$(_reload off)" "the reload turned reverse_route off"
    lab_wait 10 "no vpnd route" _rb_routes_are "|"
    assert_eq 0 "$(ping_count host1 203.0.113.10 2)" "no route, no ping"
    cp "$conf.on" "$conf"
    assert_eq "True [] [['reverse_route']]" "$(_reload on)" "the reload turned reverse_route on"
    lab_wait 10 "the routes back" _rb_routes_are "203.0.113.0/26@ipsec1@9|192.0.2.2@t0@9"
    assert_eq "$spis" "$(_spis)" "the SAs untouched by the reloads"
    ping_ok host1 203.0.113.10 2

    lab_log "== clear: the routes leave with the child, come back with the next"
    ip -n gw1 monitor route >"$mon" 2>&1 &
    local monitor=$!
    sleep 0.5
    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "clear failed"
    lab_wait 30 "vpnd brought peer1 back" bash -c "[[ \$(grep -c 'Crypto session is UP' '$LAB_LOGDIR/vpnd-gw1.log') -ge 2 ]]"
    lab_wait 10 "the routes back with the new child" _rb_routes_are "203.0.113.0/26@ipsec1@9|192.0.2.2@t0@9"
    kill "$monitor" 2>/dev/null || true
    wait "$monitor" 2>/dev/null || true
    assert_contains "$mon" '^Deleted 203\.0\.113\.0/26 dev ipsec1 table 1001 proto 118' "the clear removed the route in table 1001"
    assert_contains "$mon" '^203\.0\.113\.0/26 dev ipsec1 table 1001 proto 118' "the next child added it again"
    ping_ok host1 203.0.113.10 2

    stop_vpnd gw1
    assert_eq "|" "$(_rb_routes)" "no vpnd route after stop"
    assert_eq 1 "$(ip -n gw1 route show table 1001 192.0.2.128/25 | grep -c 'dev ipsec1 .*metric 7')" "the operator's route in table 1001 untouched"
}

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d"
    # An operator's route (a documentation prefix not in any flow): never vpnd's to touch.
    ip -n gw1 route add 192.0.2.128/25 dev t0 metric 7
    write_vpnd_conf "$conf" reverse_route=true
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    lab_wait 10 "vpnd's route to the remote subnet" _has_route
    lab_log "vpnd's routes: $(_vpnd_routes)"
    assert_eq "" "$(ip -n gw1 route show default)" "gw1 has no default route"
    ping_ok host1 203.0.113.10 5
    # gw1's own traffic to the remote subnet leaves from its inner address, protected.
    ping_ok gw1 203.0.113.10 3

    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "clear failed"
    # The static peer comes straight back: the route goes with the old child and returns.
    lab_wait 30 "vpnd brought peer1 back" bash -c "[[ \$(grep -c 'Crypto session is UP' '$LAB_LOGDIR/vpnd-gw1.log') -ge 2 ]]"
    lab_wait 10 "the route is back with the new child" _has_route
    assert_ge 1 "$(grep -c 'reverse routes installed' "$LAB_LOGDIR/vpnd-gw1.log")" "routes installed"
    ping_ok host1 203.0.113.10 3

    stop_vpnd gw1
    lab_wait 5 "no vpnd route after stop" _no_route
    assert_eq 1 "$(ip -n gw1 route show 192.0.2.128/25 | grep -c 'dev t0 .*metric 7')" "the operator's route untouched"
    # Fail closed still: without vpnd's route and SAs, host1's traffic goes nowhere in clear.
    assert_eq 0 "$(ping_count host1 203.0.113.10 2)" "no ping while vpnd is stopped"

    _route_based
}
