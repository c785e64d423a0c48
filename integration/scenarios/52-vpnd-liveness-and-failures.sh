# shellcheck shell=bash
# 52-vpnd-liveness-and-failures: one vpnd in gw1 with three peers:
#   peer2 (charon, good config)       - must stay up and pass traffic throughout;
#   peer1 (charon) offering only proposals vpnd does not accept -> NO_PROPOSAL_CHOSEN;
#   then peer1 with the wrong PSK -> AUTHENTICATION_FAILED;
# both logged clearly by vpnd, neither touching peer2's tunnel. Finally peer2's link goes
# down: vpnd's liveness check (dpd 5 s) declares it dead and removes its SAs (its policies
# stand: the flow is blocked until the peer is back).
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

_peer2_sas() { xfrm_sa_count gw1; }
# No SA left; both peers' flows keep their standing policies (3 each): blocked, not clear.
_gw1_clean() { [[ $(xfrm_sa_count gw1) == 0 && $(policy_count gw1) == 6 ]]; }

_write_conf() {
    cat >"$1" <<YAML
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
  - name: peer1
    address: 192.0.2.2
    description: "misconfigured peer"
    local_id: "@gw1.lab.example"
    remote_id: "@peer1.lab.example"
    psk: "lab-secret-0123456789"
    start: respond
    reverse_route: true
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.0/26]
  - name: peer2
    address: 192.0.2.3
    description: "good peer"
    local_id: "@gw1.lab.example"
    remote_id: "@peer2.lab.example"
    psk: "lab-secret-peer2"
    start: initiate
    reverse_route: true
    ike:
      dpd: 5s
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.64/26]
YAML
}

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1 d2=$LAB_WORKDIR/charon-peer2
    write_swanctl_conf "$d2" name=site local_addr=192.0.2.3 remote_addr=192.0.2.1 \
        local_id=peer2.lab.example remote_id=gw1.lab.example psk=lab-secret-peer2 \
        local_ts=203.0.113.64/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer2 "$d2"
    _write_conf "$conf"
    start_vpnd gw1 "$conf"
    wait_ike_established peer2 site 40
    ping_ok host1 203.0.113.70 3

    lab_log "== peer1 offers only aes128-sha256-modp2048: vpnd answers NO_PROPOSAL_CHOSEN"
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike=aes128-sha256-modp2048 start_action=none
    start_charon peer1 "$d1"
    swanctl_in peer1 --initiate --child site --timeout 20 >"$LAB_LOGDIR/initiate-noprop.log" 2>&1 || true
    lab_wait 20 "charon in peer1 got NO_PROPOSAL_CHOSEN" grep -q 'NO_PROPOSAL_CHOSEN' "$LAB_LOGDIR/charon-peer1.log"
    lab_wait 10 "vpnd logged the refused proposal" vpnd_log_has gw1 'no acceptable IKE proposal.*answered NO_PROPOSAL_CHOSEN'
    assert_eq "" "$(ike_state peer1 site)" "no IKE SA with peer1"
    ping_ok host1 203.0.113.70 3
    stop_charon peer1

    lab_log "== peer1 with the wrong PSK: AUTHENTICATION_FAILED"
    rm -rf "$d1"
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example psk=not-the-right-secret \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d1"
    swanctl_in peer1 --initiate --child site --timeout 20 >"$LAB_LOGDIR/initiate-badpsk.log" 2>&1 || true
    lab_wait 20 "charon in peer1 got AUTHENTICATION_FAILED" grep -q 'AUTHENTICATION_FAILED' "$LAB_LOGDIR/charon-peer1.log"
    lab_wait 10 "vpnd logged the failed authentication" vpnd_log_has gw1 'does not verify with the PSK'
    assert_eq 2 "$(_peer2_sas)" "gw1 still holds exactly peer2's SA pair"
    ping_ok host1 203.0.113.70 3
    stop_charon peer1

    lab_log "== peer2's link goes down: the liveness check removes its SAs"
    ip -n peer2 link set t0 down
    lab_wait 60 "vpnd declared peer2 unreachable" vpnd_log_has gw1 'IKE SA down.*peer unreachable'
    lab_wait 10 "gw1's kernel clean of peer2's SAs, policies standing" _gw1_clean
    stop_vpnd gw1
}
