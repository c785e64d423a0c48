# shellcheck shell=bash
# 70-vpnd-reload: `vpnctl reload` while a ping runs over peer1 (strongSwan): the reload
# adds peer4, removes peer3 and changes peer2's description. peer1 loses no packet and
# keeps its SAs (same SPIs in gw1's kernel), peer4 comes up, peer3 is deleted on the
# strongSwan side too (swanctl --list-sas), peer2 keeps its SAs and shows the new
# description. A second reload changes peer4's IKE proposals: peer4 alone is Deleted and
# comes up again with new SPIs. Then a broken file is refused (vpnctl --json and SIGHUP)
# with its line and column, and everything keeps running. Last, a reload makes peer4
# route-based (an XFRM interface in a VRF, both made by the reload): peer4 alone is
# renegotiated onto it.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}

_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _peer NAME ADDR DESCRIPTION REMOTE_TS : one initiated peer of gw1's vpnd.yaml.
_peer() {
    cat <<YAML
  - name: $1
    address: $2
    description: "$3"
    local_id: "@gw1.lab.example"
    remote_id: "@$1.lab.example"
    psk: "lab-secret-0123456789"
    start: initiate
    reverse_route: true
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [$4]
YAML
}

# _conf FILE PEER_YAML... : gw1's vpnd.yaml with these peers.
_conf() {
    local f=$1
    shift
    {
        cat <<YAML
local:
  addresses: [192.0.2.1]
log:
  level: debug
control:
  socket: $LAB_WORKDIR/vpnd.sock
ike_defaults:
  proposals: [aes256gcm16-prfsha256-x25519]
  retransmit: { timeout: 1s, base: 1.5, tries: 3 }
peers:
YAML
        printf '%s\n' "$@"
    } >"$f"
}

# _spis ADDR : gw1's SPIs of the SAs to and from ADDR, sorted, one line.
_spis() {
    xfrm_counters gw1 | python3 -c '
import json, sys
a = sys.argv[1]
print(" ".join(sorted(s["spi"] for s in json.load(sys.stdin) if a in (s["src"], s["dst"]))))' "$1"
}

# _json EXPR : evaluate EXPR (python, `r` is the JSON on stdin); print a string as it is,
# anything else as JSON.
_json() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# _no_ike_sa NS : charon in NS holds no IKE SA of connection "site".
_no_ike_sa() { ! grep -q 'site: #' <<<"$(swanctl_in "$1" --list-sas 2>/dev/null)"; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml n
    # Two more strongSwan gateways on the transport network (no hosts behind them).
    lab_ns_add peer3
    lab_transport_attach peer3 192.0.2.4/24
    lab_ns_add peer4
    lab_transport_attach peer4 192.0.2.5/24
    lab_topology_apply
    # The bridge ports live in "net", which lab_topology_apply only configures when new.
    ip -n net link set peer3 master br0 up || lab_fail "peer3's bridge port"
    ip -n net link set peer4 master br0 up || lab_fail "peer4's bridge port"
    local -A ts=([peer1]=203.0.113.0/26 [peer2]=203.0.113.64/26 [peer3]=203.0.113.128/26 [peer4]=203.0.113.192/26)
    local -A addr=([peer1]=192.0.2.2 [peer2]=192.0.2.3 [peer3]=192.0.2.4 [peer4]=192.0.2.5)
    for n in peer1 peer2 peer3 peer4; do
        write_swanctl_conf "$LAB_WORKDIR/charon-$n" name=site local_addr="${addr[$n]}" remote_addr=192.0.2.1 \
            local_id="$n.lab.example" remote_id=gw1.lab.example \
            local_ts="${ts[$n]}" remote_ts=198.51.100.0/25 start_action=none
        start_charon "$n" "$LAB_WORKDIR/charon-$n"
    done

    _conf "$conf" "$(_peer peer1 192.0.2.2 "steady" "${ts[peer1]}")" \
        "$(_peer peer2 192.0.2.3 "before the reload" "${ts[peer2]}")" \
        "$(_peer peer3 192.0.2.4 "to be removed" "${ts[peer3]}")"
    start_vpnd gw1 "$conf"
    for n in peer1 peer2 peer3; do wait_ike_established "$n" site 40; done
    ping_ok host1 203.0.113.10 2
    local spis1 spis2
    spis1=$(_spis 192.0.2.2)
    spis2=$(_spis 192.0.2.3)
    assert_eq 2 "$(wc -w <<<"$spis1")" "peer1's SA pair in gw1"
    assert_eq 2 "$(wc -w <<<"$spis2")" "peer2's SA pair in gw1"
    lab_log "before the reload: peer1 $spis1, peer2 $spis2"

    # 60 pings at 0.2 s (12 s) over peer1, across the reload.
    ping_background host1 203.0.113.10 60 steady
    sleep 3
    _conf "$conf" "$(_peer peer1 192.0.2.2 "steady" "${ts[peer1]}")" \
        "$(_peer peer2 192.0.2.3 "after the reload" "${ts[peer2]}")" \
        "$(_peer peer4 192.0.2.5 "added by the reload" "${ts[peer4]}")"
    local out=$LAB_LOGDIR/reload.json
    _vpnctl --json reload >"$out" || lab_fail "vpnctl reload failed: $(cat "$out")"
    cat "$out" >&2
    assert_eq '[true, ["peer4"], ["peer3"], [], [{"name": "peer2", "fields": ["description"]}]]' \
        "$(_json '[r["reload"][k] for k in ("applied", "added", "removed", "renegotiated", "updated")]' <"$out")" \
        "what the reload did"

    # peer3: deleted with the peer, gone from both kernels.
    lab_wait 20 "charon in peer3 received vpnd's Delete" \
        grep -q 'received DELETE for IKE_SA' "$LAB_LOGDIR/charon-peer3.log"
    lab_wait 20 "peer3's charon holds no IKE SA" _no_ike_sa peer3
    lab_wait 10 "no SA with peer3 in gw1" output_is "" _spis 192.0.2.4
    # peer4: up.
    wait_ike_established peer4 site 40
    lab_wait 10 "peer4's SA pair in gw1" bash -c '[[ $(ip -n gw1 xfrm state | grep -c "192.0.2.5") -ge 2 ]]'

    local sent recv
    read -r sent recv <<<"$(ping_summary steady)"
    assert_eq 60 "$sent" "pings sent over peer1 across the reload"
    assert_eq 60 "$recv" "pings answered over peer1 across the reload (no loss)"
    assert_eq "$spis1" "$(_spis 192.0.2.2)" "peer1 kept its SAs (same SPIs)"
    assert_eq "$spis2" "$(_spis 192.0.2.3)" "peer2 kept its SAs (same SPIs)"
    assert_eq 0 "$(grep -c 'received DELETE' "$LAB_LOGDIR/charon-peer1.log" || true)" "peer1's charon got no Delete"
    assert_eq 0 "$(grep -c 'received DELETE' "$LAB_LOGDIR/charon-peer2.log" || true)" "peer2's charon got no Delete"
    _vpnctl --json show crypto session detail >"$LAB_LOGDIR/sessions.json" || lab_fail "show crypto session failed"
    assert_eq "after the reload" \
        "$(_json '[s["description"] for s in r["sessions"] if s["key"]["peer"].startswith("192.0.2.3:")][0]' <"$LAB_LOGDIR/sessions.json")" \
        "peer2's session shows the new description"
    assert_eq "192.0.2.2:500 192.0.2.3:500 192.0.2.5:500" \
        "$(_json '" ".join(sorted(s["key"]["peer"] for s in r["sessions"] if s["status"] == "UP-ACTIVE"))' <"$LAB_LOGDIR/sessions.json")" \
        "sessions up after the reload"

    # A change peer4 negotiated (a second IKE proposal): only peer4 is renegotiated,
    # Deleted with charon and brought up again with new SPIs.
    local spis4 conf2
    spis4=$(_spis 192.0.2.5)
    conf2=$(_peer peer4 192.0.2.5 "added by the reload" "${ts[peer4]}")
    conf2+=$'\n    ike:\n      proposals: [aes256gcm16-prfsha256-x25519, aes128gcm16-prfsha256-ecp256]'
    _conf "$conf" "$(_peer peer1 192.0.2.2 "steady" "${ts[peer1]}")" \
        "$(_peer peer2 192.0.2.3 "after the reload" "${ts[peer2]}")" "$conf2"
    _vpnctl --json reload >"$out" || lab_fail "vpnctl reload failed: $(cat "$out")"
    assert_eq '[[], [], [{"name": "peer4", "fields": ["ike.proposals"]}], []]' \
        "$(_json '[r["reload"][k] for k in ("added", "removed", "renegotiated", "updated")]' <"$out")" \
        "the second reload renegotiates peer4 only"
    lab_wait 20 "charon in peer4 received vpnd's Delete" \
        grep -q 'received DELETE for IKE_SA' "$LAB_LOGDIR/charon-peer4.log"
    lab_wait 30 "peer4 up again (a second CHILD_SA in charon's log)" \
        bash -c '[[ $(grep -cE "CHILD_SA site\{[0-9]+\} established" "$0") -ge 2 ]]' "$LAB_LOGDIR/charon-peer4.log"
    lab_wait 10 "peer4's new SA pair in gw1" bash -c '[[ $(ip -n gw1 xfrm state | grep -c "192.0.2.5") -eq 2 ]]'
    [[ $(_spis 192.0.2.5) != "$spis4" ]] || lab_fail "peer4's SPIs did not change: $spis4"
    lab_log "ok: peer4 renegotiated: $spis4 -> $(_spis 192.0.2.5)"
    assert_eq "$spis1" "$(_spis 192.0.2.2)" "peer1's SAs after peer4's renegotiation"
    assert_eq 0 "$(grep -c 'received DELETE' "$LAB_LOGDIR/charon-peer1.log" || true)" "peer1's charon still got no Delete"

    # A broken file: refused whole, with its location; nothing changes.
    cp "$conf" "$LAB_WORKDIR/good.yaml"
    printf '%s\n' "$(_peer peer5 192.0.2.6 "broken" 203.0.113.0/26)" "    ike:" "      dpd: soon" >>"$conf"
    local line rc=0
    line=$(grep -n 'dpd: soon' "$conf" | cut -d: -f1)
    _vpnctl --json reload >"$out" || rc=$?
    cat "$out" >&2
    assert_eq 1 "$rc" "vpnctl reload of a broken file exits 1"
    assert_eq "[false, false, $line]" \
        "$(_json '[r["ok"], r["reload"]["applied"], r["reload"]["problems"][0]["line"]]' <"$out")" \
        "refused, with the line of the error"
    assert_contains "$out" "vpnd.yaml:$line:[0-9]+: " "the error names file:line:column"
    ip netns exec gw1 kill -HUP "$(cat "$LAB_WORKDIR/vpnd-gw1.pid")"
    lab_wait 10 "SIGHUP's reload refused in the log" \
        bash -c '[[ $(grep -c "reload refused" "$0") -ge 2 ]]' "$LAB_LOGDIR/vpnd-gw1.log"
    ping_ok host1 203.0.113.10 3
    assert_eq "$spis1" "$(_spis 192.0.2.2)" "peer1's SAs after the refused reloads"
    assert_eq "$spis2" "$(_spis 192.0.2.3)" "peer2's SAs after the refused reloads"
    for n in peer1 peer2 peer4; do
        assert_eq ESTABLISHED "$(ike_state "$n" site)" "$n still up"
    done
    _vpnctl --json show crypto isakmp peer >"$LAB_LOGDIR/peers.json" || lab_fail "show crypto isakmp peer failed"
    assert_eq "peer1 peer2 peer4" "$(_json '" ".join(p["name"] for p in r["peers"])' <"$LAB_LOGDIR/peers.json")" \
        "the running configuration stayed"

    # Route-based by a reload: peer4 moves onto an XFRM interface in a VRF, both made by the
    # reload (neither exists before); peer4 alone is renegotiated and its new SAs carry the
    # interface's if_id; peer1 keeps its SAs.
    ! ip -n gw1 link show ipsec4 >/dev/null 2>&1 || lab_fail "ipsec4 exists before the reload"
    conf2=$(_peer peer4 192.0.2.5 "route-based now" "${ts[peer4]}")
    conf2+=$'\n    interface: ipsec4\n    if_id: 4\n    ivrf: blue'
    _conf "$conf" "$(_peer peer1 192.0.2.2 "steady" "${ts[peer1]}")" \
        "$(_peer peer2 192.0.2.3 "after the reload" "${ts[peer2]}")" "$conf2"
    printf 'vrfs:\n  blue: 1004\n' >>"$conf"
    local before
    before=$(grep -cE "CHILD_SA site\{[0-9]+\} established" "$LAB_LOGDIR/charon-peer4.log")
    _vpnctl --json reload >"$out" || lab_fail "vpnctl reload (route-based peer4) failed: $(cat "$out")"
    cat "$out" >&2
    assert_eq '[true, [], [], ["peer4"]]' \
        "$(_json '[r["reload"]["applied"], r["reload"]["added"], r["reload"]["removed"], [p["name"] for p in r["reload"]["renegotiated"]]]' <"$out")" \
        "the reload moves peer4 onto its interface (renegotiated)"
    assert_eq "blue 4" "$(ip -n gw1 -j -d link show ipsec4 | python3 -c '
import json, sys
l = json.load(sys.stdin)[0]
print(l.get("master", "-"), int(str(l["linkinfo"]["info_data"]["if_id"]), 0))')" \
        "ipsec4 made by the reload: XFRM if_id 4, in VRF blue"
    lab_wait 30 "peer4 up again on ipsec4 (another CHILD_SA in charon's log)" \
        bash -c '[[ $(grep -cE "CHILD_SA site\{[0-9]+\} established" "$0") -gt $1 ]]' \
        "$LAB_LOGDIR/charon-peer4.log" "$before"
    lab_wait 10 "peer4's SA pair in gw1 carries if_id 4" \
        bash -c '[[ $(ip -n gw1 xfrm state | grep -A8 "192.0.2.5" | grep -c "if_id 0x4") -ge 2 ]]'
    assert_eq "$spis1" "$(_spis 192.0.2.2)" "peer1's SAs after peer4's move"
    assert_eq 0 "$(grep -c 'received DELETE' "$LAB_LOGDIR/charon-peer1.log" || true)" "peer1's charon got no Delete at the move"
    stop_vpnd gw1
}
