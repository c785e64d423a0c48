# shellcheck shell=bash
# 67-vpnd-fragmentation: IKE fragmentation (issue 11 item 3, RFC 7383). strongSwan in peer4
# sits behind rtr1, a router whose inside link has MTU 1280 and which DROPS every IP
# fragment (nftables before defragmentation, as many real networks do), so an IKE message
# above 1280 bytes can only cross as IKE fragments.
#
#   gw1 192.0.2.1 -- br0 -- 192.0.2.40 rtr1 198.51.100.193 =MTU 1280= 198.51.100.194 peer4 -- hostp4
#   (vpnd, 198.51.100.0/25)       (drops IP fragments)               (charon)   203.0.113.194
#
# The child has 128 traffic selectors on vpnd's side (each host of 198.51.100.0/25), so
# IKE_AUTH is about 2.3 KB each way. First the proof that the path needs it: vpnd with
# `fragmentation: false` sends IKE_AUTH whole, rtr1 drops its IP fragments and the IKE SA
# never comes up. Then with the default (on): vpnd initiates, then charon initiates to vpnd
# (`fragmentation = yes`); each time the tunnel comes up and carries pings both ways, the
# capture on gw1 counts SKF payloads (type 53) each way and no IKE datagram above 1280
# bytes, rtr1 drops no more fragments, and `vpnctl --json show crypto isakmp stats` counts
# the fragments sent and the messages reassembled.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_frag() { # FIELD of the fragments figures of show crypto isakmp stats
    _vpnctl --json show crypto isakmp stats |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_stats"]["fragments"][sys.argv[1]])' "$1"
}
_dropped() { # IP fragments rtr1 dropped so far
    ip netns exec rtr1 nft list chain inet lab nofrag | sed -n 's/.*counter packets \([0-9]*\) .*/\1/p'
}

# 198.51.100.0/32 ... 198.51.100.127/32, comma-separated.
_hosts() { local i s=""; for i in $(seq 0 127); do s+="${s:+, }198.51.100.$i/32"; done; echo "$s"; }

_topology() {
    lab_ns_add rtr1
    lab_ns_add peer4
    lab_ns_add hostp4
    lab_transport_attach rtr1 192.0.2.40/24
    lab_inner_link rtr1 198.51.100.193/26 peer4 198.51.100.194/26
    lab_inner_link peer4 203.0.113.193/26 hostp4 203.0.113.194/26
    lab_topology_apply
    ip -n net link set rtr1 master br0 up || lab_fail "rtr1's bridge port"
    ip -n rtr1 link set i0 mtu 1280 && ip -n peer4 link set e0 mtu 1280 || lab_fail "MTU 1280"
    ip -n gw1 route replace 198.51.100.192/26 via 192.0.2.40 dev t0 || lab_fail "gw1's route to rtr1"
    lab_ns_sysctl_multi rtr1:net.ipv4.ip_forward=1 peer4:net.ipv4.ip_forward=1
    command -v nft >/dev/null || lab_fail "nft missing (integration/install-deps.sh installs nftables)"
    # Before conntrack's defragmentation (priority -400): every fragment, first or later.
    ip netns exec rtr1 nft -f - <<'NFT' || lab_fail "nft in rtr1"
table inet lab {
    chain nofrag {
        type filter hook prerouting priority -500; policy accept;
        ip frag-off & 0x3fff != 0 counter drop
    }
}
NFT
}

# _vpnd_conf FILE START FRAG_LINE : vpnd.yaml for peer4 (START initiate|respond; FRAG_LINE
# an extra line of the peer's ike: section, or empty for the defaults).
_vpnd_conf() {
    cat >"$1" <<YAML
local:
  addresses: [192.0.2.1]
log:
  level: debug
control:
  socket: $LAB_WORKDIR/vpnd.sock
ike_defaults:
  retransmit: { timeout: 1s, base: 1.5, tries: 3 }
peers:
  - name: peer4
    address: 198.51.100.194
    description: "peer4 behind a 1280-byte path that drops IP fragments"
    local_id: "@gw1.lab.example"
    remote_id: "@peer4.lab.example"
    psk: "lab-secret-0123456789"
    start: $2
    reverse_route: true
    ike:
      proposals: [aes256gcm16-prfsha256-x25519]
      $3
    children:
      - name: lan
        local_ts: [$(_hosts)]
        remote_ts: [203.0.113.192/26]
        esp: [aes256gcm16]
YAML
}

# _ike_counts PCAP : "SKF-from-gw1 SKF-to-gw1 largest-IKE-IP-datagram" of a capture.
_ike_counts() {
    python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
off, out, inn, big = 24, 0, 0, 0
while off + 16 <= len(data):
    _, _, caplen, _ = struct.unpack_from("<IIII", data, off)
    pkt = data[off + 16: off + 16 + caplen]
    off += 16 + caplen
    if len(pkt) < 14 + 20 + 8 or pkt[12:14] != b"\x08\x00":
        continue
    ip = pkt[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack_from(">H", ip, 2)[0]
    if ip[9] != 17 or struct.unpack_from(">H", ip, 6)[0] & 0x1fff:
        continue
    src, dst = ip[12:16], ip[16:20]
    sport, dport = struct.unpack_from(">HH", ip, ihl)
    ike = ip[ihl + 8:]
    if 4500 in (sport, dport):
        if ike[:4] != b"\0\0\0\0":
            continue  # ESP in UDP or a keepalive
        ike = ike[4:]
    elif 500 not in (sport, dport):
        continue
    if len(ike) < 28:
        continue
    big = max(big, total)
    if ike[16] == 53:
        if src == bytes([192, 0, 2, 1]):
            out += 1
        else:
            inn += 1
print(out, inn, big)
PY
}

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer4 conf=$LAB_WORKDIR/vpnd.yaml pcap out inn big drops
    _topology
    write_swanctl_conf "$d" name=site local_addr=198.51.100.194 remote_addr=192.0.2.1 \
        local_id=peer4.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.192/26 remote_ts="$(_hosts)" start_action=none \
        ike_extra="fragmentation = yes"
    start_charon peer4 "$d"

    lab_log "== without IKE fragmentation the path cannot carry IKE_AUTH"
    _vpnd_conf "$conf" initiate "fragmentation: false"
    start_vpnd gw1 "$conf"
    lab_wait 30 "vpnd gave up on IKE_AUTH" vpnd_log_has gw1 'IKE SA down.*IKE_AUTH request unanswered'
    drops=$(_dropped)
    assert_ge 4 "${drops:-0}" "IP fragments of IKE_AUTH dropped by rtr1"
    assert_eq 0 "$(_frag messages_fragmented)" "nothing fragmented by vpnd with fragmentation: false"
    stop_vpnd gw1
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-nofrag.log"
    swanctl_in peer4 --terminate --ike site --force >/dev/null 2>&1 || true

    start_capture gw1 t0 udp port 500 or udp port 4500 or esp
    lab_log "== vpnd initiates, fragmentation on (the default)"
    _vpnd_conf "$conf" initiate ""
    start_vpnd gw1 "$conf"
    wait_ike_established peer4 site 40
    lab_wait 10 "vpnd installed 2 SAs in gw1" test "$(xfrm_sa_count gw1)" = 2
    ping_ok host1 203.0.113.194 5
    ping_ok hostp4 198.51.100.10 5
    assert_ge 1 "$(_frag messages_fragmented)" "vpnd fragmented its IKE_AUTH"
    assert_ge 2 "$(_frag fragments_sent)" "fragments sent by vpnd"
    assert_ge 1 "$(_frag reassembled)" "vpnd reassembled charon's IKE_AUTH response"
    _vpnctl show crypto isakmp stats >"$LAB_LOGDIR/isakmp-stats-initiator.txt"
    stop_vpnd gw1
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-initiator.log"
    lab_wait 20 "charon's IKE SA gone" test -z "$(ike_state peer4 site)"

    lab_log "== charon initiates to vpnd"
    _vpnd_conf "$conf" respond ""
    start_vpnd gw1 "$conf"
    swanctl_in peer4 --initiate --child site --timeout 30 >"$LAB_LOGDIR/initiate-peer4.log" 2>&1 ||
        lab_fail "charon could not initiate to vpnd (see initiate-peer4.log)"
    wait_ike_established peer4 site 40
    lab_wait 10 "vpnd installed 2 SAs in gw1" test "$(xfrm_sa_count gw1)" = 2
    ping_ok host1 203.0.113.194 5
    ping_ok hostp4 198.51.100.10 5
    assert_ge 1 "$(_frag reassembled)" "vpnd reassembled charon's IKE_AUTH request"
    assert_ge 1 "$(_frag messages_fragmented)" "vpnd fragmented its IKE_AUTH response"
    _vpnctl show crypto isakmp stats >"$LAB_LOGDIR/isakmp-stats-responder.txt"
    grep -E 'IKE fragmentation|Fragments dropped' "$LAB_LOGDIR/isakmp-stats-responder.txt" >&2
    grep -E 'fragment' "$LAB_LOGDIR/charon-peer4.log" | tail -5 >&2 || true

    pcap=$(stop_capture gw1 t0)
    read -r out inn big <<<"$(_ike_counts "$pcap")"
    lab_log "SKF datagrams: $out from gw1, $inn to gw1; largest IKE datagram $big bytes"
    # Two IKE_AUTHs each way, two fragments each; tcpdump on a veth in this VM may miss
    # some (lab 65), hence the floor of 2.
    assert_ge 2 "$out" "SKF payloads sent by vpnd on the wire"
    assert_ge 2 "$inn" "SKF payloads sent by charon on the wire"
    [[ $big -le 1280 ]] || lab_fail "an IKE datagram of $big bytes (above 1280) on the wire"
    assert_eq "$drops" "$(_dropped)" "no IP fragment reached rtr1 with IKE fragmentation on"
    stop_vpnd gw1
}
