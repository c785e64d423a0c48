# shellcheck shell=bash
# 50-vpnd-strongswan: our daemon against a real strongSwan (charon 5.9), IKEv2 PSK.
# vpnd in gw1 (198.51.100.0/25 behind it), charon in peer1 (203.0.113.0/26).
# For each suite of the IKEv2 issue: vpnd initiates, charon responds; the IKE SA is
# ESTABLISHED in charon with that suite, 5 pings host1 -> hostp1 cross, the kernel's ESP
# counters in gw1 show them (5 packets each way), and SIGTERM makes vpnd delete the SAs
# with charon and in gw1's kernel (its standing policies stay: the flow is blocked). Then charon initiates and vpnd responds (charon offers
# all three suites; vpnd picks by the initiator's order), and charon's Delete cleans gw1.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

SUITES=(
    "aes256gcm16-prfsha256-x25519 aes256gcm16 AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"
    "aes128-sha256-modp2048 aes128-sha256 AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
    "aes256-sha384-ecp384 aes256-sha384 AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"
)

_charon_clean() { [[ -z $(ike_state peer1 site) ]]; }
# No SA left, and the flow's three policies (out, in, fwd) standing: it stays blocked
# while there is no SA (fail closed; scenario 55 has the rest).
_gw1_clean() { [[ $(xfrm_sa_count gw1) == 0 && $(policy_count gw1) == 3 ]]; }

# _tunnel_works WHAT : ping through, and count it in gw1's kernel.
_tunnel_works() {
    ping_ok host1 203.0.113.10 5
    local pkts
    read -r pkts _ <<<"$(xfrm_counter gw1 192.0.2.1 192.0.2.2 packets,bytes)"
    assert_eq 5 "$pkts" "$1: ESP packets out of gw1 (vpnd's outbound SA)"
    read -r pkts _ <<<"$(xfrm_counter gw1 192.0.2.2 192.0.2.1 packets,bytes)"
    assert_eq 5 "$pkts" "$1: ESP packets into gw1 (vpnd's inbound SA)"
}

scenario_run() {
    local dpeer=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    local all_ike="" all_esp="" s ike esp want
    for s in "${SUITES[@]}"; do
        read -r ike esp _ <<<"$s"
        all_ike+="${all_ike:+,}$ike"
        all_esp+="${all_esp:+,}$esp"
    done
    # charon answers any of the three suites (one proposal each, in this order).
    write_swanctl_conf "$dpeer" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike="$all_ike" esp="$all_esp" start_action=none
    start_charon peer1 "$dpeer"

    for s in "${SUITES[@]}"; do
        read -r ike esp want <<<"$s"
        lab_log "== vpnd initiates: $ike / $esp"
        write_vpnd_conf "$conf" ike="$ike" esp="$esp" start=initiate
        start_vpnd gw1 "$conf"
        wait_ike_established peer1 site 40
        swanctl_in peer1 --list-sas >"$LAB_LOGDIR/list-sas-$ike.txt"
        assert_contains "$LAB_LOGDIR/list-sas-$ike.txt" "$want" "$ike: suite negotiated with charon"
        assert_contains "$LAB_LOGDIR/list-sas-$ike.txt" 'site: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL' \
            "$ike: charon installed the child SA"
        lab_wait 10 "$ike: vpnd installed 2 SAs in gw1" test "$(xfrm_sa_count gw1)" = 2
        _tunnel_works "$ike"
        stop_vpnd gw1
        lab_wait 20 "$ike: charon saw vpnd's Delete" _charon_clean
        lab_wait 10 "$ike: gw1's kernel clean after vpnd stopped" _gw1_clean
        assert_eq 0 "$(xfrm_sa_count peer1)" "$ike: SAs left in peer1"
    done

    lab_log "== charon initiates, vpnd responds"
    # vpnd accepts the three suites in the reverse order; the initiator's order wins.
    write_vpnd_conf "$conf" ike="aes256-sha384-ecp384, aes128-sha256-modp2048, aes256gcm16-prfsha256-x25519" \
        esp="aes256-sha384, aes128-sha256, aes256gcm16" start=respond
    start_vpnd gw1 "$conf"
    swanctl_in peer1 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate-peer1.log" 2>&1 ||
        lab_fail "charon could not initiate to vpnd (see initiate-peer1.log)"
    wait_ike_established peer1 site 40
    swanctl_in peer1 --list-sas >"$LAB_LOGDIR/list-sas-responder.txt"
    assert_contains "$LAB_LOGDIR/list-sas-responder.txt" 'AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519' \
        "vpnd as responder chose the initiator's first suite"
    _tunnel_works responder
    # charon deletes: vpnd must take its SAs and policies out of gw1's kernel.
    swanctl_in peer1 --terminate --ike site --timeout 20 >"$LAB_LOGDIR/terminate-peer1.log" 2>&1
    lab_wait 20 "gw1's kernel clean after charon's Delete" _gw1_clean
    vpnd_log_has gw1 'IKE SA down.*deleted by the peer' || lab_fail "vpnd did not log the peer's Delete"
    stop_vpnd gw1
}
