# shellcheck shell=bash
# 51-vpnd-rekey: child SA and IKE SA rekeys between vpnd (gw1) and charon (peer1), started
# by either side, while a ping runs: no ping is lost, the old SAs leave both kernels.
#  A. charon rekeys (child every ~15 s, IKE every ~25 s); vpnd answers CREATE_CHILD_SA.
#  B. vpnd rekeys: child lifetime 60 s (the kernel's soft expiry at 54 s starts it) and
#     IKE lifetime 60 s (vpnd's own timer at 90%); charon's rekeys are off.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=420

_two_sas() { [[ $(xfrm_sa_count gw1) == 2 && $(xfrm_sa_count peer1) == 2 ]]; }

_check_no_loss() { # NAME
    local sent recv
    read -r sent recv <<<"$(ping_summary "$1")"
    assert_ge 50 "${sent:-0}" "$1: pings sent"
    assert_eq "$sent" "${recv:-0}" "$1: pings answered across the rekeys (sent $sent)"
}

scenario_run() {
    local dpeer=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml n

    lab_log "== A: charon rekeys, vpnd responds"
    write_swanctl_conf "$dpeer" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16-x25519 \
        rekey_time=25s child_rekey_time=15s start_action=none
    start_charon peer1 "$dpeer"
    write_vpnd_conf "$conf" start=initiate esp=aes256gcm16-x25519
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    lab_wait 10 "A: child SA pair in both kernels" _two_sas
    ping_background host1 203.0.113.10 200 rekey-a
    # 40 s: at least two child rekeys and one IKE rekey by charon.
    lab_wait 90 "A: vpnd saw charon rekey the IKE SA" vpnd_log_has gw1 'IKE SA rekeyed'
    # shellcheck disable=SC2016 # expanded by the inner bash
    lab_wait 90 "A: vpnd installed a rekeyed child twice" \
        bash -c '(( $(grep -c "child SA installed" "$0") >= 3 ))' "$LAB_LOGDIR/vpnd-gw1.log"
    _check_no_loss rekey-a
    lab_wait 20 "A: old SAs gone, one pair left in each kernel" _two_sas
    n=$(grep -c 'child SA removed' "$LAB_LOGDIR/vpnd-gw1.log")
    assert_ge 2 "$n" "A: old child pairs vpnd removed"
    assert_eq ESTABLISHED "$(ike_state peer1 site)" "A: charon's IKE SA after the rekeys"
    stop_vpnd gw1
    stop_charon peer1

    lab_log "== B: vpnd rekeys (child and IKE lifetimes of 60 s), charon responds"
    rm -rf "$dpeer"
    write_swanctl_conf "$dpeer" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 start_action=none
    start_charon peer1 "$dpeer"
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-phaseA.log"
    write_vpnd_conf "$conf" start=initiate lifetime=60 ike_lifetime=60s
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    lab_wait 10 "B: child SA pair in both kernels" _two_sas
    ping_background host1 203.0.113.10 350 rekey-b
    lab_wait 100 "B: the kernel's soft expiry made vpnd rekey the child" \
        vpnd_log_has gw1 'soft-expired a child SA: rekeying'
    lab_wait 100 "B: vpnd rekeyed the IKE SA" vpnd_log_has gw1 'IKE SA rekeyed'

    _check_no_loss rekey-b
    lab_wait 20 "B: old SAs gone, one pair left in each kernel" _two_sas
    assert_eq ESTABLISHED "$(ike_state peer1 site)" "B: charon's IKE SA after vpnd's rekeys"
    swanctl_in peer1 --list-sas >"$LAB_LOGDIR/list-sas-B.txt"
    assert_eq 1 "$(grep -c 'ESTABLISHED' "$LAB_LOGDIR/list-sas-B.txt")" "B: charon holds exactly one IKE SA"
    stop_vpnd gw1
}
