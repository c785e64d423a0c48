# shellcheck shell=bash
# demo-lab: the lab demo (integration/demo.sh, or integration/lab.sh --demo). Brings up
#   - strongSwan <-> strongSwan: IKEv2 PSK, peer2 initiates to peer1, ESP AES-GCM-256,
#     hostp2 203.0.113.70 <-> hostp1 203.0.113.10; 5 pings across;
#   - vpnd in gw1 negotiating IKEv2 with charon in peer1 (PSK, aes256gcm16-prfsha256-x25519)
#     and installing the SAs in gw1's kernel, host1 198.51.100.10 <-> hostp1; 5 pings across;
#   - FreeRADIUS in ns radius: vpnd accounts for its session (Accounting-On, Start when the
#     first IPsec SA pair is up, Stop with the session's counters when vpnd stops it,
#     Accounting-Off), with IOS's attributes and Cisco VSAs;
# and writes the story (topology, swanctl --list-sas, the ping, ip -s xfrm state next to
# vpnd-xfrm's one-dump counters, the accounting records FreeRADIUS stored) to
# $LAB_RESULTS/demo.txt, which lab.sh prints after the VM exits. It asserts all along
# (IKE up, every ping answered, exact ESP counters, counters equal in both tools, records
# arrived with those counters), so a broken lab fails instead of telling a happy story.
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib-xfrm.sh
source "$LAB_ROOT/lib-xfrm.sh"
# shellcheck source=lib-vpnd.sh
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

DEMO_STORY=$LAB_RESULTS/demo.txt

# story LINE... : append lines to the story.
story() { printf '%s\n' "$@" >>"$DEMO_STORY"; }

# story_section TITLE : "== TITLE" header in the story (and a progress line in the log).
story_section() {
    printf '\n== %s\n\n' "$1" >>"$DEMO_STORY"
    lab_log "demo: $1"
}

# story_file FILE [SED_EXPR] : append FILE, indented, tabs expanded (SED_EXPR edits it first).
story_file() { sed -e "${2:-}" -e 's/\t/    /g; s/^/    /' "$1" >>"$DEMO_STORY"; }

# demo_ping NS DEST COUNT : ping DEST from NS; ping's own output goes into the story, and
# every echo must be answered (ping_ok's check, on the output shown).
demo_ping() {
    local out=$LAB_LOGDIR/ping-$1-$2.txt
    story "\$ ip netns exec $1 ping -n -c $3 -i 0.2 $2"
    ip netns exec "$1" ping -n -c "$3" -i 0.2 -W 2 "$2" >"$out" 2>&1 || true
    story_file "$out"
    assert_contains "$out" "^$3 packets transmitted, $3 received" "ping $1 -> $2: all $3 answered"
}

# demo_counters NS [--all] : table of every SA in NS, `ip -s xfrm state` (xfrm_counters)
# next to one vpnd-xfrm dump (labtool counters; --all: not only vpnd's own SAs). Fails if
# the two disagree on any SA, its bytes or its packets. Keeps both as JSON in LAB_LOGDIR.
demo_counters() {
    local ns=$1 ours=$LAB_LOGDIR/$1-demo-labtool.json theirs=$LAB_LOGDIR/$1-demo-iproute2.json
    shift
    ip netns exec "$ns" "$LABTOOL" counters "$@" >"$ours" || lab_fail "labtool counters in $ns failed"
    xfrm_counters "$ns" >"$theirs"
    story "\$ ip netns exec $ns labtool counters${*:+ $*}   (one dump)   vs   ip -n $ns -s xfrm state"
    python3 - "$ours" "$theirs" >>"$DEMO_STORY" <<'PY' || lab_fail "vpnd-xfrm counters in $ns differ from ip -s xfrm state (see demo.txt)"
import json, sys
ours = {sa["id"]["spi"]: sa for sa in json.load(open(sys.argv[1]))}
theirs = {sa["spi_int"]: sa for sa in json.load(open(sys.argv[2]))}
print("    %-10s  %-25s  %19s  %19s" % ("", "", "ip -s xfrm state", "vpnd-xfrm dump"))
print("    %-10s  %-25s  %10s %8s  %10s %8s" % ("SPI", "src -> dst", "bytes", "packets", "bytes", "packets"))
bad = 0
for spi in sorted(set(ours) | set(theirs)):
    o, t = ours.get(spi), theirs.get(spi)
    sa = o["id"] if o else t
    path = "%s -> %s" % (sa["src"], sa["dst"])
    cell = lambda x: ("%10s %8s" % (x["bytes"], x["packets"])) if x else "%19s" % "(absent)"
    same = bool(o and t and o["bytes"] == t["bytes"] and o["packets"] == t["packets"])
    bad += not same
    print("    0x%08x  %-25s  %s  %s  %s" % (spi, path, cell(t), cell(o), "same" if same else "DIFFERENT"))
print()
print("    %d SAs, %s" % (len(set(ours) | set(theirs)), "both tools agree on every counter" if not bad else "%d DIFFER" % bad))
sys.exit(1 if bad else 0)
PY
    lab_log "ok: vpnd-xfrm and iproute2 counters agree in $ns"
}

# demo_json_field FILE SRC FIELD : FIELD of the one SA from SRC in a saved labtool dump.
demo_json_field() {
    python3 -c 'import json, sys
m = [sa for sa in json.load(open(sys.argv[1])) if sa["id"]["src"] == sys.argv[2]]
print(m[0][sys.argv[3]] if len(m) == 1 else "missing")' "$@"
}

# ------------------------------------------------------------------------------------------
# vpnd's own view of the tunnel: vpnctl over the daemon's control socket.
demo_vpnd_sessions() {
    story_section "vpnd crypto sessions in gw1 (vpnctl show crypto session detail)"
    local out=$LAB_LOGDIR/vpnctl-detail.txt
    ip netns exec gw1 "$LAB_TARGET/vpnctl" --socket "$LAB_WORKDIR/vpnd.sock" show crypto session detail >"$out" ||
        lab_fail "vpnctl show crypto session detail failed"
    assert_contains "$out" '^Session status: UP-ACTIVE$' "vpnd's session with peer1 is UP-ACTIVE"
    assert_contains "$out" "^    Inbound:  #pkts dec'ed 5 " "vpnctl counts the 5 decrypted pings"
    story "\$ vpnctl show crypto session detail   (in gw1)"
    story_file "$out"
    ip netns exec gw1 "$LAB_TARGET/vpnctl" --socket "$LAB_WORKDIR/vpnd.sock" sh cr isa peer >"$LAB_LOGDIR/vpnctl-peer.txt" ||
        lab_fail "vpnctl show crypto isakmp peer failed"
    story "" "\$ vpnctl sh cr isa peer"
    story_file "$LAB_LOGDIR/vpnctl-peer.txt"
}
# ------------------------------------------------------------------------------------------

scenario_run() {
    local t0=$SECONDS
    : >"$DEMO_STORY"
    story "vpnd lab demo: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), guest kernel $(uname -r), $(nproc) CPUs" \
        "(everything below ran inside one VM, in network namespaces, TEST-NET addresses only)"

    story_section "Topology"
    story "  transport network 192.0.2.0/24 (bridge br0 in namespace \"net\")" \
        "  gw1 .1 (vpnd side)   peer1 .2 (strongSwan)   peer2 .3 (strongSwan)   radius .10 (FreeRADIUS)" \
        "" \
        "  host1  198.51.100.10 -- gw1   ==ESP, IKEv2 PSK vpnd <-> strongSwan==        peer1 -- hostp1 203.0.113.10" \
        "  hostp2 203.0.113.70  -- peer2 ==ESP, IKEv2 PSK strongSwan <-> strongSwan==  peer1 -- hostp1 203.0.113.10" \
        "  gw1 --RADIUS accounting (UDP 1813, secret testing123)--> radius" \
        "" "  addresses as configured (ip -br -4 addr):"
    local ns
    for ns in gw1 host1 peer1 hostp1 peer2 hostp2 radius; do
        story "$(ip -n "$ns" -br -4 addr show | awk -v n="$ns" '$1 != "lo" { sub(/@.*/, "", $1); printf "    %-7s %-4s %s\n", n, $1, $3 }')"
    done

    # --- strongSwan peer1 (responder) <-> peer2 (initiator)
    story_section "strongSwan IKE SA (peer1 <-> peer2)"
    local d1=$LAB_WORKDIR/charon-peer1 d2=$LAB_WORKDIR/charon-peer2
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.3 \
        local_id=peer1.lab.example remote_id=peer2.lab.example \
        local_ts=203.0.113.0/26 remote_ts=203.0.113.64/26 start_action=none
    # charon in peer1 also answers vpnd (connection "gw1").
    write_swanctl_conf "$d1" name=gw1 local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none
    write_swanctl_conf "$d2" name=site local_addr=192.0.2.3 remote_addr=192.0.2.2 \
        local_id=peer2.lab.example remote_id=peer1.lab.example \
        local_ts=203.0.113.64/26 remote_ts=203.0.113.0/26 start_action=start
    start_charon peer1 "$d1"
    start_charon peer2 "$d2" # start_action=start: initiates on --load-all
    wait_ike_established peer2 site 40
    assert_eq ESTABLISHED "$(ike_state peer1 site)" "IKE SA state in peer1"
    swanctl_in peer2 --list-sas >"$LAB_LOGDIR/list-sas-peer2.txt"
    assert_contains "$LAB_LOGDIR/list-sas-peer2.txt" 'site: #[0-9]+, reqid [0-9]+, INSTALLED, TUNNEL, ESP:AES_GCM_16-256' \
        "child SA installed with ESP AES-GCM-256"
    story "IKEv2 with PSK, IKE aes256gcm16-prfsha256-x25519, ESP aes256gcm16; peer2 initiated." \
        "\$ swanctl --list-sas   (charon in peer2)"
    story_file "$LAB_LOGDIR/list-sas-peer2.txt"

    story_section "Ping hostp2 -> hostp1 across the strongSwan tunnel"
    demo_ping hostp2 203.0.113.10 5
    local pkts bytes
    read -r pkts bytes <<<"$(xfrm_counter peer2 192.0.2.3 192.0.2.2 packets,bytes)"
    assert_eq "5 420" "$pkts $bytes" "ESP packets/bytes out of peer2"
    read -r pkts bytes <<<"$(xfrm_counter peer2 192.0.2.2 192.0.2.3 packets,bytes)"
    assert_eq "5 420" "$pkts $bytes" "ESP packets/bytes into peer2"
    story "" "peer2's ESP SAs counted exactly 5 packets / 420 bytes each way (84-byte echo packets)."

    # --- vpnd-xfrm tunnel gw1 <-> peer1, plus the RADIUS session for it
    story_section "vpnd (gw1) <-> strongSwan (peer1): IKEv2 PSK, SAs in gw1's kernel"
    start_freeradius radius
    write_vpnd_conf "$LAB_WORKDIR/vpnd.yaml" start=initiate accounting=lab \
        extra="$(vpnd_accounting_yaml "$LAB_WORKDIR/acct/accounting.journal")"
    sed -i 's/level: debug/level: info/' "$LAB_WORKDIR/vpnd.yaml"
    story "\$ cat vpnd.yaml   (gw1)"
    story_file "$LAB_WORKDIR/vpnd.yaml"
    start_vpnd gw1 "$LAB_WORKDIR/vpnd.yaml"
    wait_ike_established peer1 gw1 40
    lab_wait 10 "vpnd installed the child SA pair" output_is 2 xfrm_sa_count gw1
    story "" "\$ vpnd log (gw1)"
    sed 's/\x1b\[[0-9;]*m//g; s/^[0-9T:.-]*Z *//' "$LAB_LOGDIR/vpnd-gw1.log" >"$LAB_LOGDIR/vpnd-gw1-plain.log"
    story_file "$LAB_LOGDIR/vpnd-gw1-plain.log"
    swanctl_in peer1 --list-sas --ike gw1 >"$LAB_LOGDIR/list-sas-peer1-gw1.txt"
    assert_contains "$LAB_LOGDIR/list-sas-peer1-gw1.txt" 'gw1: #[0-9]+, ESTABLISHED, IKEv2' "charon's IKE SA with vpnd"
    story "" "\$ swanctl --list-sas --ike gw1   (charon in peer1: its view of vpnd)"
    story_file "$LAB_LOGDIR/list-sas-peer1-gw1.txt"
    lab_wait 20 "vpnd's Accounting Start reached FreeRADIUS" \
        output_is 1 radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start --count
    local sid
    sid=$(radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start --get Acct-Session-Id)
    story "" "vpnd -> FreeRADIUS: Accounting-On, then Accounting-Request Start (Acct-Session-Id $sid): acknowledged"
    story "" "ping host1 -> hostp1 (5 echo requests through the SAs vpnd negotiated)"
    ping_ok host1 203.0.113.10 5
    story "    ping_ok host1 203.0.113.10 5: all 5 echo requests answered"

    story_section "ESP counters: ip -s xfrm state next to vpnd-xfrm's one dump"
    story "gw1 (the SAs vpnd installed):"
    demo_counters gw1
    local g=$LAB_LOGDIR/gw1-demo-labtool.json out_b out_p in_b in_p
    out_b=$(demo_json_field "$g" 192.0.2.1 bytes) out_p=$(demo_json_field "$g" 192.0.2.1 packets)
    in_b=$(demo_json_field "$g" 192.0.2.2 bytes) in_p=$(demo_json_field "$g" 192.0.2.2 packets)
    assert_eq "5 420 5 420" "$out_p $out_b $in_p $in_b" "gw1 ESP packets/bytes out and in (vpnd-xfrm dump)"
    story "" "peer2 (the SAs strongSwan's charon installed, read by vpnd-xfrm with --all):"
    demo_counters peer2 --all
    story "" "\$ TZ=UTC ip -n gw1 -s xfrm state   (keys negotiated by vpnd and charon)"
    TZ=UTC ip -n gw1 -s xfrm state >"$LAB_LOGDIR/gw1-xfrm-state.txt"
    story_file "$LAB_LOGDIR/gw1-xfrm-state.txt"

    demo_vpnd_sessions

    # --- tear the gw1 tunnel down, account for it, show what FreeRADIUS stored
    story_section "FreeRADIUS accounting records (detail file of the server in ns radius)"
    stop_vpnd gw1
    # shellcheck disable=SC2016 # expanded by the inner bash
    lab_wait 20 "charon saw vpnd's Delete" bash -c '! grep -q . <<<"$(nsenter -t "$0" -m -n swanctl --list-sas --ike gw1 2>/dev/null)"' "$(charon_pid peer1)"
    assert_eq 0 "$(xfrm_sa_count gw1)" "SAs left in gw1 after vpnd stopped"
    lab_wait 20 "vpnd's Accounting Stop reached FreeRADIUS" \
        output_is 1 radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Stop --count
    story "vpnd stopped (SIGTERM): it deleted the IKE SA with charon and its SAs in gw1, and sent" \
        "the session's Stop with its counters (Input = peer1 -> gw1 SA, Output = gw1 -> peer1 SA)" \
        "and Accounting-Off. Records FreeRADIUS wrote:"
    local f=$RADIUS_DETAIL_FILE
    lab_wait 10 "Accounting-Off" output_is 1 radius_detail_records "$f" --where Acct-Status-Type=Accounting-Off --count
    assert_eq 4 "$(radius_detail_records "$f" --count)" "accounting records: On, Start, Stop, Off"
    local got want
    got=$(radius_detail_records "$f" --where Acct-Status-Type=Stop --where "Acct-Session-Id=$sid" \
        --get Acct-Input-Octets,Acct-Output-Octets,Acct-Input-Packets,Acct-Output-Packets,Packet-Src-IP-Address)
    printf -v want '%s\t%s\t%s\t%s\t%s' "$in_b" "$out_b" "$in_p" "$out_p" 192.0.2.1
    assert_eq "$want" "$got" "Stop record (sent by vpnd): octets/packets equal the kernel's counters"
    radius_detail_records "$f" >"$LAB_LOGDIR/detail-records.jsonl"
    python3 -c '
import json, sys
for i, line in enumerate(open(sys.argv[1]), 1):
    r = json.loads(line)
    print("  record %d: %s" % (i, r.pop("_header")))
    w = max(map(len, r))
    for k, v in r.items():
        for x in v if isinstance(v, list) else [v]:
            print("    %-*s = %s" % (w, k, x))
    print()' "$LAB_LOGDIR/detail-records.jsonl" >>"$DEMO_STORY"

    story_section "Result"
    story "all demo assertions passed (IKE SA up, 10/10 pings answered, exact ESP counters," \
        "iproute2 and vpnd-xfrm agree, vpnd's Start and Stop with the kernel's counters) in $((SECONDS - t0)) s"
}
