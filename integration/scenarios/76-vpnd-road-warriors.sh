# shellcheck shell=bash
# 76-vpnd-road-warriors: issue 12's road warriors that 72-75 leave out. vpnd proves itself
# with its certificate from a lab CA; two profiles at `address: any`:
#   cclient (remote_id '*@cclient', EAP through FreeRADIUS, pool addressA, ipv6_pool v6)
#   certs   (remote_id '*.rw.lab.example', certificates from the lab CA, pool addressA)
# (c)+(d) ann@cclient in peer1, dual stack (vips = 0.0.0.0, ::), EAP-MSCHAPv2; FreeRADIUS's
#   users file gives her Framed-Pool "gold" and Session-Timeout 20: she gets an IPv4
#   address from gold (not the profile's addressA) and an IPv6 one from v6, her child's
#   selectors are those two addresses, she pings host1 over IPv4 and IPv6 (2001:db8:100::10),
#   the Start carries the gold address; 20 s after she came up vpnd deletes her IKE SA
#   (charon logs the DELETE) and the Stop says Acct-Terminate-Cause = Session-Timeout.
# (b) carl.rw.lab.example in peer2, a certificate and no EAP, gets an address from addressA
#   and pings host1 all along, while peer3 comes with an expired certificate, then with one
#   from another CA: each refused with AUTHENTICATION_FAILED (charon's log), counted by
#   reason, logged by vpnd, and no Start for them; carl loses no ping.
source "$LAB_ROOT/lib-vpnd.sh"
source "$LAB_ROOT/lib-pki.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }

# _session_of USER FIELD... : fields of the one session `show crypto session username USER`
# lists (absent fields print as "none").
_session_of() {
    _vpnctl --json show crypto session username "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
if len(s) != 1: print("sessions:%d" % len(s)); sys.exit()
for f in sys.argv[1:]: print(s[0].get(f, "none"))' "${@:2}"
}

# _pool NAME FIELD : one figure of a pool from `show ip local pool --json`.
_pool() {
    _vpnctl --json show ip local pool | python3 -c '
import json, sys
p = [p for p in json.load(sys.stdin)["pools"] if p["name"] == sys.argv[1]]
print(p[0][sys.argv[2]] if p else "no-pool")' "$1" "$2"
}

_refused() {
    _vpnctl --json show crypto isakmp stats |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["ike_stats"]["auth"]["refused"].get(sys.argv[1], 0))' "$1"
}

_ipv6_on() {
    local ns ifc
    for ns in gw1 host1 peer1; do
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.default.disable_ipv6=0
        for ifc in $(ip -n "$ns" -o link show | sed -n 's/^[0-9]*: \([a-z0-9]*\)[@:].*/\1/p'); do
            ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=0" 2>/dev/null || true
        done
    done
    ip netns exec gw1 sysctl -qw net.ipv6.conf.all.forwarding=1
    ip -n gw1 addr add 2001:db8:100::1/64 dev i0 nodad
    ip -n host1 addr add 2001:db8:100::10/64 dev e0 nodad
    ip -n host1 -6 route add default via 2001:db8:100::1
}

_pki() {
    mkdir -p "$PKI"
    _ca lab "vpnd Lab CA"
    _ca other "Other CA"
    local ec256="ec -pkeyopt ec_paramgen_curve:P-256"
    _leaf lab gw1 gw1.lab.example "$ec256"
    _leaf lab carl carl.rw.lab.example "$ec256"
    _leaf lab expired dave.rw.lab.example "$ec256" 20200101000000Z 20210101000000Z
    _leaf other stranger erin.rw.lab.example "$ec256"
}

# _eap_client DIR : ann's dual-stack EAP-MSCHAPv2 connection "rw" in peer1.
_eap_client() {
    local dir=$1
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
    cp "$PKI/lab.pem" "$dir/swanctl/x509ca/"
    echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    cat >"$dir/swanctl/conf.d/rw.conf" <<CONF
connections {
    rw {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256gcm16-prfsha256-x25519
        vips = 0.0.0.0, ::
        local {
            auth = eap-mschapv2
            id = ann@cclient
            eap_id = ann@cclient
        }
        remote {
            auth = pubkey
            id = gw1.lab.example
        }
        children {
            rw {
                local_ts = dynamic
                remote_ts = 198.51.100.0/25, 2001:db8:100::/64
                esp_proposals = aes256gcm16
                start_action = none
            }
        }
    }
}
secrets {
    eap-ann {
        id = ann@cclient
        secret = "ann-password"
    }
}
CONF
}

# _cert_client DIR ADDR LEAF ID : a certificate-only road warrior "rw" (vips = 0.0.0.0).
_cert_client() {
    local dir=$1 addr=$2 leaf=$3 id=$4
    rm -rf "$dir"
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
    cp "$PKI/$leaf.pem" "$dir/swanctl/x509/"
    cp "$PKI/$leaf.key" "$dir/swanctl/private/"
    cp "$PKI/lab.pem" "$dir/swanctl/x509ca/"
    echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    cat >"$dir/swanctl/conf.d/rw.conf" <<CONF
connections {
    rw {
        version = 2
        local_addrs = $addr
        remote_addrs = 192.0.2.1
        proposals = aes256gcm16-prfsha256-x25519
        vips = 0.0.0.0
        local {
            auth = pubkey
            certs = $leaf.pem
            id = $id
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
  addressA: { begin: 203.0.113.200, end: 203.0.113.209 }
  gold: { begin: 203.0.113.220, end: 203.0.113.229 }
  v6: { prefix: "2001:db8:77::/120" }
trustpoints:
  - name: lab-ca
    cas: [$PKI/lab.pem]
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
    ipv6_pool: v6
    dns: [198.51.100.53, "2001:db8:100::53"]
    children:
      - name: rw
        local_ts: [198.51.100.0/25, "2001:db8:100::/64"]
        remote_ts: [0.0.0.0/0, "::/0"]
  - name: certs
    address: any
    local_id: "@gw1.lab.example"
    remote_id: "*.rw.lab.example"
    auth: { local: pubkey, remote: pubkey }
    certificate: $PKI/gw1.pem
    private_key: $PKI/gw1.key
    trustpoint: lab-ca
    start: respond
    reverse_route: true
    group: certs
    accounting: lab
    pool: addressA
    children:
      - name: rw
        local_ts: [198.51.100.0/25]
        remote_ts: [0.0.0.0/0]
YAML
}

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml
    lab_ns_add peer3
    lab_transport_attach peer3 192.0.2.4/24
    lab_topology_apply
    ip -n net link set peer3 master br0 up || lab_fail "peer3's bridge port"
    _ipv6_on
    _pki
    LAB_RADIUS_USERS=$'ann@cclient Cleartext-Password := "ann-password"\n\tFramed-Pool := "gold", Session-Timeout := 20'
    export LAB_RADIUS_USERS
    start_freeradius radius
    _eap_client "$LAB_WORKDIR/charon-peer1"
    start_charon peer1 "$LAB_WORKDIR/charon-peer1"
    _cert_client "$LAB_WORKDIR/charon-peer2" 192.0.2.3 carl carl.rw.lab.example
    start_charon peer2 "$LAB_WORKDIR/charon-peer2"
    _vpnd_conf "$conf"
    start_vpnd gw1 "$conf"

    lab_log "== (c, d) ann: dual stack, Framed-Pool gold, Session-Timeout 20"
    swanctl_in peer1 --initiate --child rw --timeout 40 >"$LAB_LOGDIR/initiate-ann.log" 2>&1 ||
        lab_fail "ann could not connect (initiate-ann.log)"
    local up_at=$SECONDS v4 v6 left
    { read -r v4; read -r v6; read -r left; } < <(_session_of ann@cclient assigned_ip assigned_ip6 session_timeout_s)
    lab_log "ann: $v4, $v6, session timeout in ${left}s"
    [[ $v4 =~ ^203\.0\.113\.22[0-9]$ ]] || lab_fail "ann's IPv4 address '$v4' is not from pool gold (Framed-Pool)"
    [[ $v6 =~ ^2001:db8:77::[0-9a-f]+$ ]] || lab_fail "ann's IPv6 address '$v6' is not from pool v6"
    ((left > 0 && left <= 20)) || lab_fail "show crypto session: Session-Timeout left '$left'"
    swanctl_in peer1 --list-sas >"$LAB_LOGDIR/list-sas-ann.txt"
    assert_contains "$LAB_LOGDIR/list-sas-ann.txt" "local  $v4/32 $v6/128|local  $v6/128 $v4/32" "ann's TSi: her two addresses"
    ip -n peer1 addr show >"$LAB_LOGDIR/addr-peer1.txt"
    assert_contains "$LAB_LOGDIR/addr-peer1.txt" "inet $v4/32" "charon installed $v4"
    assert_contains "$LAB_LOGDIR/addr-peer1.txt" "inet6 $v6/128" "charon installed $v6"
    assert_contains "$LAB_LOGDIR/charon-peer1.log" "INTERNAL_IP6_DNS" "the CFG_REPLY has an IPv6 DNS server"
    ip netns exec peer1 ping -n -c 2 -W 2 -I "$v4" 198.51.100.10 >"$LAB_LOGDIR/ping-ann4.log" 2>&1 ||
        lab_fail "ann could not ping host1 from $v4 (ping-ann4.log)"
    # Once the virtual IPv6 address is usable (charon adds it; no DAD wait on a /128 here).
    lab_wait 10 "ann's first IPv6 ping" ip netns exec peer1 ping -6 -n -c 1 -W 1 -I "$v6" 2001:db8:100::10
    ip netns exec peer1 ping -6 -n -c 2 -W 2 -I "$v6" 2001:db8:100::10 >"$LAB_LOGDIR/ping-ann6.log" 2>&1 ||
        lab_fail "ann could not ping 2001:db8:100::10 from $v6 (ping-ann6.log)"
    assert_eq 1 "$(_pool gold in_use)" "a lease in gold"
    assert_eq 0 "$(_pool addressA in_use)" "none in the profile's addressA"
    assert_eq 1 "$(_pool v6 in_use)" "an IPv6 lease"
    lab_wait 20 "ann's Start" output_is 1 _records --where User-Name=ann@cclient --where Acct-Status-Type=Start --count
    assert_eq "$v4	$v6" "$(_records --where User-Name=ann@cclient --where Acct-Status-Type=Start --get Framed-IP-Address,Framed-IPv6-Address)" \
        "Start: Framed-IP-Address from gold, Framed-IPv6-Address (RFC 6911) from v6"

    lab_log "== (b) carl by certificate, expired and unknown-CA clients refused"
    swanctl_in peer2 --initiate --child rw --timeout 40 >"$LAB_LOGDIR/initiate-carl.log" 2>&1 ||
        lab_fail "carl could not connect (initiate-carl.log)"
    local cv4
    cv4=$(_session_of carl.rw.lab.example assigned_ip)
    [[ $cv4 =~ ^203\.0\.113\.20[0-9]$ ]] || lab_fail "carl's address '$cv4' is not from addressA"
    ip netns exec peer2 ping -n -i 0.2 -c 100 -W 1 -I "$cv4" 198.51.100.10 >"$LAB_LOGDIR/ping-carl.log" 2>&1 &
    local carl_ping=$!
    local case leaf id kind why
    for case in "expired dave.rw.lab.example expired expired on" \
        "stranger erin.rw.lab.example unknown_ca issued by an unknown CA"; do
        read -r leaf id kind why <<<"$case"
        _cert_client "$LAB_WORKDIR/charon-peer3" 192.0.2.4 "$leaf" "$id"
        start_charon peer3 "$LAB_WORKDIR/charon-peer3"
        swanctl_in peer3 --initiate --child rw --timeout 20 >"$LAB_LOGDIR/initiate-$leaf.log" 2>&1 &&
            lab_fail "$id connected with the $leaf certificate"
        lab_wait 20 "$leaf: charon got AUTHENTICATION_FAILED" \
            grep -q 'received AUTHENTICATION_FAILED notify error' "$LAB_LOGDIR/charon-peer3.log"
        lab_wait 10 "$leaf: vpnd counted a $kind refusal" output_is 1 _refused "$kind"
        vpnd_log_has gw1 "authentication failed: .*$why" ||
            lab_fail "$leaf: vpnd did not log '$why'"
        stop_charon peer3
        mv "$LAB_LOGDIR/charon-peer3.log" "$LAB_LOGDIR/charon-peer3-$leaf.log"
    done
    wait "$carl_ping"
    local sent recv
    read -r sent recv < <(sed -n 's/^\([0-9]\+\) packets transmitted, \([0-9]\+\) received.*/\1 \2/p' "$LAB_LOGDIR/ping-carl.log")
    lab_log "carl meanwhile: $recv of $sent pings"
    assert_eq "100 100" "$sent $recv" "carl's tunnel carried every ping during the refusals"
    lab_wait 20 "carl's Start" output_is 1 _records --where User-Name=carl.rw.lab.example --where Acct-Status-Type=Start --count
    assert_eq "$cv4" "$(_records --where User-Name=carl.rw.lab.example --where Acct-Status-Type=Start \
        --where Cisco-AVPair=isakmp-group-id=certs --get Framed-IP-Address)" \
        "carl's Start: his address, isakmp-group-id=certs"
    assert_eq 0 "$(_records --where User-Name=dave.rw.lab.example --count)" "no record for the expired client"
    assert_eq 0 "$(_records --where User-Name=erin.rw.lab.example --count)" "no record for the unknown-CA client"

    lab_log "== (d) ann's Session-Timeout"
    lab_wait 40 "ann's Stop" output_is 1 _records --where User-Name=ann@cclient --where Acct-Status-Type=Stop --count
    local took=$((SECONDS - up_at))
    # When the Stop was looked for (after (b)), not when it came: a lower bound only.
    lab_log "ann's Stop found ${took}s after she came up"
    ((took >= 17)) || lab_fail "ann's session ended after ${took}s, before its Session-Timeout of 20"
    assert_eq "Session-Timeout	$v4	$v6" \
        "$(_records --where User-Name=ann@cclient --where Acct-Status-Type=Stop --get Acct-Terminate-Cause,Framed-IP-Address,Framed-IPv6-Address)" \
        "Stop: Acct-Terminate-Cause Session-Timeout"
    assert_contains "$LAB_LOGDIR/charon-peer1.log" "received DELETE for IKE_SA rw" "charon got vpnd's Delete"
    vpnd_log_has gw1 "session timeout \(RADIUS\)" || lab_fail "vpnd did not log the reason"
    lab_wait 10 "ann's leases freed" output_is "0 0" eval 'echo "$(_pool gold in_use) $(_pool v6 in_use)"'
    assert_eq "sessions:0" "$(_session_of ann@cclient assigned_ip)" "ann's session gone"
    assert_eq "$cv4" "$(_session_of carl.rw.lab.example assigned_ip)" "carl untouched"
    stop_vpnd gw1
}
