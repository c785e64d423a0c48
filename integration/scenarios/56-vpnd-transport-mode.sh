# shellcheck shell=bash
# 56-vpnd-transport-mode: a transport-mode child between the two gateway addresses
# (192.0.2.1 <-> 192.0.2.2: every packet between them), so the policy also covers IKE's own
# UDP 500. vpnd's IKE sockets bypass it (IP_XFRM_POLICY): with vpnd initiating, gw1 -> peer1
# traffic is ESP while both ends' liveness checks (DPD every 2-3 s) keep answering, charon's
# Delete reaches vpnd; with vpnd responding (its IKE_AUTH response leaves after the child is
# installed) the tunnel carries traffic both ways; vpnd's Deletes at a clear and at stop reach
# charon; after stop the standing transport policies keep the gateways' traffic blocked.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_ike_up() { [[ $(ike_state peer1 site) == ESTABLISHED ]]; }
_ike_gone() { [[ -z $(ike_state peer1 site) ]]; }
_esp_out() { read -r p _ <<<"$(xfrm_counter gw1 192.0.2.1 192.0.2.2 packets,bytes)"; echo "$p"; }
_esp_in() { read -r p _ <<<"$(xfrm_counter gw1 192.0.2.2 192.0.2.1 packets,bytes)"; echo "$p"; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=192.0.2.2/32 remote_ts=192.0.2.1/32 mode=transport dpd_delay=2s start_action=none
    start_charon peer1 "$d1"

    lab_log "== vpnd initiates a transport-mode child between the gateways"
    write_vpnd_conf "$conf" local_ts=192.0.2.1/32 remote_ts=192.0.2.2/32 mode=transport dpd=3s
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    lab_wait 10 "vpnd installed 2 SAs in gw1" output_is 2 xfrm_sa_count gw1
    ping_ok gw1 192.0.2.2 3
    assert_ge 3 "$(_esp_out)" "gw1 -> peer1 pings went out as ESP"
    assert_ge 3 "$(_esp_in)" "peer1 -> gw1 replies came in as ESP"

    lab_log "== 12 s idle: both liveness checks are answered through the bypass"
    sleep 12
    _ike_up || lab_fail "charon's IKE SA died: its DPD got no answer"
    ! vpnd_log_has gw1 'IKE SA down' || lab_fail "vpnd's IKE SA died: its DPD got no answer"
    grep -q 'sending DPD request' "$LAB_LOGDIR/charon-peer1.log" ||
        lab_fail "charon sent no DPD (the check above proves nothing)"

    lab_log "== charon deletes: vpnd hears it"
    swanctl_in peer1 --terminate --ike site --timeout 20 >"$LAB_LOGDIR/terminate.log" 2>&1 ||
        lab_fail "charon's Delete was not answered (see terminate.log)"
    lab_wait 10 "vpnd took the peer's Delete" vpnd_log_has gw1 'IKE SA down.*deleted by the peer'
    stop_vpnd gw1

    lab_log "== vpnd responds: its IKE_AUTH response leaves after the child is in the kernel"
    write_vpnd_conf "$conf" local_ts=192.0.2.1/32 remote_ts=192.0.2.2/32 mode=transport start=respond
    start_vpnd gw1 "$conf"
    swanctl_in peer1 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate.log" 2>&1 ||
        lab_fail "charon could not initiate to vpnd (see initiate.log)"
    wait_ike_established peer1 site 30
    ip netns exec peer1 ping -n -q -c 3 -i 0.2 -W 2 192.0.2.1 >"$LAB_LOGDIR/ping-peer1.log" 2>&1 ||
        lab_fail "peer1 -> gw1 pings through the transport SA failed"
    assert_ge 3 "$(_esp_in)" "peer1 -> gw1 pings came in as ESP"

    lab_log "== clear, then stop: vpnd's Deletes reach charon"
    _vpnctl clear crypto session remote 192.0.2.2 >/dev/null || lab_fail "vpnctl clear failed"
    lab_wait 15 "charon saw vpnd's Delete (clear)" _ike_gone
    swanctl_in peer1 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate2.log" 2>&1 ||
        lab_fail "charon could not initiate again (see initiate2.log)"
    wait_ike_established peer1 site 30
    stop_vpnd gw1
    lab_wait 15 "charon saw vpnd's Delete (stop)" _ike_gone
    assert_eq 0 "$(xfrm_sa_count gw1)" "SAs left in gw1"
    assert_eq 2 "$(policy_count gw1)" "standing transport policies (in, out) left in gw1"
    assert_eq 0 "$(ping_count gw1 192.0.2.2 2)" "gateway traffic blocked while vpnd is stopped"
}
