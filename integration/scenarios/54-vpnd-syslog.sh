# shellcheck shell=bash
# 54-vpnd-syslog: vpnd's %CRYPTO-5-SESSION_STATUS notices reach a real syslog receiver
# (tools/syslog_receiver.py in ns syslog) over TCP (octet counting) and UDP, exactly once per
# transition, also after the receiver restarted: a DOWN sent while it was away arrives over
# TCP once it is back, and the next UP over both. Also: `show crypto session brief` and
# `summary`, and `debug crypto isakmp on|off` changing vpnd's log without a restart.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}

_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _count PROTO PATTERN : messages received over PROTO (tcp|udp) matching PATTERN.
_count() { grep -cE "^$1	192\.0\.2\.1:[0-9]+	.*$2" "$SYSLOG_FILE" || true; }

_isakmp_lines() { grep -c 'ISAKMP: ' "$LAB_LOGDIR/vpnd-gw1.log" || true; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml out up1 up2 down1
    up1='%CRYPTO-5-SESSION_STATUS: Crypto session is UP\. Peer 192\.0\.2\.2:500 Description: this is my peer at 192\.0\.2\.2:500 Green Id: peer1\.lab\.example$'
    up2='%CRYPTO-5-SESSION_STATUS: Crypto session is UP\. Peer 192\.0\.2\.3:500 fvrf=name10 ivrf=name20 Description: SJC24-2-VPN-Gateway Id: peer2\.lab\.example$'
    down1='%CRYPTO-5-SESSION_STATUS: Crypto session is DOWN\. Peer 192\.0\.2\.2:500 Description: this is my peer at 192\.0\.2\.2:500 Green Id: peer1\.lab\.example$'
    start_syslog_receiver syslog 5514 192.0.2.20
    start_two_charon_peers
    write_vpnd_two_peers_conf "$conf" "syslog:
  local: false
  facility: local7
  servers:
    - { address: 192.0.2.20, port: 5514, transport: tcp }
    - { address: 192.0.2.20, port: 5514, transport: udp }"
    # info, so that `debug crypto isakmp on` is what brings the IKE debug lines
    sed -i 's/^  level: debug$/  level: info/' "$conf"
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    wait_ike_established peer2 site 40

    lab_wait 15 "UP for peer1 over TCP" output_is 1 _count tcp "$up1"
    lab_wait 15 "UP for peer2 over TCP" output_is 1 _count tcp "$up2"
    lab_wait 15 "UP for peer1 over UDP" output_is 1 _count udp "$up1"
    lab_wait 15 "UP for peer2 over UDP" output_is 1 _count udp "$up2"
    # <189>: facility local7 (23) * 8 + severity notice (5), then the RFC 3164 header
    assert_contains "$SYSLOG_FILE" '^tcp	192\.0\.2\.1:[0-9]+	<189>[A-Z][a-z]{2} [0-9 ][0-9] [0-9:]{8} [^ ]+ vpnd\[[0-9]+\]: %CRYPTO-5-SESSION_STATUS' "RFC 3164 header"

    out=$LAB_LOGDIR/show-brief.txt
    _vpnctl show crypto session brief >"$out" || lab_fail "show crypto session brief failed"
    cat "$out" >&2
    assert_contains "$out" '^ivrf = \(none\)$' "brief: ivrf (none) group"
    assert_contains "$out" '^ivrf = name20$' "brief: ivrf name20 group"
    assert_contains "$out" '^192\.0\.2\.2 +t0 +peer1\.lab\.example +[0-9]{2}:[0-9]{2}:[0-9]{2} UA$' "brief: peer1 row"
    assert_contains "$out" '^192\.0\.2\.3 +t0 +peer2\.lab\.example +[0-9]{2}:[0-9]{2}:[0-9]{2} UA$' "brief: peer2 row"
    out=$LAB_LOGDIR/show-summary.txt
    _vpnctl sh cr sess summ >"$out" || lab_fail "show crypto session summary failed"
    cat "$out" >&2
    assert_contains "$out" '^Total sessions: 2$' "summary: total"
    assert_contains "$out" '^  UP-ACTIVE: +2$' "summary: both UP-ACTIVE"
    assert_contains "$out" '^IKE SAs: 2, IPsec SAs: 4$' "summary: SA counts"

    lab_log "== debug crypto isakmp on"
    assert_eq 0 "$(_isakmp_lines)" "no ISAKMP debug lines at level info"
    out=$(_vpnctl debug crypto isakmp on) || lab_fail "debug crypto isakmp on failed"
    assert_eq "Crypto ISAKMP debugging is on" "$out" "IOS confirmation"

    lab_log "== the receiver restarts; peer1 is cleared while it is away"
    stop_syslog_receiver syslog 5514
    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "clear failed"
    lab_wait 20 "charon in peer1 received the Delete" grep -q 'received DELETE for IKE_SA' "$LAB_LOGDIR/charon-peer1.log"
    lab_wait 10 "vpnd logged the DOWN" vpnd_log_has gw1 'Crypto session is DOWN\. Peer 192\.0\.2\.2:500'
    start_syslog_receiver syslog 5514 192.0.2.20
    lab_wait 30 "the DOWN sent while the receiver was away arrives over TCP" output_is 1 _count tcp "$down1"
    # vpnd brings peer1 back after its back-off (IOS: a configured initiator): a second UP.
    wait_ike_established peer1 site 40
    lab_wait 20 "the second UP for peer1 over TCP" output_is 2 _count tcp "$up1"
    lab_wait 20 "the second UP for peer1 over UDP" output_is 2 _count udp "$up1"
    assert_eq 1 "$(_count tcp "$up2")" "peer2: still one UP, no DOWN"
    assert_eq 0 "$(_count tcp 'DOWN\. Peer 192\.0\.2\.3')" "peer2: no DOWN"
    assert_ge 6 "$(_isakmp_lines)" "ISAKMP debug lines (the Delete, the new IKE_SA_INIT and IKE_AUTH)"
    assert_contains "$LAB_LOGDIR/vpnd-gw1.log" 'ISAKMP: sending IKE_SA_INIT request msgid 0' "IKE_SA_INIT request in the debug"

    lab_log "== debug crypto isakmp off"
    out=$(_vpnctl debug crypto isakmp off) || lab_fail "debug crypto isakmp off failed"
    assert_eq "Crypto ISAKMP debugging is off" "$out" "IOS confirmation"
    local before
    before=$(_isakmp_lines)
    _vpnctl clear crypto session remote 192.0.2.3 || lab_fail "clear peer2 failed"
    lab_wait 20 "charon in peer2 received the Delete" grep -q 'received DELETE for IKE_SA' "$LAB_LOGDIR/charon-peer2.log"
    lab_wait 20 "DOWN for peer2 over TCP" output_is 1 _count tcp 'DOWN\. Peer 192\.0\.2\.3:500 fvrf=name10 ivrf=name20'
    assert_eq "$before" "$(_isakmp_lines)" "no ISAKMP debug lines once it is off"
    stop_vpnd gw1
    stop_syslog_receiver syslog 5514
}
