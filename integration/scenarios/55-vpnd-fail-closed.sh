# shellcheck shell=bash
# 55-vpnd-fail-closed: a protected flow (host1 198.51.100.0/25 <-> hostp1 203.0.113.0/26)
# never leaves gw1 in clear. A ping runs throughout while tcpdump on gw1's uplink counts
# cleartext packets of the flow: tunnel up; `clear crypto session`; SIGKILL of vpnd; the peer
# stopped (its host stays up and reachable); a restart that fails (the accounting journal is a directory): the
# kernel's policies and SAs exactly as the kill left them (and a restart that fails with UDP
# 500 taken); a good restart with the peer
# still away (standing policies, no SA: dropped); the peer back: the tunnel and the pings
# come back. Zero cleartext packets in all of it. Then SIGTERM: still blocked (policies
# stay, no SA); `vpnd --flush` removes them. Last, `start: on-demand`: the traffic that waited
# while vpnd was stopped brings it up at start; after a clear, no IKE until the next ping,
# whose ACQUIRE brings the tunnel up.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_policies() { policy_count gw1; }
_spis() { ip -n gw1 xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' '; }
_ike_up() { [[ $(ike_state peer1 site) == ESTABLISHED ]]; }
_ike_gone() { [[ -z $(ike_state peer1 site) ]]; }
_replies() { grep -c 'bytes from' "$LAB_LOGDIR/ping-$1.log" || true; }
# Cleartext packets of the flow that gw1 sent (host1's side). The peer's own cleartext
# (charon removes its policies with its CHILD_SA, so its replies to requests that were in
# flight at a Delete leave peer1 in clear) is counted apart: not vpnd's to prevent.
_cleartext() { pcap_count "$1" 'src net 198.51.100.0/25 and dst net 203.0.113.0/26'; }
_peer_cleartext() { pcap_count "$1" 'src net 203.0.113.0/26 and dst net 198.51.100.0/25'; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1
    local journal=$LAB_WORKDIR/acct/accounting.journal pcap before_pol before_spi r0 r1
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d1"
    # Larval SAs (an unanswered ACQUIRE's) live 60 s here, so the on-demand start below
    # finds the one the blocked pings leave, whatever the VM's speed.
    ip netns exec gw1 sysctl -qw net.core.xfrm_acq_expires=60
    write_vpnd_conf "$conf" accounting=lab extra="$(vpnd_accounting_yaml "$journal")"
    # Behind vpnd's reverse route (metric 0), a real gateway's route to the far subnet
    # (through the peer): whenever vpnd's is gone (killed, stopped, restarting), a cleartext
    # packet would reach the wire, not wait for an ARP answer that never comes.
    ip -n gw1 route replace 203.0.113.0/26 via 192.0.2.2 dev t0 metric 100
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    ping_ok host1 203.0.113.10 3

    start_capture gw1 t0 'not esp and not udp port 500 and not udp port 4500'
    # 0.2 s apart for 100 s: the whole story below happens under this ping.
    ping_background host1 203.0.113.10 500 flow

    lab_log "== clear crypto session: vpnd re-initiates, nothing in clear meanwhile"
    _vpnctl clear crypto session remote 192.0.2.2 >/dev/null || lab_fail "vpnctl clear failed"
    lab_wait 30 "the tunnel back after the clear" _ike_up
    r0=$(_replies flow)
    lab_wait 15 "pings answered after the clear" output_ge $((r0 + 5)) _replies flow

    lab_log "== SIGKILL vpnd, then the peer's IKE daemon goes away (its host stays reachable)"
    kill -9 "$(cat "$LAB_WORKDIR/vpnd-gw1.pid")"
    rm -f "$LAB_WORKDIR/vpnd-gw1.pid"
    stop_charon peer1
    before_pol=$(ip -n gw1 xfrm policy)
    before_spi=$(_spis)
    assert_eq 3 "$(_policies)" "the policies the kill left (out, in, fwd)"

    lab_log "== restarts that fail: the kernel stays exactly as the kill left it"
    # A bad journal (a directory where the file was).
    mv "$journal" "$journal.good" && mkdir "$journal"
    if ip netns exec gw1 "$VPND" -c "$conf" >"$LAB_LOGDIR/vpnd-failed-start.log" 2>&1; then
        lab_fail "vpnd started with a directory as its accounting journal"
    fi
    assert_contains "$LAB_LOGDIR/vpnd-failed-start.log" 'journal' "the failed start names the journal"
    assert_eq "$before_pol" "$(ip -n gw1 xfrm policy)" "policies after the failed start (bad journal)"
    assert_eq "$before_spi" "$(_spis)" "SAs after the failed start (bad journal)"
    rmdir "$journal" && mv "$journal.good" "$journal"
    # Another daemon holds UDP 500 (nothing --check can see).
    ip netns exec gw1 python3 -c 'import socket,time; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("192.0.2.1",500)); time.sleep(30)' &
    local squatter=$!
    sleep 1
    "$VPND" --check -c "$conf" >/dev/null || lab_fail "--check refused the configuration"
    if ip netns exec gw1 "$VPND" -c "$conf" >"$LAB_LOGDIR/vpnd-failed-start2.log" 2>&1; then
        lab_fail "vpnd started although UDP 500 was taken"
    fi
    assert_contains "$LAB_LOGDIR/vpnd-failed-start2.log" 'binding UDP' "the failed start names the port"
    assert_eq "$before_pol" "$(ip -n gw1 xfrm policy)" "policies after the failed start (port taken)"
    assert_eq "$before_spi" "$(_spis)" "SAs after the failed start (port taken)"
    kill "$squatter" 2>/dev/null || true
    wait "$squatter" 2>/dev/null || true

    lab_log "== a good restart with the peer still away: policies stand, no SA, traffic dropped"
    start_vpnd gw1 "$conf"
    lab_wait 10 "the stale SAs removed" output_is 0 xfrm_sa_count gw1
    assert_eq 3 "$(_policies)" "standing policies while the peer is away"
    r0=$(_replies flow)
    sleep 4
    assert_eq "$r0" "$(_replies flow)" "no replies while there is no SA"

    lab_log "== the peer comes back: vpnd's retry brings the tunnel up"
    start_charon peer1 "$d1"
    lab_wait 60 "the tunnel back with the peer" _ike_up
    r1=$(_replies flow)
    lab_wait 15 "pings answered again" output_ge $((r1 + 5)) _replies flow

    lab_log "== SIGTERM: vpnd deletes its SAs; the flow stays blocked"
    stop_vpnd gw1
    assert_eq 0 "$(xfrm_sa_count gw1)" "SAs after stop"
    assert_eq 3 "$(_policies)" "standing policies after stop"
    r1=$(_replies flow)
    sleep 3
    assert_eq "$r1" "$(_replies flow)" "no replies with vpnd stopped"
    kill "$(cat "$LAB_WORKDIR/ping-flow.pid")" 2>/dev/null || true
    sleep 0.5
    pcap=$(stop_capture gw1 t0)
    assert_eq 0 "$(_cleartext "$pcap")" "cleartext packets of the protected flow sent by gw1"
    lab_log "info: cleartext packets of the flow sent by the peer (charon) meanwhile: $(_peer_cleartext "$pcap")"

    lab_log "== vpnd --flush: everything of vpnd's leaves the kernel (and the flow is in clear)"
    ip netns exec gw1 "$VPND" -c "$conf" --flush >"$LAB_LOGDIR/flush.log" 2>&1 || lab_fail "vpnd --flush failed"
    assert_contains "$LAB_LOGDIR/flush.log" 'removed 3 policies, 0 SAs, 0 routes and 0 interfaces' "flush report"
    assert_eq 0 "$(_policies)" "policies after --flush"
    # The same capture now sees the flow: the zero above was not a blind filter.
    start_capture gw1 t0 'not esp and not udp port 500 and not udp port 4500'
    ping_count host1 203.0.113.10 3 >/dev/null
    pcap=$(stop_capture gw1 t0)
    assert_ge 3 "$(_cleartext "$pcap")" "cleartext packets after --flush (the capture works)"

    lab_log "== start: on-demand, with traffic that waited while vpnd was stopped"
    # The pings blocked after SIGTERM left the kernel's larval SA (its ACQUIRE unanswered);
    # the kernel asks no more while it lives, so vpnd takes it as an ACQUIRE at start.
    write_vpnd_conf "$conf" start=on-demand
    start_vpnd gw1 "$conf"
    lab_wait 30 "the waiting flow brought up at start" _ike_up
    ping_ok host1 203.0.113.10 3

    lab_log "== clear: an on-demand peer stays down until its next packet's ACQUIRE"
    _vpnctl clear crypto session remote 192.0.2.2 >/dev/null || lab_fail "vpnctl clear failed"
    lab_wait 20 "charon saw the Delete" _ike_gone
    sleep 3
    assert_eq "" "$(ike_state peer1 site)" "no IKE SA before there is traffic"
    ping_count host1 203.0.113.10 2 >/dev/null
    lab_wait 30 "ACQUIRE initiated the tunnel" _ike_up
    assert_ge 2 "$(grep -c 'kernel ACQUIRE' "$LAB_LOGDIR/vpnd-gw1.log")" "ACQUIREs vpnd acted on"
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1
}
