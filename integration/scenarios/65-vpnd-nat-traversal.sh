# shellcheck shell=bash
# 65-vpnd-nat-traversal: NAT traversal (issue 11.1, RFC 7296 2.23, RFC 3948). strongSwan in
# peer3 sits behind nat1, a router namespace with nftables masquerade; it initiates to vpnd
# in gw1, which sees it only as the NAT's public address 192.0.2.30.
#
#   hostp3 203.0.113.130 -- peer3 198.51.100.130 -- nat1 198.51.100.129 | 192.0.2.30 -- br0 -- gw1
#   (203.0.113.128/26)      (charon)                 (masquerade)
#
# Checks: both ends detect the NAT, the IKE SA floats to 4500 and the children are
# ESP-in-UDP (gw1's SAs: encap espinudp; on the wire only UDP 4500, no plain ESP), pings
# cross both ways, `vpnctl --json show crypto session detail` shows the NAT's address and
# port with the N capability. Then the NAT's mapping changes (masquerade to a new port range,
# conntrack flushed): the next ESP or IKE from charon comes from a new port, vpnd follows it
# (XFRM MAPPING or the authenticated DPD) and traffic flows again on the same IKE SA.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _session FIELD... : fields of vpnd's one session (key.peer, ike_sas.0.capabilities...).
_session() {
    _vpnctl --json show crypto session detail | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
if len(s) != 1: print("sessions:%d" % len(s)); sys.exit()
for f in sys.argv[1:]:
    v = s[0]
    for k in f.split("."): v = v[int(k)] if k.isdigit() else v[k]
    print(",".join(v) if isinstance(v, list) else v)' "$@"
}

_on_new_range() {
    [[ $(_session key.peer) =~ ^192\.0\.2\.30:41[0-9]{3}$ ]] &&
        ip -n gw1 xfrm state | grep -qE 'encap type espinudp sport 4500 dport 41[0-9]{3} '
}

_nat_topology() {
    lab_ns_add nat1
    lab_ns_add peer3
    lab_ns_add hostp3
    lab_transport_attach nat1 192.0.2.30/24
    lab_inner_link nat1 198.51.100.129/26 peer3 198.51.100.130/26
    lab_inner_link peer3 203.0.113.129/26 hostp3 203.0.113.130/26
    lab_topology_apply
    # The bridge port lives in "net", which lab_topology_apply only configures when new.
    ip -n net link set nat1 master br0 up || lab_fail "nat1's bridge port"
    lab_ns_sysctl_multi nat1:net.ipv4.ip_forward=1 peer3:net.ipv4.ip_forward=1
    command -v nft >/dev/null || lab_fail "nft missing (integration/install-deps.sh installs nftables)"
    _masquerade ""
}

# _masquerade [to :PORTS] : nat1's source NAT of its inside network out of t0 (a port
# range needs the rule to name its protocol: all that leaves is UDP, IKE and ESP in UDP).
_masquerade() {
    local l4=""
    [[ -z $1 ]] || l4="meta l4proto udp"
    ip netns exec nat1 nft -f - <<NFT || lab_fail "nft in nat1"
flush ruleset
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "t0" ip saddr 198.51.100.128/26 $l4 masquerade $1
    }
}
NFT
}

_ike_sa_count() { swanctl_in peer3 --list-sas --ike site 2>/dev/null | grep -c '^site: #' || true; }
_ike_uid() { swanctl_in peer3 --list-sas --ike site 2>/dev/null | sed -n 's/^site: #\([0-9]*\),.*/\1/p' | head -1; }

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer3 conf=$LAB_WORKDIR/vpnd.yaml pcap out
    _nat_topology
    # charon's DPD every 5 s: after the remap its authenticated INFORMATIONAL comes from
    # the new port even when no traffic flows.
    write_swanctl_conf "$d" name=site local_addr=198.51.100.130 remote_addr=192.0.2.1 \
        local_id=peer3.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.128/26 remote_ts=198.51.100.0/25 start_action=none dpd_delay=5s
    start_charon peer3 "$d"
    write_vpnd_conf "$conf" peer_name=peer3 peer_addr=192.0.2.30 remote_id=peer3.lab.example \
        remote_ts=203.0.113.128/26 start=respond description="peer3 behind nat1"
    start_vpnd gw1 "$conf"
    start_capture gw1 t0 udp port 4500 or esp or udp port 500

    swanctl_in peer3 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate-peer3.log" 2>&1 ||
        lab_fail "charon could not initiate to vpnd through the NAT (see initiate-peer3.log)"
    wait_ike_established peer3 site 40
    swanctl_in peer3 --list-sas >"$LAB_LOGDIR/list-sas-1.txt"
    # charon marks the NAT it found in front of itself.
    assert_contains "$LAB_LOGDIR/list-sas-1.txt" '198\.51\.100\.130\[4500\]' "charon floated to 4500"
    assert_contains "$LAB_LOGDIR/list-sas-1.txt" '192\.0\.2\.1\[4500\]' "charon talks to vpnd's 4500"
    lab_wait 10 "vpnd installed 2 SAs in gw1" test "$(xfrm_sa_count gw1)" = 2
    ip -n gw1 xfrm state >"$LAB_LOGDIR/gw1-xfrm-state.txt"
    assert_eq 2 "$(grep -c 'encap type espinudp' "$LAB_LOGDIR/gw1-xfrm-state.txt")" \
        "both of gw1's SAs are ESP-in-UDP"
    vpnd_log_has gw1 'IKE SA established.*nat_t=true' || lab_fail "vpnd did not log a NAT-T IKE SA"

    ping_ok host1 203.0.113.130 5
    ping_ok hostp3 198.51.100.10 5
    pcap=$(stop_capture gw1 t0)
    # 20 went by (the pings were answered); tcpdump on the veth recorded 14 of them in a
    # first run, so the floor is 10: what matters is that none is plain ESP (below).
    assert_ge 10 "$(pcap_count "$pcap" udp port 4500 and greater 100)" "ESP-in-UDP packets on the wire"
    assert_eq 0 "$(pcap_count "$pcap" esp)" "plain ESP packets on the wire"

    local peer f=$LAB_LOGDIR/session-1.txt
    _session key.peer ike_sas.0.remote ike_sas.0.local ike_sas.0.capabilities >"$f"
    assert_contains "$f" '^192\.0\.2\.30:[0-9]+$' "session at the NAT's public address"
    assert_contains "$f" '^192\.0\.2\.1:4500$' "vpnd's side of the IKE SA on 4500"
    assert_contains "$f" '^N$' "Capabilities: N (NAT-T)"
    peer=$(head -1 "$f")
    local port1=${peer##*:}
    _vpnctl show crypto session detail >"$LAB_LOGDIR/show-detail-1.txt"
    assert_contains "$LAB_LOGDIR/show-detail-1.txt" "^Peer: 192\.0\.2\.30 port $port1 " "show crypto session detail: the NAT'd address and port"
    assert_contains "$LAB_LOGDIR/show-detail-1.txt" "IKE SA: local 192\.0\.2\.1/4500 remote 192\.0\.2\.30/$port1 Active" "detail: the IKE SA on the NAT-T ports"
    assert_contains "$LAB_LOGDIR/show-detail-1.txt" "Capabilities:N " "detail: Capabilities:N"
    local uid
    uid=$(_ike_uid)

    lab_log "== the NAT's mapping changes"
    _masquerade "to :41000-41999"
    ip netns exec nat1 conntrack -F >"$LAB_LOGDIR/conntrack-flush.log" 2>&1 ||
        lab_fail "conntrack -F in nat1"
    # Traffic from behind the NAT first: its ESP comes from the new port (XFRM MAPPING),
    # and charon's DPD does too within 5 s.
    ping_count hostp3 198.51.100.10 3 >/dev/null
    lab_wait 20 "vpnd followed the new mapping" vpnd_log_has gw1 "peer's NAT mapping moved|kernel saw the peer's NAT mapping move"
    # The flush can give a flow a passing mapping outside the new range before the rule's
    # (seen once: 49056, then 41151 three seconds later): wait until vpnd and the kernel's
    # outbound SA are both on the new range.
    lab_wait 20 "the session and the outbound SA on the new port range" _on_new_range
    ping_ok host1 203.0.113.130 5
    ping_ok hostp3 198.51.100.10 5
    f=$LAB_LOGDIR/session-2.txt
    _session key.peer >"$f"
    assert_contains "$f" '^192\.0\.2\.30:41[0-9]{3}$' "session moved to the new port"
    peer=$(head -1 "$f")
    assert_eq "$uid" "$(_ike_uid)" "the same IKE SA in charon"
    assert_eq 1 "$(_ike_sa_count)" "one IKE SA in charon"
    ip -n gw1 xfrm state >"$LAB_LOGDIR/gw1-xfrm-state-2.txt"
    assert_contains "$LAB_LOGDIR/gw1-xfrm-state-2.txt" "encap type espinudp sport 4500 dport ${peer##*:}" \
        "gw1's outbound SA sends to the new port"
    stop_vpnd gw1
}
