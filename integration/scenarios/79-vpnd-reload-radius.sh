# shellcheck shell=bash
# 79-vpnd-reload-radius: a reload's RADIUS changes against real FreeRADIUS servers, with
# strongSwan peers peer1 and peer2 accounted (Start at 192.0.2.10).
# A) A reload removes peer2: its Stop arrives with Acct-Terminate-Cause Admin-Reset and
#    the packets and octets gw1's kernel counted on peer2's SAs just before.
# B) FreeRADIUS at 192.0.2.10 stopped; a reload brings peer2 back and a clear takes its
#    session down and up again: three records wait in the journal (`show aaa accounting`).
#    A reload moves the server to 192.0.2.11 (a second FreeRADIUS) while a ping runs over
#    peer1: the three arrive there, each once, with their Acct-Session-Ids; the ping loses
#    nothing and peer1 keeps its SAs.
# C) A reload with a broken radius section is refused with file:line:column; accounting
#    stays on the new server.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }
_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }

# _json EXPR : evaluate EXPR (python, `r` is the JSON on stdin); a string as it is,
# anything else as JSON.
_json() {
    python3 -c '
import json, sys
r = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

_peer() {
    cat <<YAML
  - name: $1
    address: $2
    local_id: "@gw1.lab.example"
    remote_id: "@$1.lab.example"
    psk: "lab-secret-0123456789"
    start: initiate
    reverse_route: true
    accounting: lab
    children:
      - name: lan
        local_ts: [198.51.100.0/25]
        remote_ts: [$3]
YAML
}

# _conf FILE RADIUS_ADDR PEERS... : gw1's vpnd.yaml, accounting to RADIUS_ADDR.
_conf() {
    local f=$1 server=$2
    shift 2
    {
        cat <<YAML
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
    - { name: acct, address: $server, acct_port: 1813, key: testing123 }
  timeout: 1s
  retransmit: 2
accounting:
  journal: $LAB_WORKDIR/acct/accounting.journal
  lists:
    lab: { mode: start-stop, groups: [radius] }
peers:
YAML
        printf '%s\n' "$@"
    } >"$f"
}

_spis() {
    xfrm_counters gw1 | python3 -c '
import json, sys
a = sys.argv[1]
print(" ".join(sorted(s["spi"] for s in json.load(sys.stdin) if a in (s["src"], s["dst"]))))' "$1"
}

_queued() { _vpnctl --json show aaa accounting | _json 'r["accounting"]["queued"]'; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml out=$LAB_LOGDIR/reload.json
    local p1 p2
    # The second accounting server.
    lab_ns_add radius2
    lab_transport_attach radius2 192.0.2.11/24
    lab_topology_apply
    ip -n net link set radius2 master br0 up || lab_fail "radius2's bridge port"
    start_freeradius radius
    write_swanctl_conf "$LAB_WORKDIR/charon-peer1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    write_swanctl_conf "$LAB_WORKDIR/charon-peer2" name=site local_addr=192.0.2.3 remote_addr=192.0.2.1 \
        local_id=peer2.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.64/26 remote_ts=198.51.100.0/25 start_action=none
    start_charon peer1 "$LAB_WORKDIR/charon-peer1"
    start_charon peer2 "$LAB_WORKDIR/charon-peer2"
    p1=$(_peer peer1 192.0.2.2 203.0.113.0/26)
    p2=$(_peer peer2 192.0.2.3 203.0.113.64/26)
    _conf "$conf" 192.0.2.10 "$p1" "$p2"
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40
    wait_ike_established peer2 site 40
    lab_wait 20 "two Starts at 192.0.2.10" output_is 2 _records --where Acct-Status-Type=Start --count

    lab_log "== A: a reload removes peer2"
    ping_ok host1 203.0.113.70 5
    local sid2 kin kout
    sid2=$(_records --where Acct-Status-Type=Start --where User-Name=peer2.lab.example --get Acct-Session-Id)
    # What gw1's kernel counted on peer2's SAs (no traffic after this).
    kin=$(xfrm_counter gw1 192.0.2.3 192.0.2.1 packets,bytes)
    kout=$(xfrm_counter gw1 192.0.2.1 192.0.2.3 packets,bytes)
    _conf "$conf" 192.0.2.10 "$p1"
    _vpnctl --json reload >"$out" || lab_fail "reload failed: $(cat "$out")"
    assert_eq '[true, ["peer2"]]' "$(_json '[r["reload"]["applied"], r["reload"]["removed"]]' <"$out")" "peer2 removed"
    lab_wait 20 "peer2's Stop" output_is 1 _records --where Acct-Session-Id="$sid2" --where Acct-Status-Type=Stop --count
    local f
    f=$(_records --where Acct-Session-Id="$sid2" --where Acct-Status-Type=Stop \
        --get Acct-Input-Packets,Acct-Input-Octets,Acct-Output-Packets,Acct-Output-Octets,Acct-Terminate-Cause)
    lab_log "peer2's Stop: $f (kernel in: $kin, out: $kout)"
    assert_eq "${kin% *}	${kin#* }	${kout% *}	${kout#* }	Admin-Reset" "$f" \
        "the Stop carries the kernel's last counters of peer2's SAs, Admin-Reset"
    assert_eq 5 "${kin% *}" "5 pings counted in"

    lab_log "== B: FreeRADIUS at .10 away, records journalled, a reload to .11"
    stop_freeradius radius
    local before
    before=$(_records --count)
    _conf "$conf" 192.0.2.10 "$p1" "$p2"
    _vpnctl --json reload >"$out" || lab_fail "reload failed: $(cat "$out")"
    wait_ike_established peer2 site 40
    lab_wait 20 "peer2's session up in vpnd" vpnd_log_has gw1 'Crypto session is UP.*192\.0\.2\.3'
    local ups
    ups=$(grep -c 'Crypto session is UP.*192\.0\.2\.3' "$LAB_LOGDIR/vpnd-gw1.log")
    _vpnctl clear crypto session remote 192.0.2.3 || lab_fail "clear failed"
    lab_wait 40 "peer2 back (a new session)" \
        bash -c "[[ \$(grep -c 'Crypto session is UP.*192\.0\.2\.3' '$LAB_LOGDIR/vpnd-gw1.log') -gt $ups ]]"
    lab_wait 10 "three records journalled (Start, Stop, Start)" output_is 3 _queued
    _vpnctl show aaa accounting >"$LAB_LOGDIR/show-aaa-outage.txt" || lab_fail "show aaa accounting failed"
    cat "$LAB_LOGDIR/show-aaa-outage.txt" >&2
    start_freeradius radius2
    local spis1
    spis1=$(_spis 192.0.2.2)
    ping_background host1 203.0.113.10 50 steady
    sleep 2
    _conf "$conf" 192.0.2.11 "$p1" "$p2"
    _vpnctl --json reload >"$out" || lab_fail "reload failed: $(cat "$out")"
    cat "$out" >&2
    assert_eq '[true, ["radius"], [], [], []]' \
        "$(_json '[r["reload"][k] for k in ("applied", "live", "restart_needed", "renegotiated", "updated")]' <"$out")" \
        "the server moved live, no peer touched"
    lab_wait 30 "the journal empty" output_is 0 _queued
    local sent recv
    read -r sent recv <<<"$(ping_summary steady)"
    assert_eq "50 50" "$sent $recv" "pings over peer1 across the reload (no loss)"
    assert_eq "$spis1" "$(_spis 192.0.2.2)" "peer1 kept its SAs"
    assert_eq $((before + 3)) "$(_records --count)" "three records more, none twice"
    assert_eq 3 "$(_records --where Packet-Dst-IP-Address=192.0.2.11 --count)" "all three at the new server"
    local starts s1 s3 stop_id
    # Acct-Session-Ids are this run's start time and a counter in fixed-width hex: sorted,
    # the cleared session's Start comes first.
    starts=$(_records --where Packet-Dst-IP-Address=192.0.2.11 --where Acct-Status-Type=Start --get Acct-Session-Id | sort | tr '\n' ' ')
    stop_id=$(_records --where Packet-Dst-IP-Address=192.0.2.11 --where Acct-Status-Type=Stop --get Acct-Session-Id)
    read -r s1 s3 <<<"$starts"
    lab_log "at 192.0.2.11: Starts $starts, Stop $stop_id"
    assert_eq "$s1" "$stop_id" "the Stop is the cleared session's (its Start's Acct-Session-Id)"
    [[ -n $s3 && $s3 != "$s1" ]] || lab_fail "the new session has a new Acct-Session-Id: '$starts'"
    # Sessions are delivered in parallel, each one's records in order.
    assert_eq "Start Stop" "$(_records --where Acct-Session-Id="$s1" --get Acct-Status-Type | tr '\n' ' ' | sed 's/ $//')" \
        "the cleared session's Start before its Stop"
    assert_eq Admin-Reset "$(_records --where Acct-Session-Id="$s1" --where Acct-Status-Type=Stop --get Acct-Terminate-Cause)" "the cleared session's cause"
    local delay
    delay=$(_records --where Acct-Session-Id="$s1" --where Acct-Status-Type=Start --get Acct-Delay-Time)
    [[ $delay -ge 2 ]] || lab_fail "the delayed Start's Acct-Delay-Time is $delay"

    lab_log "== C: a broken radius section"
    cp "$conf" "$LAB_WORKDIR/good.yaml"
    sed -i 's/^  timeout: 1s$/  timeout: soon/' "$conf"
    local line rc=0
    line=$(grep -n 'timeout: soon' "$conf" | cut -d: -f1)
    [[ -n $line ]] || lab_fail "the broken line was not written"
    _vpnctl --json reload >"$out" || rc=$?
    cat "$out" >&2
    assert_eq 1 "$rc" "vpnctl reload of a broken file exits 1"
    assert_eq "[false, false, $line, \"radius.timeout\"]" \
        "$(_json '[r["ok"], r["reload"]["applied"], r["reload"]["problems"][0]["line"], r["reload"]["problems"][0]["field"]]' <"$out")" \
        "refused, with the line and field"
    assert_contains "$out" "vpnd.yaml:$line:[0-9]+: " "the error names file:line:column"
    # Still on .11: peer2 cleared once more, its Stop and Start arrive there.
    _vpnctl clear crypto session remote 192.0.2.3 || lab_fail "clear failed"
    lab_wait 30 "the next Stop and Start at 192.0.2.11" output_is 5 _records --where Packet-Dst-IP-Address=192.0.2.11 --count
    ping_ok host1 203.0.113.10 3
    stop_vpnd gw1
}
