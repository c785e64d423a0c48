# shellcheck shell=bash
# 10-strongswan-psk: strongSwan <-> strongSwan site-to-site, IKEv2 PSK.
# charon in gw1 initiates (stand-in for vpnd), charon in peer1 responds;
# IKE aes256gcm16-prfsha256-x25519, ESP aes256gcm16, tunnel
# 198.51.100.0/25 (host1) <-> 203.0.113.0/26 (hostp1).
# Checks: IKE SA ESTABLISHED on both ends, 5 pings host1 -> hostp1, ESP
# counters in gw1 = exactly 5 packets / 420 bytes each way (84-byte ICMP
# echo IP packets), 10 ESP packets and no clear-text echo request on gw1's
# wire, then terminate -> no SAs left on either side.
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

_no_sas() { # NS : no IKE SA "site" and no xfrm state
    [[ -z $(ike_state "$1" site) && $(xfrm_sa_count "$1") == 0 ]]
}

scenario_run() {
    local dgw=$LAB_WORKDIR/charon-gw1 dpeer=$LAB_WORKDIR/charon-peer1
    write_swanctl_conf "$dpeer" name=site \
        local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 start_action=none
    write_swanctl_conf "$dgw" name=site \
        local_addr=192.0.2.1 remote_addr=192.0.2.2 \
        local_id=gw1.lab.example remote_id=peer1.lab.example \
        local_ts=198.51.100.0/25 remote_ts=203.0.113.0/26 \
        ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 start_action=start

    start_capture gw1 t0
    start_charon peer1 "$dpeer"
    start_charon gw1 "$dgw" # start_action=start: initiates on --load-all
    wait_ike_established gw1 site 40

    assert_eq ESTABLISHED "$(ike_state gw1 site)" "IKE SA state in gw1"
    assert_eq ESTABLISHED "$(ike_state peer1 site)" "IKE SA state in peer1"
    swanctl_in gw1 --list-sas >"$LAB_LOGDIR/list-sas-gw1.txt"
    assert_contains "$LAB_LOGDIR/list-sas-gw1.txt" 'AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519' \
        "IKE proposal negotiated"
    assert_contains "$LAB_LOGDIR/list-sas-gw1.txt" 'site: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL, ESP:AES_GCM_16-256' \
        "child SA installed with ESP AES-GCM-256"
    assert_eq 2 "$(xfrm_sa_count gw1)" "xfrm states in gw1"

    ping_ok host1 203.0.113.10 5

    xfrm_counters gw1 >"$LAB_LOGDIR/xfrm-gw1.json"
    local pkts bytes
    read -r pkts bytes <<<"$(xfrm_counter gw1 192.0.2.1 192.0.2.2 packets,bytes)"
    assert_eq 5 "$pkts" "ESP packets out (gw1 -> peer1)"
    assert_eq 420 "$bytes" "ESP bytes out (gw1 -> peer1)"
    read -r pkts bytes <<<"$(xfrm_counter gw1 192.0.2.2 192.0.2.1 packets,bytes)"
    assert_eq 5 "$pkts" "ESP packets in (peer1 -> gw1)"
    assert_eq 420 "$bytes" "ESP bytes in (peer1 -> gw1)"
    read -r pkts bytes <<<"$(xfrm_counter peer1 192.0.2.2 192.0.2.1 packets,bytes)"
    assert_eq 5 "$pkts" "ESP packets out of peer1"

    local pcap
    pcap=$(stop_capture gw1 t0)
    assert_eq 10 "$(pcap_count "$pcap" esp)" "ESP packets on gw1's transport wire"
    # AF_PACKET also sees inbound ESP after decryption (the inner packet is
    # re-injected on t0), so only outbound clear text is a leak: requests.
    assert_eq 0 "$(pcap_count "$pcap" 'icmp[icmptype] == icmp-echo')" \
        "clear-text echo requests on gw1's transport wire"

    swanctl_in gw1 --terminate --ike site --timeout 20 >"$LAB_LOGDIR/terminate-gw1.log" 2>&1
    lab_wait 20 "no SAs left in gw1" _no_sas gw1
    lab_wait 20 "no SAs left in peer1" _no_sas peer1
    assert_eq "" "$(ike_state gw1 site)" "IKE SA in gw1 after terminate"
    assert_eq 0 "$(xfrm_sa_count peer1)" "xfrm states in peer1 after terminate"
}
