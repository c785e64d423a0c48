# shellcheck shell=bash
# 53-vpnctl-sessions: vpnd in gw1 with two strongSwan peers (peer1, peer2), each with a
# description. `vpnctl show crypto session detail` shows both UP-ACTIVE with Desc, Phase1_id
# and flow lines; its counters equal the kernel's after a known ping (JSON totals); `vpnctl
# clear crypto session remote 192.0.2.2` clears peer1 only: its SAs leave both kernels,
# charon reports the IKE SA gone, peer2's tunnel keeps passing traffic, and vpnd logs one
# DOWN notice for peer1; then, as IOS does for a configured initiator, peer1 comes back.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}

_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }


# _session_json FIELD PEER : a field of the session with PEER's address, from --json.
_session_json() {
    _vpnctl --json show crypto session detail | python3 -c '
import json, sys
field, peer = sys.argv[1], sys.argv[2]
s = [x for x in json.load(sys.stdin)["sessions"] if x["key"]["peer"].startswith(peer + ":")]
if len(s) != 1: print("missing"); sys.exit()
v = s[0]
for k in field.split("."): v = v[k]
print(v)' "$1" "$2"
}

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml out
    start_two_charon_peers
    write_vpnd_two_peers_conf "$conf"
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    wait_ike_established peer2 site 40

    ping_ok host1 203.0.113.10 5
    ping_ok host1 203.0.113.70 3

    out=$LAB_LOGDIR/show-detail.txt
    _vpnctl show crypto session detail >"$out" || lab_fail "vpnctl show crypto session detail failed"
    cat "$out" >&2
    assert_contains "$out" '^Crypto session current status$' "header"
    assert_eq 2 "$(grep -c '^Interface: t0$' "$out")" "the outer interface of both sessions"
    assert_eq 2 "$(grep -c '^Session status: UP-ACTIVE$' "$out")" "two sessions UP-ACTIVE"
    assert_contains "$out" '^Peer: 192\.0\.2\.2 port 500 fvrf: \(none\) ivrf: \(none\)$' "peer1's Peer line"
    assert_contains "$out" '^Peer: 192\.0\.2\.3 port 500 fvrf: name10 ivrf: name20$' "peer2's Peer line with VRFs"
    assert_contains "$out" '^  Desc: this is my peer at 192\.0\.2\.2:500 Green$' "peer1's description"
    assert_contains "$out" '^  Desc: SJC24-2-VPN-Gateway$' "peer2's description"
    assert_contains "$out" '^  Phase1_id: peer1\.lab\.example$' "peer1's Phase1_id"
    assert_contains "$out" '^  IKE SA: local 192\.0\.2\.1/500 remote 192\.0\.2\.2/500 Active$' "peer1's IKE SA line"
    assert_contains "$out" '^  IPSEC FLOW: permit ip 198\.51\.100\.0/255\.255\.255\.128 203\.0\.113\.0/255\.255\.255\.192$' "peer1's flow"
    assert_contains "$out" "^    Inbound:  #pkts dec'ed 5 drop 0 life \(KB/Sec\) " "peer1: 5 packets decrypted"
    assert_contains "$out" "^    Outbound: #pkts enc'ed 5 drop 0 life \(KB/Sec\) " "peer1: 5 packets encrypted"
    # The session totals are the kernel's counters for its SAs.
    local kbytes
    read -r _ kbytes <<<"$(xfrm_counter gw1 192.0.2.2 192.0.2.1 packets,bytes)"
    assert_eq "$kbytes" "$(_session_json totals.bytes_in 192.0.2.2)" "peer1 bytes in: vpnctl = kernel"
    assert_eq 420 "$kbytes" "peer1 bytes in (5 x 84)"

    _vpnctl show crypto isakmp peer >"$LAB_LOGDIR/isakmp-peer.txt" || lab_fail "show crypto isakmp peer failed"
    assert_contains "$LAB_LOGDIR/isakmp-peer.txt" '^Peer: 192\.0\.2\.3 Port: 500$' "isakmp peer line"
    assert_contains "$LAB_LOGDIR/isakmp-peer.txt" '^  Description: SJC24-2-VPN-Gateway$' "isakmp peer description"

    # Abbreviated, as IOS users type; an unknown word is a usage error (exit 2).
    _vpnctl sh cr sess >"$LAB_LOGDIR/show-abbrev.txt" || lab_fail "vpnctl sh cr sess failed"
    assert_eq 2 "$(grep -c '^Session status: UP-ACTIVE$' "$LAB_LOGDIR/show-abbrev.txt")" "sh cr sess"
    local rc=0
    _vpnctl show crypto session remot3 192.0.2.2 2>"$LAB_LOGDIR/bad-word.txt" || rc=$?
    assert_eq 2 "$rc" "exit code of an unknown word"

    lab_log "== clear crypto session remote 192.0.2.2"
    # The pair's SPIs now: they must leave both kernels (new ones follow when vpnd
    # re-initiates, so the check is on these exact SPIs).
    local old_spis
    old_spis=$(xfrm_counters gw1 | python3 -c 'import json,sys; print(" ".join(sa["spi"] for sa in json.load(sys.stdin) if "192.0.2.2" in (sa["src"], sa["dst"])))')
    assert_eq 2 "$(wc -w <<<"$old_spis")" "peer1's SA pair in gw1 before the clear"
    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "vpnctl clear failed"
    lab_wait 20 "charon in peer1 received vpnd's Delete for the IKE SA" \
        grep -q 'received DELETE for IKE_SA' "$LAB_LOGDIR/charon-peer1.log"
    local spi
    # shellcheck disable=SC2016 # expanded by the inner bash
    for spi in $old_spis; do
        lab_wait 10 "SA $spi gone from gw1" bash -c '! ip -n gw1 xfrm state | grep -q "spi $0"' "$spi"
        lab_wait 10 "SA $spi gone from peer1" bash -c '! ip -n peer1 xfrm state | grep -q "spi $0"' "$spi"
    done
    assert_eq 2 "$(xfrm_sa_count peer2)" "peer2 still holds its pair"
    ping_ok host1 203.0.113.70 3
    assert_eq 1 "$(grep -c 'Crypto session is DOWN. Peer 192.0.2.2:500' "$LAB_LOGDIR/vpnd-gw1.log")" "one DOWN notice for peer1"
    assert_eq 0 "$(grep -c 'Crypto session is DOWN. Peer 192.0.2.3:500' "$LAB_LOGDIR/vpnd-gw1.log" || true)" "no DOWN notice for peer2"
    # A configured initiator comes back (IOS), after vpnd's 5 s back-off.
    wait_ike_established peer1 site 40
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1
}
