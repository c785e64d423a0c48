# shellcheck shell=bash
# vpnd-xfrm: ESP in UDP (RFC 3948, NAT-T) on port 4500: the packets on the wire are UDP.
source "$LAB_ROOT/lib-xfrm.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=120

scenario_run() {
    # The kernel decapsulates ESP-in-UDP only on a socket with UDP_ENCAP set (what an IKE
    # daemon's port-4500 socket does): open one in each gateway for the test.
    local g
    for g in gw1 peer1; do
        ip netns exec "$g" python3 "$LAB_ROOT/tools/udp_encap_socket.py" 4500 \
            >"$LAB_LOGDIR/encap-$g.log" 2>&1 &
        echo $! >"$LAB_WORKDIR/encap-$g.pid"
    done
    # shellcheck disable=SC2016 # expanded by the inner bash
    lab_wait 10 "encap sockets bound" bash -c 'grep -q bound "$0" && grep -q bound "$1"' \
        "$LAB_LOGDIR/encap-gw1.log" "$LAB_LOGDIR/encap-peer1.log"
    start_capture gw1 t0 udp port 4500 or esp
    xfrm_install_pair gcm256 --encap 4500:4500
    assert_eq 4500 "$(xfrm_sa_field gw1 0xc0010001 encap | python3 -c 'import ast,sys; print(ast.literal_eval(sys.stdin.read())["dport"])')" "encap port read back"
    ping_ok host1 203.0.113.10 5
    xfrm_compare_counters gw1 >&2
    local pcap
    pcap=$(stop_capture gw1 t0)
    assert_eq 10 "$(pcap_count "$pcap" udp port 4500)" "ESP-in-UDP packets on the wire (5 out, 5 back)"
    assert_eq 0 "$(pcap_count "$pcap" esp)" "plain ESP packets on the wire"
    for g in gw1 peer1; do lab_stop_pid "$(cat "$LAB_WORKDIR/encap-$g.pid")" "encap socket $g"; done
}
