# shellcheck shell=bash
# 60-vpnd-accounting: vpnd's RADIUS accounting against a real FreeRADIUS (which drops any
# request whose Request Authenticator is wrong) and a real strongSwan peer.
# A) One session through two child rekeys with a known ping load, then cleared: the detail
#    file has Accounting-On, one Start, Interims, one Stop, all with the same
#    Acct-Session-Id; the Stop's packets and octets are the sum over the session's SAs (15
#    pings each way, 84 bytes each), with IOS's attributes and VSAs, Admin-Reset.
# B) FreeRADIUS stopped; a session is cleared (Stop), comes back (Start), vpnd is killed
#    with SIGKILL and started again (a crash), then FreeRADIUS comes back: every record
#    arrives exactly once, with Acct-Delay-Time, and the session that was up at the crash
#    gets its Stop (NAS-Reboot) with the counters its SAs had in the kernel at the crash.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=420

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

_records() { radius_detail_records "$RADIUS_DETAIL_FILE" "$@"; }

# _start_ids : the Acct-Session-Id of every Start, oldest session first (ids are the run's
# start time then a counter, in fixed-width hex: they sort in the order sessions came up;
# the detail file's order is the order of delivery).
_start_ids() { _records --where Acct-Status-Type=Start --get Acct-Session-Id | sort; }

_children_installed() { grep -c 'child SA installed' "$LAB_LOGDIR/vpnd-gw1.log" || true; }

scenario_run() {
    local conf=$LAB_WORKDIR/vpnd.yaml d1=$LAB_WORKDIR/charon-peer1 journal=$LAB_WORKDIR/acct/accounting.journal
    start_freeradius radius
    write_swanctl_conf "$d1" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=none child_rekey_time=15s
    start_charon peer1 "$d1"
    # charon rekeys the child SA about every 15 s; Interims every 10 s.
    write_vpnd_conf "$conf" accounting=lab extra="$(vpnd_accounting_yaml "$journal" 10s)"
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40

    lab_log "== A: one session, two rekeys, 15 pings each way, then cleared"
    lab_wait 20 "Accounting-On and the Start arrive" output_is 1 _records --where Acct-Status-Type=Start --count
    assert_eq 1 "$(_records --where Acct-Status-Type=Accounting-On --count)" "Accounting-On at start"
    local sid t_up=$SECONDS t_clear
    sid=$(_start_ids | head -1)
    ping_ok host1 203.0.113.10 5
    lab_wait 40 "the first child rekey" output_ge 2 _children_installed
    ping_ok host1 203.0.113.10 5
    lab_wait 40 "the second child rekey" output_ge 3 _children_installed
    ping_ok host1 203.0.113.10 5
    lab_wait 20 "an Interim-Update" output_ge 1 _records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Interim-Update --count
    _vpnctl show aaa accounting >"$LAB_LOGDIR/show-aaa.txt" || lab_fail "show aaa accounting failed"
    cat "$LAB_LOGDIR/show-aaa.txt" >&2
    assert_contains "$LAB_LOGDIR/show-aaa.txt" '^Active sessions: 1$' "show aaa: one session"
    assert_contains "$LAB_LOGDIR/show-aaa.txt" '^Server lab-radius 192\.0\.2\.10:1813: UP$' "show aaa: the server"
    t_clear=$SECONDS
    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "clear failed"
    lab_wait 20 "the Stop arrives" output_is 1 _records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Stop --count
    _records --where Acct-Session-Id="$sid" >"$LAB_LOGDIR/session-a.jsonl"
    assert_eq 1 "$(_records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Start --count)" "one Start (no new record on rekey)"
    local f
    f=$(_records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Stop \
        --get Acct-Input-Packets,Acct-Output-Packets,Acct-Input-Octets,Acct-Output-Octets,Acct-Input-Gigawords,Acct-Terminate-Cause,User-Name,NAS-IP-Address,NAS-Port,Cisco-NAS-Port)
    lab_log "Stop: $f"
    assert_eq "15	15	1260	1260	0	Admin-Reset	peer1.lab.example	192.0.2.1	0	t0" "$f" \
        "Stop: packets/octets over all SAs of the session (15 x 84 B each way), cause, identity"
    local avp
    avp=$(_records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Stop --get Cisco-AVPair)
    local want
    for want in isakmp-initator-ip=192.0.2.2 isakmp-phase1-id=peer1.lab.example \
        "connect-progress=No Progress" "disc-cause-ext=Admin Reset"; do
        [[ $avp == *"$want"* ]] || lab_fail "Stop Cisco-AVPair lacks $want: $avp"
    done
    # At least the time from when we saw its Start to the clear (the session began before).
    local st
    st=$(_records --where Acct-Session-Id="$sid" --where Acct-Status-Type=Stop --get Acct-Session-Time)
    [[ $st -ge $((t_clear - t_up)) ]] ||
        lab_fail "Stop: Acct-Session-Time $st below the $((t_clear - t_up)) s seen between its Start and the clear"

    lab_log "== B: FreeRADIUS away, a clear, a crash and a restart of vpnd"
    wait_ike_established peer1 site 40 # the static peer is back: a second session
    lab_wait 20 "the second session's Start" output_is 2 _records --where Acct-Status-Type=Start --count
    local sid2
    sid2=$(_start_ids | tail -1)
    stop_freeradius radius
    local before
    before=$(_records --count)
    _vpnctl clear crypto session remote 192.0.2.2 || lab_fail "clear failed"
    lab_wait 30 "vpnd brought peer1 back (a third session)" bash -c "[[ \$(grep -c 'Crypto session is UP' '$LAB_LOGDIR/vpnd-gw1.log') -ge 3 ]]"
    _vpnctl show aaa accounting >"$LAB_LOGDIR/show-aaa-outage.txt" || lab_fail "show aaa accounting failed"
    cat "$LAB_LOGDIR/show-aaa-outage.txt" >&2
    # Traffic after the crash Stop's last refresh: the restart reads what the SAs carried
    # from the kernel (issue 15.4). A fresh `show` first names the current SAs; a child
    # rekey in between would move the pings to SAs it does not name, so then again.
    local spis_before spis_after tries=0
    while :; do
        spis_before=$(ip netns exec gw1 ip xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' ')
        _vpnctl show crypto session >/dev/null || lab_fail "show failed"
        ping_ok host1 203.0.113.10 5
        spis_after=$(ip netns exec gw1 ip xfrm state | grep -o 'spi 0x[0-9a-f]*' | sort | tr '\n' ' ')
        [[ $spis_before == "$spis_after" ]] && break
        tries=$((tries + 1))
        [[ $tries -lt 5 ]] || lab_fail "the child SAs rekeyed during each of 5 tries"
    done
    lab_log "== SIGKILL vpnd with records queued"
    kill -KILL "$(cat "$LAB_WORKDIR/vpnd-gw1.pid")"
    rm -f "$LAB_WORKDIR/vpnd-gw1.pid"
    sleep 1
    start_vpnd gw1 "$conf"
    lab_wait 20 "vpnd found the session the crash left" vpnd_log_has gw1 'sessions were up when vpnd last stopped'
    wait_ike_established peer1 site 40
    sleep 3
    assert_eq "$before" "$(_records --count)" "nothing arrived while FreeRADIUS was down"
    start_freeradius radius
    lab_wait 60 "the Stop of the second session (cleared during the outage)" \
        output_is 1 _records --where Acct-Session-Id="$sid2" --where Acct-Status-Type=Stop --count
    lab_wait 30 "two more Starts (the third session, and the fourth after the restart)" \
        output_is 4 _records --where Acct-Status-Type=Start --count
    local sid3
    sid3=$(_start_ids | sed -n 3p)
    lab_wait 30 "the crash Stop of the third session" \
        output_is 1 _records --where Acct-Session-Id="$sid3" --where Acct-Status-Type=Stop --count
    assert_eq NAS-Reboot "$(_records --where Acct-Session-Id="$sid3" --where Acct-Status-Type=Stop --get Acct-Terminate-Cause)" "crash Stop cause"
    assert_eq "5	5	420	420" "$(_records --where Acct-Session-Id="$sid3" --where Acct-Status-Type=Stop \
        --get Acct-Input-Packets,Acct-Output-Packets,Acct-Input-Octets,Acct-Output-Octets)" \
        "crash Stop: the 5 pings each way sent just before the SIGKILL, from the kernel's counters"
    assert_eq Admin-Reset "$(_records --where Acct-Session-Id="$sid2" --where Acct-Status-Type=Stop --get Acct-Terminate-Cause)" "outage Stop cause"
    local delay
    delay=$(_records --where Acct-Session-Id="$sid2" --where Acct-Status-Type=Stop --get Acct-Delay-Time)
    [[ $delay -ge 3 ]] || lab_fail "the delayed Stop's Acct-Delay-Time is $delay, expected >= 3 s"
    lab_log "delayed Stop: Acct-Delay-Time $delay s"
    # None twice: one Start and at most one Stop per session id.
    _records --get Acct-Session-Id,Acct-Status-Type | sort | uniq -c |
        awk '$3 == "Start" || $3 == "Stop" { if ($1 != 1) bad = bad " " $2 "/" $3 "x" $1 } END { if (bad) { print bad; exit 1 } }' ||
        lab_fail "a Start or Stop arrived twice"
    assert_eq 2 "$(_records --where Acct-Status-Type=Accounting-On --count)" "Accounting-On at each start"
    stop_vpnd gw1
    local sid4
    sid4=$(_start_ids | sed -n 4p)
    lab_wait 20 "the Stop of the last session at vpnd's stop" \
        output_is 1 _records --where Acct-Session-Id="$sid4" --where Acct-Status-Type=Stop --count
    assert_eq Admin-Reboot "$(_records --where Acct-Session-Id="$sid4" --where Acct-Status-Type=Stop --get Acct-Terminate-Cause)" "stop cause"
    lab_wait 10 "Accounting-Off" output_is 1 _records --where Acct-Status-Type=Accounting-Off --count
}
