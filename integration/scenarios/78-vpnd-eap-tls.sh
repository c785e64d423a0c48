# shellcheck shell=bash
# 78-vpnd-eap-tls: EAP-TLS through vpnd's relay (RFC 7296 2.16, RFC 5216): a strongSwan
# client with the eap-tls plugin of libcharon-extra-plugins (loaded into that charon only)
# authenticates as bob@cclient with a certificate of the lab CA to FreeRADIUS's eap tls
# (its server certificate from the same CA, checked by charon as aaa_id
# radius.lab.example); vpnd knows nothing of TLS: it relays the EAP round trips (5 challenges), keys
# its last AUTH with the MSK FreeRADIUS sends, and leases an address. bob pings host1 from
# it and the Start has User-Name bob@cclient.
source "$LAB_ROOT/lib-vpnd.sh"
source "$LAB_ROOT/lib-pki.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }

_pki() {
    mkdir -p "$PKI"
    _ca lab "vpnd Lab CA"
    _leaf lab radius radius.lab.example "ec -pkeyopt ec_paramgen_curve:P-256"
    # bob's certificate names him by e-mail (his EAP identity bob@cclient is one).
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$PKI/bob.key" -out "$PKI/bob.csr" -subj "/O=vpnd lab/CN=bob@cclient" \
        -addext "subjectAltName=email:bob@cclient" 2>>"$LAB_LOGDIR/pki.log"
    openssl x509 -req -in "$PKI/bob.csr" -CA "$PKI/lab.pem" -CAkey "$PKI/lab.key" \
        -CAcreateserial -days 30 -copy_extensions copyall -out "$PKI/bob.pem" \
        2>>"$LAB_LOGDIR/pki.log" || lab_fail "openssl could not sign bob's certificate"
}

_client() {
    local dir=$1
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,private}
    cp "$PKI/bob.pem" "$dir/swanctl/x509/"
    cp "$PKI/bob.key" "$dir/swanctl/private/"
    cp "$PKI/lab.pem" "$dir/swanctl/x509ca/"
    echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    cat >"$dir/swanctl/conf.d/rw.conf" <<CONF
connections {
    rw {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256gcm16-prfsha256-x25519
        vips = 0.0.0.0
        local {
            auth = eap-tls
            certs = bob.pem
            id = bob@cclient
            eap_id = bob@cclient
            aaa_id = radius.lab.example
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
    ike-gw {
        id = gw1.lab.example
        secret = "lab-secret-0123456789"
    }
}
CONF
}

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1
    _pki
    LAB_RADIUS_TLS="$PKI/radius.pem $PKI/radius.key $PKI/lab.pem"
    # No users-file entry (EAP-TLS needs no password); set, it also leaves out the default
    # filter_username policy, which rejects a realm without a dot (bob@cclient).
    LAB_RADIUS_USERS="# bob@cclient: EAP-TLS, his certificate only"
    export LAB_RADIUS_TLS LAB_RADIUS_USERS
    start_freeradius radius
    _client "$d1"
    CHARON_EXTRA_PLUGINS="eap-tls" start_charon peer1 "$d1"
    write_eap_gateway_conf "$conf" 2s
    start_vpnd gw1 "$conf"

    swanctl_in peer1 --initiate --child rw --timeout 60 >"$LAB_LOGDIR/initiate-bob.log" 2>&1 ||
        lab_fail "bob could not connect with EAP-TLS (initiate-bob.log)"
    assert_contains "$LAB_LOGDIR/charon-peer1.log" "EAP method EAP_TLS succeeded, MSK established" \
        "charon: EAP-TLS succeeded with an MSK"
    assert_contains "$LAB_LOGDIR/freeradius.log" "eap_tls" "FreeRADIUS ran EAP-TLS"
    local a rounds
    a=$(_vpnctl --json show crypto session username bob@cclient | python3 -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print(s[0].get("assigned_ip", "none") if len(s) == 1 else "sessions:%d" % len(s))')
    [[ $a =~ ^203\.0\.113\.20[0-9]$ ]] || lab_fail "bob's address '$a'"
    rounds=$(grep -c 'Sent Access-Challenge' "$LAB_LOGDIR/freeradius.log" || true)
    lab_log "bob: $a after EAP-TLS ($rounds Access-Challenges relayed)"
    ip netns exec peer1 ping -n -c 3 -W 2 -I "$a" 198.51.100.10 >"$LAB_LOGDIR/ping-bob.log" 2>&1 ||
        lab_fail "bob could not ping host1 from $a (ping-bob.log)"
    lab_wait 20 "bob's Start" output_is 1 _records --where Acct-Status-Type=Start --where User-Name=bob@cclient --count
    assert_eq "$a" "$(_records --where Acct-Status-Type=Start --where User-Name=bob@cclient --get Framed-IP-Address)" \
        "bob's Start: his User-Name and address"
    stop_vpnd gw1
}
