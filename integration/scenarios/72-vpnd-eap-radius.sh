# shellcheck shell=bash
# 72-vpnd-eap-radius: EAP through RADIUS (issue 12 items 2 and 5, RFC 7296 2.16, RFC 3579).
# A strongSwan road-warrior client in peer1 (auth = eap-mschapv2, id and eap_id joe@cclient:
# vpnd takes IDi as the EAP identity, as Debian's charon has no eap-identity plugin and NAKs
# an EAP-Request/Identity; the gateway proves itself with its PSK) connects to vpnd in gw1, which relays EAP to FreeRADIUS
# (joe@cclient in its users file, with a Class reply attribute) and signs its last AUTH with
# the MSK from MS-MPPE-Recv/Send-Key. A second peer (peer2, site-to-site PSK) is up all along.
# A) joe connects, pings across, vpnctl's session carries the user; the client leaves: the
#    detail file has Start and Stop with User-Name joe@cclient and the Class.
# B) A wrong password: the client gets AUTHENTICATION_FAILED, no Start.
# C) FreeRADIUS down: joe is refused with AUTHENTICATION_FAILED after the RADIUS
#    retransmits; peer2's tunnel keeps carrying pings. FreeRADIUS back: joe connects again.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }
_joe() { _records --where User-Name=joe@cclient "$@"; }

# "cclient-gold" as FreeRADIUS's detail file writes an octets attribute.
CLASS_HEX=0x$(printf 'cclient-gold' | od -An -tx1 | tr -d ' \n')

# _client_conf DIR PASSWORD : the road-warrior connection "rw" of peer1.
_client_conf() {
    local dir=$1 pw=$2
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
    echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    cat >"$dir/swanctl/conf.d/rw.conf" <<EOF
connections {
    rw {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256gcm16-prfsha256-x25519
        local {
            auth = eap-mschapv2
            id = joe@cclient
            eap_id = joe@cclient
        }
        remote {
            auth = psk
            id = gw1.lab.example
        }
        children {
            rw {
                local_ts = 203.0.113.0/26
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
        secret = "$pw"
    }
    ike-gw {
        id = gw1.lab.example
        secret = "lab-secret-0123456789"
    }
}
EOF
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
  retransmit: { timeout: 1s, base: 1.5, tries: 3 }
radius:
  servers:
    - { name: lab-radius, address: 192.0.2.10, auth_port: 1812, acct_port: 1813, key: testing123 }
  timeout: 1s
  retransmit: 1
accounting:
  journal: $LAB_WORKDIR/acct/accounting.journal
  lists:
    lab: { mode: start-stop, groups: [radius] }
peers:
  - name: rw
    address: 192.0.2.2
    local_id: "@gw1.lab.example"
    remote_id: "%any"
    psk: "lab-secret-0123456789"
    reverse_route: true
    auth: { remote: eap-radius, radius_group: radius }
    accounting: lab
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.0/26]
  - name: peer2
    address: 192.0.2.3
    local_id: "@gw1.lab.example"
    remote_id: "@peer2.lab.example"
    psk: "lab-secret-peer2"
    reverse_route: true
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [203.0.113.64/26]
YAML
}

# _connect : swanctl --initiate of rw in peer1; its status.
_connect() { swanctl_in peer1 --initiate --child rw --timeout 40 >>"$LAB_LOGDIR/swanctl-rw.log" 2>&1; }

_auth_failed_count() { grep -c 'received AUTHENTICATION_FAILED notify' "$LAB_LOGDIR/charon-peer1.log" || true; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1 d2=$LAB_WORKDIR/charon-peer2
    LAB_RADIUS_USERS=$'joe@cclient Cleartext-Password := "joe-password"\n\tClass := "cclient-gold"'
    export LAB_RADIUS_USERS
    start_freeradius radius
    _client_conf "$d1" joe-password
    start_charon peer1 "$d1"
    write_swanctl_conf "$d2" name=site local_addr=192.0.2.3 remote_addr=192.0.2.1 \
        local_id=peer2.lab.example remote_id=gw1.lab.example psk=lab-secret-peer2 \
        local_ts=203.0.113.64/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer2 "$d2"
    _vpnd_conf "$conf"
    start_vpnd gw1 "$conf"
    swanctl_in peer2 --initiate --child site --timeout 30 >/dev/null || lab_fail "peer2 did not connect"
    wait_ike_established peer2 site 30

    lab_log "== A: joe@cclient through EAP-MSCHAPv2 and FreeRADIUS"
    _connect || lab_fail "joe's connection failed: $(tail -5 "$LAB_LOGDIR/swanctl-rw.log")"
    wait_ike_established peer1 rw 30
    ping_ok host1 203.0.113.10 3
    local user
    user=$(_vpnctl --json show crypto session detail | "${LAB_PY[@]}" -c '
import json, sys
s = [x for x in json.load(sys.stdin)["sessions"] if x["key"]["peer"].startswith("192.0.2.2:")]
print(s[0]["user"]["username"] if len(s) == 1 and s[0].get("user") else "none")')
    assert_eq joe@cclient "$user" "vpnctl: the session's user"
    lab_wait 20 "joe's Start" output_is 1 _joe --where Acct-Status-Type=Start --count
    assert_eq "$CLASS_HEX" "$(_joe --where Acct-Status-Type=Start --get Class)" "Start echoes the Access-Accept's Class"
    swanctl_in peer1 --terminate --ike rw --timeout 20 >/dev/null || lab_fail "terminate failed"
    lab_wait 20 "joe's Stop" output_is 1 _joe --where Acct-Status-Type=Stop --count
    assert_eq "$CLASS_HEX	User-Request" "$(_joe --where Acct-Status-Type=Stop --get Class,Acct-Terminate-Cause)" \
        "Stop: Class echoed, the client left"
    ping_ok host1 203.0.113.70 2

    lab_log "== B: a wrong password"
    _client_conf "$d1" wrong-password
    swanctl_in peer1 --load-all >/dev/null 2>&1 || lab_fail "swanctl --load-all failed"
    local before
    before=$(_auth_failed_count)
    _connect && lab_fail "a wrong password connected"
    lab_wait 10 "AUTHENTICATION_FAILED at the client" output_ge $((before + 1)) _auth_failed_count
    vpnd_log_has gw1 'rejected by RADIUS server lab-radius' || lab_fail "vpnd did not log the Access-Reject"
    sleep 2
    assert_eq 1 "$(_joe --where Acct-Status-Type=Start --count)" "no Start for the refused client"

    lab_log "== C: FreeRADIUS down, then back"
    _client_conf "$d1" joe-password
    swanctl_in peer1 --load-all >/dev/null 2>&1 || lab_fail "swanctl --load-all failed"
    stop_freeradius radius
    before=$(_auth_failed_count)
    ping_background host1 203.0.113.70 25 site2
    _connect && lab_fail "connected with FreeRADIUS down"
    lab_wait 10 "AUTHENTICATION_FAILED with FreeRADIUS down" output_ge $((before + 1)) _auth_failed_count
    vpnd_log_has gw1 'no RADIUS authentication server answered' || lab_fail "vpnd did not log the unanswered server"
    local sent recv
    read -r sent recv < <(ping_summary site2)
    lab_log "peer2 meanwhile: $recv of $sent pings"
    assert_eq "$sent" "$recv" "peer2's tunnel carried every ping during the outage"
    start_freeradius radius
    _connect || lab_fail "joe's connection failed after FreeRADIUS came back"
    wait_ike_established peer1 rw 30
    ping_ok host1 203.0.113.10 2
    lab_wait 20 "joe's second Start" output_is 2 _joe --where Acct-Status-Type=Start --count
}
