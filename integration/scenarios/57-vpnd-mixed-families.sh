# shellcheck shell=bash
# 57-vpnd-mixed-families: inner and outer address families apart. IPv6 on the transport
# (2001:db8::1 gw1, 2001:db8::2 peer1) and behind the gateways (2001:db8:1::/64 host1,
# 2001:db8:2::/64 hostp1). (a) IPv4 subnets over IPv6 gateways, (b) IPv6 subnets over IPv4
# gateways: charon responds, pings cross both ways, the ESP counters in gw1 count them.
# The SAs carry no selector family (XFRM_STATE_AF_UNSPEC, as strongSwan installs them):
# with the outer family's selector the kernel found no state for the inner traffic.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

_ipv6_on() {
    local ns
    for ns in gw1 peer1 host1 hostp1; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
        for ifc in $(ip -n "$ns" -o link show | sed -n 's/^[0-9]*: \([a-z0-9]*\)[@:].*/\1/p'); do
            ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=0" 2>/dev/null || true
        done
    done
    ip netns exec gw1 sysctl -qw net.ipv6.conf.all.forwarding=1
    ip netns exec peer1 sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n gw1 addr add 2001:db8::1/64 dev t0 nodad
    ip -n peer1 addr add 2001:db8::2/64 dev t0 nodad
    ip -n gw1 addr add 2001:db8:1::1/64 dev i0 nodad
    ip -n host1 addr add 2001:db8:1::10/64 dev e0 nodad
    ip -n host1 -6 route add default via 2001:db8:1::1
    ip -n peer1 addr add 2001:db8:2::1/64 dev i0 nodad
    ip -n hostp1 addr add 2001:db8:2::10/64 dev e0 nodad
    ip -n hostp1 -6 route add default via 2001:db8:2::1
}

_esp_pkts() { read -r p _ <<<"$(xfrm_counter gw1 "$1" "$2" packets,bytes)"; echo "$p"; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1
    _ipv6_on
    lab_wait 10 "IPv6 between the gateways" ip netns exec gw1 ping -6 -c 1 -W 1 2001:db8::2

    lab_log "== (a) IPv4 subnets over IPv6 gateways"
    write_swanctl_conf "$d1" name=site local_addr=2001:db8::2 remote_addr=2001:db8::1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$d1"
    write_vpnd_conf "$conf" local_addrs="192.0.2.1, 2001:db8::1" peer_addr=2001:db8::2 start=initiate
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    ping_ok host1 203.0.113.10 5
    assert_eq 5 "$(_esp_pkts 2001:db8::1 2001:db8::2)" "IPv4 pings out of gw1 in IPv6 ESP"
    assert_eq 5 "$(_esp_pkts 2001:db8::2 2001:db8::1)" "IPv4 replies into gw1 in IPv6 ESP"
    stop_vpnd gw1
    stop_charon peer1
    ip netns exec gw1 "$VPND" -c "$conf" --flush >/dev/null

    lab_log "== (b) IPv6 subnets over IPv4 gateways"
    rm -rf "$d1"
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=2001:db8:2::/64 remote_ts=2001:db8:1::/64 start_action=none
    start_charon peer1 "$d1"
    write_vpnd_conf "$conf" local_ts=2001:db8:1::/64 remote_ts=2001:db8:2::/64 start=respond
    start_vpnd gw1 "$conf"
    swanctl_in peer1 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate.log" 2>&1 ||
        lab_fail "charon could not initiate to vpnd (see initiate.log)"
    wait_ike_established peer1 site 30
    local got
    got=$(ip netns exec host1 ping -6 -n -q -c 5 -i 0.2 -W 2 2001:db8:2::10 2>&1 | sed -n 's/.* \([0-9]\+\) received.*/\1/p')
    assert_eq 5 "${got:-0}" "IPv6 pings host1 -> hostp1 over IPv4 gateways"
    assert_eq 5 "$(_esp_pkts 192.0.2.1 192.0.2.2)" "IPv6 pings out of gw1 in IPv4 ESP"
    assert_eq 5 "$(_esp_pkts 192.0.2.2 192.0.2.1)" "IPv6 replies into gw1 in IPv4 ESP"
    stop_vpnd gw1
}
