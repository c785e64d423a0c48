# shellcheck shell=bash
# 59-vpnd-reverse-route: IOS `reverse-route` (issue 13.4). gw1 has no route to the remote
# subnet and no default route: vpnd's own route (protocol 118, via the peer's way, our inner
# address as source) carries host1's and gw1's own traffic into the tunnel while the child
# is up; it goes with the child (clear) and at stop, comes back with the next child, and an
# operator's route vpnd did not install is never touched.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

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

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d"
    # An operator's route (a documentation prefix not in any flow): never vpnd's to touch.
    ip -n gw1 route add 192.0.2.128/25 dev t0 metric 7
    write_vpnd_conf "$conf" reverse_route=true
    ip -n gw1 route del default 2>/dev/null || true
    LAB_NO_DEFAULT_ROUTE=1 start_vpnd gw1 "$conf"
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
}
