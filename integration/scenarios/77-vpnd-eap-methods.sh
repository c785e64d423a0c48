# shellcheck shell=bash
# 77-vpnd-eap-methods: vpnd relays EAP without knowing the method (RFC 7296 2.16, RFC 3579).
# strongSwan clients with the EAP-MD5 plugin of libcharon-extra-plugins (unpacked by
# install-deps.sh and loaded into these charons only, see start_charon) connect through
# vpnd's relay to FreeRADIUS: ann@cclient with EAP-MD5 from peer1 (a method that makes no
# MSK: both last AUTHs are keyed with SK_pi/SK_pr), joe@cclient with EAP-MSCHAPv2 from peer2
# at the same time. Each pings host1 from the address of the pool, each Start has its
# User-Name, and a wrong MD5 password is refused with AUTHENTICATION_FAILED and no Start
# while joe's tunnel carries every ping.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }
_assigned() {
    _vpnctl --json show crypto session username "$1" | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print(s[0].get("assigned_ip", "none") if len(s) == 1 else "sessions:%d" % len(s))'
}

# _client DIR ADDR METHOD USER PASSWORD : a road warrior "rw" with EAP method METHOD.
_client() {
    local dir=$1 addr=$2 method=$3 user=$4 pw=$5
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
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
            auth = eap-$method
            id = $user
            eap_id = $user
        }
        remote {
            auth = psk
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
    eap-user {
        id = $user
        secret = "$pw"
    }
    ike-gw {
        id = gw1.lab.example
        secret = "lab-secret-0123456789"
    }
}
CONF
}

_auth_failed_count() { grep -c 'received AUTHENTICATION_FAILED notify' "$LAB_LOGDIR/charon-peer1.log" || true; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1 d2=$LAB_WORKDIR/charon-peer2
    LAB_RADIUS_USERS=$'ann@cclient Cleartext-Password := "ann-password"\njoe@cclient Cleartext-Password := "joe-password"'
    export LAB_RADIUS_USERS
    start_freeradius radius
    _client "$d1" 192.0.2.2 md5 ann@cclient ann-password
    CHARON_EXTRA_PLUGINS="eap-md5" start_charon peer1 "$d1"
    _client "$d2" 192.0.2.3 mschapv2 joe@cclient joe-password
    start_charon peer2 "$d2"
    write_eap_gateway_conf "$conf" 1s
    start_vpnd gw1 "$conf"
    swanctl_in peer1 --stats >"$LAB_LOGDIR/stats-peer1.txt" 2>&1
    assert_contains "$LAB_LOGDIR/stats-peer1.txt" "loaded plugins: .*eap-md5" "peer1's charon has EAP-MD5"

    lab_log "== ann (EAP-MD5) and joe (EAP-MSCHAPv2) through the relay"
    swanctl_in peer1 --initiate --child rw --timeout 40 >"$LAB_LOGDIR/initiate-ann.log" 2>&1 ||
        lab_fail "ann could not connect with EAP-MD5 (initiate-ann.log)"
    swanctl_in peer2 --initiate --child rw --timeout 40 >"$LAB_LOGDIR/initiate-joe.log" 2>&1 ||
        lab_fail "joe could not connect with EAP-MSCHAPv2 (initiate-joe.log)"
    assert_contains "$LAB_LOGDIR/charon-peer1.log" "EAP method EAP_MD5 succeeded" "charon: EAP-MD5 succeeded"
    assert_contains "$LAB_LOGDIR/freeradius.log" "eap_md5" "FreeRADIUS ran EAP-MD5"
    local a j
    a=$(_assigned ann@cclient)
    j=$(_assigned joe@cclient)
    [[ $a =~ ^203\.0\.113\.20[0-9]$ && $j =~ ^203\.0\.113\.20[0-9]$ && $a != "$j" ]] ||
        lab_fail "addresses: ann '$a', joe '$j'"
    ip netns exec peer1 ping -n -c 3 -W 2 -I "$a" 198.51.100.10 >"$LAB_LOGDIR/ping-ann.log" 2>&1 ||
        lab_fail "ann could not ping host1 from $a (ping-ann.log)"
    ip netns exec peer2 ping -n -c 3 -W 2 -I "$j" 198.51.100.10 >"$LAB_LOGDIR/ping-joe.log" 2>&1 ||
        lab_fail "joe could not ping host1 from $j (ping-joe.log)"
    lab_wait 20 "two Starts" output_is 2 _records --where Acct-Status-Type=Start --count
    assert_eq "$a" "$(_records --where Acct-Status-Type=Start --where User-Name=ann@cclient --get Framed-IP-Address)" \
        "ann's Start: her User-Name and address"
    assert_eq "$j" "$(_records --where Acct-Status-Type=Start --where User-Name=joe@cclient --get Framed-IP-Address)" \
        "joe's Start: his User-Name and address"

    lab_log "== a wrong EAP-MD5 password, joe pinging meanwhile"
    swanctl_in peer1 --terminate --ike rw --timeout 20 >/dev/null || lab_fail "terminate failed"
    lab_wait 20 "ann's Stop" output_is 1 _records --where Acct-Status-Type=Stop --where User-Name=ann@cclient --count
    _client "$d1" 192.0.2.2 md5 ann@cclient wrong-password
    swanctl_in peer1 --load-all >/dev/null 2>&1 || lab_fail "swanctl --load-all failed"
    ip netns exec peer2 ping -n -i 0.2 -c 40 -W 1 -I "$j" 198.51.100.10 >"$LAB_LOGDIR/ping-joe-bg.log" 2>&1 &
    local ping=$! before
    before=$(_auth_failed_count)
    swanctl_in peer1 --initiate --child rw --timeout 20 >"$LAB_LOGDIR/initiate-ann-wrong.log" 2>&1 &&
        lab_fail "a wrong EAP-MD5 password connected"
    lab_wait 10 "AUTHENTICATION_FAILED at ann's client" output_ge $((before + 1)) _auth_failed_count
    vpnd_log_has gw1 'rejected by RADIUS server lab-radius' || lab_fail "vpnd did not log the Access-Reject"
    wait "$ping"
    local sent recv
    read -r sent recv < <(sed -n 's/^\([0-9]\+\) packets transmitted, \([0-9]\+\) received.*/\1 \2/p' "$LAB_LOGDIR/ping-joe-bg.log")
    assert_eq "40 40" "$sent $recv" "joe's tunnel carried every ping meanwhile"
    sleep 2
    assert_eq 1 "$(_records --where Acct-Status-Type=Start --where User-Name=ann@cclient --count)" \
        "no Start for the refused client"
    stop_vpnd gw1
}
