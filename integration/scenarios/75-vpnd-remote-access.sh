# shellcheck shell=bash
# 75-vpnd-remote-access: issue 12's whole road warrior. A strongSwan client in peer3, behind
# nat1's masquerade (as 65), connects to vpnd's profile "cclient" (address any, remote_id
# '*@cclient'): vpnd proves itself with its certificate from a lab CA the scenario makes
# (ECDSA, CERT in IKE_AUTH; charon checks it against that CA), the client authenticates with
# EAP-MSCHAPv2 as joe@cclient, relayed to FreeRADIUS (users file, with a Class), and asks for
# an address (vips = 0.0.0.0): it gets one from pool addressA, and pings host1 from it.
# Checks: the NAT is seen (IKE on 4500, ESP in UDP, the N capability), the session names the
# user, the address and the NAT's public address; FreeRADIUS's Start and Stop carry
# User-Name joe@cclient, the Framed-IP-Address the client got, isakmp-group-id=cclient and
# the Class; the Stop's octets equal the kernel's counters of the session's SAs.
source "$LAB_ROOT/lib-vpnd.sh"
source "$LAB_ROOT/lib-pki.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_joe() { radius_detail_records "$RADIUS_DETAIL_FILE" --where User-Name=joe@cclient "$@"; }
CLASS_HEX=0x$(printf 'cclient-gold' | od -An -tx1 | tr -d ' \n')

# _session FIELD... : fields of vpnd's one session (dotted paths into its JSON).
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

_free() { _vpnctl --json show ip local pool | python3 -c 'import json, sys; print(json.load(sys.stdin)["pools"][0]["free"])'; }

_nat_topology() {
    lab_ns_add nat1
    lab_ns_add peer3
    lab_transport_attach nat1 192.0.2.30/24
    lab_inner_link nat1 198.51.100.129/26 peer3 198.51.100.130/26
    lab_topology_apply
    ip -n net link set nat1 master br0 up || lab_fail "nat1's bridge port"
    lab_ns_sysctl_multi nat1:net.ipv4.ip_forward=1
    ip -n peer3 route replace default via 198.51.100.129
    ip netns exec nat1 nft -f - <<NFT || lab_fail "nft in nat1"
table ip nat {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "t0" ip saddr 198.51.100.128/26 masquerade
    }
}
NFT
}

_client_conf() {
    local dir=$1
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
    cp "$PKI/lab.pem" "$dir/swanctl/x509ca/"
    echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    cat >"$dir/swanctl/conf.d/rw.conf" <<CONF
connections {
    rw {
        version = 2
        local_addrs = 198.51.100.130
        remote_addrs = 192.0.2.1
        proposals = aes256gcm16-prfsha256-x25519
        vips = 0.0.0.0
        local {
            auth = eap-mschapv2
            id = joe@cclient
            eap_id = joe@cclient
        }
        remote {
            auth = pubkey
            id = gw1.lab.example
        }
        children {
            rw {
                local_ts = dynamic
                remote_ts = 198.51.100.0/25
                esp_proposals = aes256gcm16
                start_action = none
            }
        }
    }
}
secrets {
    eap-joe {
        id = joe@cclient
        secret = "joe-password"
    }
}
CONF
}

_vpnd_conf() {
    cat >"$1" <<YAML
local:
  addresses: [192.0.2.1]
log:
  level: debug
control:
  socket: $LAB_WORKDIR/vpnd.sock
ike_defaults:
  proposals: [aes256gcm16-prfsha256-x25519]
pools:
  addressA: { begin: 203.0.113.200, end: 203.0.113.202 }
radius:
  servers:
    - { name: lab-radius, address: 192.0.2.10, auth_port: 1812, acct_port: 1813, key: testing123 }
  timeout: 1s
  retransmit: 2
  vsa_send_accounting: true
accounting:
  journal: $LAB_WORKDIR/acct/accounting.journal
  lists:
    lab: { mode: start-stop, groups: [radius] }
peers:
  - name: cclient
    address: any
    description: "remote-access users of group cclient"
    local_id: "@gw1.lab.example"
    remote_id: "*@cclient"
    auth: { local: pubkey, remote: eap-radius, radius_group: radius }
    certificate: $PKI/gw1.pem
    private_key: $PKI/gw1.key
    start: respond
    reverse_route: true
    group: cclient
    accounting: lab
    pool: addressA
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [0.0.0.0/0]
YAML
}

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d=$LAB_WORKDIR/charon-peer3
    mkdir -p "$PKI"
    _ca lab "vpnd Lab CA"
    _leaf lab gw1 gw1.lab.example "ec -pkeyopt ec_paramgen_curve:P-256"
    _nat_topology
    LAB_RADIUS_USERS=$'joe@cclient Cleartext-Password := "joe-password"\n\tClass := "cclient-gold"'
    export LAB_RADIUS_USERS
    start_freeradius radius
    _client_conf "$d"
    start_charon peer3 "$d"
    _vpnd_conf "$conf"
    start_vpnd gw1 "$conf"

    swanctl_in peer3 --initiate --child rw --timeout 40 >"$LAB_LOGDIR/initiate.log" 2>&1 ||
        lab_fail "joe could not connect (initiate.log)"
    wait_ike_established peer3 rw 30
    assert_contains "$LAB_LOGDIR/charon-peer3.log" 'authentication of .gw1.lab.example. with ECDSA.* successful' \
        "charon verified vpnd's certificate signature"
    local vip
    vip=$(_session assigned_ip)
    [[ $vip =~ ^203\.0\.113\.20[0-2]$ ]] || lab_fail "assigned address '$vip'"
    ip -n peer3 addr show >"$LAB_LOGDIR/addr-peer3.txt"
    assert_contains "$LAB_LOGDIR/addr-peer3.txt" "inet $vip/32" "charon installed its virtual IP $vip"
    assert_eq "joe@cclient 192.0.2.30" "$(_session user.username key.peer | tr '\n' ' ' | sed 's/:[0-9]* $//')" \
        "the session: the EAP user, the NAT's public address"
    [[ $(_session key.peer) == 192.0.2.30:* && $(_session key.peer) != *:500 ]] ||
        lab_fail "peer port: $(_session key.peer) (the NAT's, floated off 500)"
    [[ ,$(_session ike_sas.0.capabilities), == *,N,* ]] || lab_fail "no N capability: $(_session ike_sas.0.capabilities)"
    ip -n gw1 xfrm state >"$LAB_LOGDIR/gw1-states.txt"
    assert_contains "$LAB_LOGDIR/gw1-states.txt" 'encap type espinudp' "ESP in UDP"

    ip netns exec peer3 ping -n -c 6 -i 0.2 -W 2 -I "$vip" 198.51.100.10 >"$LAB_LOGDIR/ping.log" 2>&1 ||
        lab_fail "joe could not ping host1 from $vip (ping.log)"
    lab_wait 20 "joe's Start" output_is 1 _joe --where Acct-Status-Type=Start --count
    assert_eq "$vip	$CLASS_HEX" \
        "$(_joe --where Acct-Status-Type=Start --where Cisco-AVPair=isakmp-group-id=cclient --get Framed-IP-Address,Class)" \
        "Start: Framed-IP-Address, isakmp-group-id, Class"
    # The kernel's counters of the session's two SAs, just before the client leaves.
    local in_bytes out_bytes
    in_bytes=$(xfrm_counter gw1 192.0.2.30 192.0.2.1 bytes)
    out_bytes=$(xfrm_counter gw1 192.0.2.1 192.0.2.30 bytes)
    lab_log "kernel: $in_bytes octets in, $out_bytes out"
    assert_ge 504 "$in_bytes" "6 pings in (84 B each)"
    swanctl_in peer3 --terminate --ike rw --timeout 20 >/dev/null || lab_fail "terminate failed"
    lab_wait 20 "joe's Stop" output_is 1 _joe --where Acct-Status-Type=Stop --count
    assert_eq "$in_bytes	$out_bytes	$vip	$CLASS_HEX	User-Request" \
        "$(_joe --where Acct-Status-Type=Stop --get Acct-Input-Octets,Acct-Output-Octets,Framed-IP-Address,Class,Acct-Terminate-Cause)" \
        "Stop: the kernel's octets, the address, the Class, the client left"
    assert_eq 1 "$(_joe --where Acct-Status-Type=Stop --where Cisco-AVPair=isakmp-group-id=cclient --count)" \
        "Stop: isakmp-group-id=cclient"
    lab_wait 10 "the lease freed" output_is 3 _free
}
