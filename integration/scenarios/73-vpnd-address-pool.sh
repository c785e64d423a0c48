# shellcheck shell=bash
# 73-vpnd-address-pool: remote-access clients with addresses from a pool (issue 12 items 3,
# 4, 6; RFC 7296 3.15). Three strongSwan road warriors (PSK, vips = 0.0.0.0) in peer1, peer2
# and peer3 (192.0.2.2-4), identities joe@cclient, ann@cclient, bob@cclient, connect to vpnd's
# profile "cclient" (address any, remote_id '*@cclient', group cclient, pool addressA).
# A) pool 203.0.113.200-202: three different addresses (charon's virtual IPs = vpnd's
#    leases = Framed-IP-Address of each Start, with isakmp-group-id=cclient and User-Name),
#    each client pings host1 from its address; `show crypto session username`, brief's
#    Username column, detail's Assigned address; one client leaves (charon terminates), one
#    is cleared (`clear crypto session username`): `show ip local pool --json` counts both
#    leases free again.
# B) vpnd restarted with a pool of two (203.0.113.200-201): the third client is refused
#    clearly (charon logs INTERNAL_ADDRESS_FAILURE and has no virtual IP; vpnd logs the pool
#    by name and counts the refusal), the other two still ping.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

CLIENTS=(peer1 peer2 peer3)
declare -A USER=([peer1]=joe@cclient [peer2]=ann@cclient [peer3]=bob@cclient)
declare -A ADDR=([peer1]=192.0.2.2 [peer2]=192.0.2.3 [peer3]=192.0.2.4)

# _leased_routes : the destinations of vpnd's routes in gw1's main table, sorted, one line.
_leased_routes() {
    ip -n gw1 -j route show table main proto 118 |
        python3 -c 'import json, sys; print(" ".join(sorted(r["dst"] for r in json.load(sys.stdin))), end=" ")'
}

# _pool FIELD : one figure of pool addressA from `show ip local pool --json`.
_pool() {
    _vpnctl --json show ip local pool | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["pools"] if p["name"] == "addressA"]
print(p[0][sys.argv[1]] if p else "no-pool")' "$1"
}

# _session_of USER FIELD : FIELD of the one session `show crypto session username USER` lists.
_session_of() {
    _vpnctl --json show crypto session username "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print(s[0].get(sys.argv[1]) if len(s) == 1 else "sessions:%d" % len(s))' "$2"
}

_vpnd_conf() {
    local last=$1 journal=$LAB_WORKDIR/acct/accounting.journal
    cat >"$LAB_WORKDIR/vpnd.yaml" <<YAML
local:
  addresses: [192.0.2.1]
log:
  level: debug
control:
  socket: $LAB_WORKDIR/vpnd.sock
ike_defaults:
  proposals: [aes256gcm16-prfsha256-x25519]
  retransmit: { timeout: 1s, base: 1.5, tries: 3 }
pools:
  addressA: { begin: 203.0.113.200, end: $last }
peers:
  - name: cclient
    address: any
    description: "remote-access users of group cclient"
    local_id: "@gw1.lab.example"
    remote_id: "*@cclient"
    psk: "lab-secret-0123456789"
    start: respond
    reverse_route: true
    group: cclient
    accounting: lab
    pool: addressA
    dns: [198.51.100.53]
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [0.0.0.0/0]
$(vpnd_accounting_yaml "$journal")
YAML
}

_connect() {
    local ns=$1
    swanctl_in "$ns" --initiate --child rw --timeout 30 >"$LAB_LOGDIR/initiate-$ns-$2.log" 2>&1
}

scenario_run() {
    lab_ns_add peer3
    lab_transport_attach peer3 192.0.2.4/24
    lab_topology_apply
    ip -n net link set peer3 master br0 up || lab_fail "peer3's bridge port"
    start_freeradius radius
    local ns d
    for ns in "${CLIENTS[@]}"; do
        d=$LAB_WORKDIR/charon-$ns
        # A road warrior: its inner address comes from the gateway (vips), its TSi is that
        # address (dynamic).
        write_swanctl_conf "$d" name=rw local_addr="${ADDR[$ns]}" remote_addr=192.0.2.1 \
            local_id="${USER[$ns]}" remote_id=gw1.lab.example \
            local_ts=dynamic remote_ts=198.51.100.0/25 ike_extra="vips = 0.0.0.0"
        start_charon "$ns" "$d"
    done
    _vpnd_conf 203.0.113.202
    start_vpnd gw1 "$LAB_WORKDIR/vpnd.yaml"

    lab_log "== A: three clients, a pool of three"
    for ns in "${CLIENTS[@]}"; do
        _connect "$ns" a || lab_fail "${USER[$ns]} could not connect (initiate-$ns-a.log)"
    done
    local -A vip=()
    local seen=" " u a
    for ns in "${CLIENTS[@]}"; do
        u=${USER[$ns]}
        a=$(_session_of "$u" assigned_ip)
        [[ $a =~ ^203\.0\.113\.20[0-2]$ ]] || lab_fail "$u: assigned address '$a' (show crypto session username)"
        [[ $seen != *" $a "* ]] || lab_fail "$a given twice"
        seen+="$a "
        vip[$ns]=$a
        swanctl_in "$ns" --list-sas >"$LAB_LOGDIR/list-sas-$ns.txt"
        assert_contains "$LAB_LOGDIR/list-sas-$ns.txt" "local  '$u' @ .*\\[$a\\]|$a" "charon in $ns has $a"
        ip -n "$ns" addr show >"$LAB_LOGDIR/addr-$ns.txt"
        assert_contains "$LAB_LOGDIR/addr-$ns.txt" "inet $a/32" "charon installed its virtual IP $a in $ns"
        # The child's selectors: the client's address only (RFC 7296 2.9).
        assert_contains "$LAB_LOGDIR/list-sas-$ns.txt" "local  $a/32" "$u's TSi narrowed to $a/32"
        ip netns exec "$ns" ping -n -c 3 -W 2 -I "$a" 198.51.100.10 >"$LAB_LOGDIR/ping-$ns.log" 2>&1 ||
            lab_fail "$u could not ping host1 from $a (ping-$ns.log)"
    done
    assert_eq 3 "$(_pool in_use)" "three leases"
    assert_eq 0 "$(_pool free)" "pool addressA full"
    ip -n gw1 xfrm policy >"$LAB_LOGDIR/gw1-policies.txt"
    for ns in "${CLIENTS[@]}"; do
        assert_contains "$LAB_LOGDIR/gw1-policies.txt" "src 198\\.51\\.100\\.0/25 dst ${vip[$ns]//./\\.}/32" "gw1's policy to ${vip[$ns]}"
    done
    # vpnd's reverse routes: a host route to each leased address (gw1 has no other).
    assert_eq "$(printf '%s\n' "${vip[@]}" | sort | tr '\n' ' ')" "$(_leased_routes)" "a reverse route to each client's address"

    _vpnctl show crypto session brief >"$LAB_LOGDIR/show-brief.txt"
    _vpnctl show crypto session detail >"$LAB_LOGDIR/show-detail.txt"
    _vpnctl show ip local pool >"$LAB_LOGDIR/show-pool.txt"
    cat "$LAB_LOGDIR/show-brief.txt" "$LAB_LOGDIR/show-pool.txt" >&2
    assert_contains "$LAB_LOGDIR/show-brief.txt" '^192\.0\.2\.2 +[^ ]+ +joe@cclient +joe@cclient ' "brief: Username joe@cclient"
    assert_contains "$LAB_LOGDIR/show-detail.txt" "^  Assigned address: ${vip[peer2]//./\\.}$" "detail: Assigned address"
    assert_contains "$LAB_LOGDIR/show-pool.txt" '^ addressA +203\.0\.113\.200 +203\.0\.113\.202 +0 +3 +0$' "show ip local pool"

    # Accounting: a Start per client with its lease, group and user.
    lab_wait 20 "three Starts" output_is 3 radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start --count
    for ns in "${CLIENTS[@]}"; do
        u=${USER[$ns]}
        assert_eq 1 "$(radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start \
            --where User-Name="$u" --where Framed-IP-Address="${vip[$ns]}" \
            --where Cisco-AVPair=isakmp-group-id=cclient --count)" \
            "Start of $u: Framed-IP-Address ${vip[$ns]}, isakmp-group-id=cclient"
    done

    lab_log "== one client leaves, one is cleared: their leases are free"
    swanctl_in peer1 --terminate --ike rw >"$LAB_LOGDIR/terminate-peer1.log" 2>&1 || lab_fail "terminate in peer1"
    lab_wait 20 "joe's lease freed" output_is 2 _pool in_use
    _vpnctl clear crypto session username ann@cclient || lab_fail "clear crypto session username"
    lab_wait 20 "ann's lease freed" output_is 1 _pool in_use
    assert_eq 2 "$(_pool free)" "two free addresses"
    assert_eq "sessions:0" "$(_session_of joe@cclient assigned_ip)" "joe's session gone"
    assert_eq "${vip[peer3]}" "$(_session_of bob@cclient assigned_ip)" "bob untouched"
    lab_wait 10 "only bob's route left" output_is "${vip[peer3]} " _leased_routes
    lab_wait 20 "two Stops" output_is 2 radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Stop --count
    # Joe comes back: his old address again (it is free).
    _connect peer1 a2 || lab_fail "joe could not reconnect"
    assert_eq "${vip[peer1]}" "$(_session_of joe@cclient assigned_ip)" "joe got his address back"

    lab_log "== B: a pool of two, three clients"
    for ns in peer1 peer3; do
        swanctl_in "$ns" --terminate --ike rw >>"$LAB_LOGDIR/terminate-$ns.log" 2>&1 || true
    done
    lab_wait 20 "no sessions" output_is 0 _pool in_use
    stop_vpnd gw1
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-a.log"
    _vpnd_conf 203.0.113.201
    start_vpnd gw1 "$LAB_WORKDIR/vpnd.yaml"
    _connect peer1 b || lab_fail "joe could not connect to the pool of two"
    _connect peer2 b || lab_fail "ann could not connect to the pool of two"
    if _connect peer3 b; then
        lab_fail "bob connected with a child SA though the pool was full (initiate-peer3-b.log)"
    fi
    assert_eq 2 "$(_pool in_use)" "two leases"
    assert_eq 1 "$(_pool refused)" "one client refused, counted"
    assert_contains "$LAB_LOGDIR/charon-peer3.log" "INTERNAL_ADDRESS_FAILURE|N\(INT_ADDR_FAIL\)" "charon saw INTERNAL_ADDRESS_FAILURE"
    swanctl_in peer3 --list-sas >"$LAB_LOGDIR/list-sas-peer3-b.txt" 2>&1 || true
    ip -n peer3 addr show >"$LAB_LOGDIR/addr-peer3-b.txt"
    assert_not_contains "$LAB_LOGDIR/addr-peer3-b.txt" "inet 203\\.0\\.113\\.20" "bob has no virtual IP"
    vpnd_log_has gw1 "address pool 'addressA' is exhausted: no address for .*bob@cclient.*INTERNAL_ADDRESS_FAILURE" ||
        lab_fail "vpnd did not log the full pool by name"
    for ns in peer1 peer2; do
        a=$(_session_of "${USER[$ns]}" assigned_ip)
        ip netns exec "$ns" ping -n -c 2 -W 2 -I "$a" 198.51.100.10 >"$LAB_LOGDIR/ping-$ns-b.log" 2>&1 ||
            lab_fail "${USER[$ns]} could not ping from $a with the pool full"
    done
    stop_vpnd gw1
}
