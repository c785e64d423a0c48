# shellcheck shell=bash
# 20-freeradius-acct: FreeRADIUS in ns radius receives accounting from gw1.
# radclient sends Start and Stop (Acct-Session-Id, User-Name,
# NAS-IP-Address=192.0.2.1, Acct-Status-Type, Cisco-AVPair "vrf-id=x");
# both get an Accounting-Response and show up in the detail file with the
# right attributes. A request with a wrong shared secret gets no answer and
# is not recorded.
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=180

scenario_run() {
    local srv=192.0.2.10:1813 out=$LAB_LOGDIR/radclient sid
    sid="lab-$(date +%s)-$$"
    start_freeradius radius

    radius_acct gw1 "$srv" testing123 \
        "Acct-Session-Id = \"$sid\"" 'User-Name = "alice@lab.example"' \
        'NAS-IP-Address = 192.0.2.1' 'Acct-Status-Type = Start' \
        'Cisco-AVPair = "vrf-id=x"' >"$out-start.txt" 2>&1 ||
        lab_fail "Accounting-Request Start: no Accounting-Response ($(tail -3 "$out-start.txt"))"
    assert_contains "$out-start.txt" 'Received Accounting-Response' "Accounting-Response to Start"

    radius_acct gw1 "$srv" testing123 \
        "Acct-Session-Id = \"$sid\"" 'User-Name = "alice@lab.example"' \
        'NAS-IP-Address = 192.0.2.1' 'Acct-Status-Type = Stop' \
        'Cisco-AVPair = "vrf-id=x"' 'Acct-Session-Time = 42' \
        'Acct-Input-Octets = 1000' 'Acct-Output-Octets = 2000' \
        'Acct-Terminate-Cause = User-Request' >"$out-stop.txt" 2>&1 ||
        lab_fail "Accounting-Request Stop: no Accounting-Response ($(tail -3 "$out-stop.txt"))"
    assert_contains "$out-stop.txt" 'Received Accounting-Response' "Accounting-Response to Stop"

    local f=$RADIUS_DETAIL_FILE
    radius_detail_records "$f" >"$LAB_LOGDIR/detail-records.jsonl"
    assert_eq 2 "$(radius_detail_records "$f" --count)" "records in the detail file"
    local st sid_ user nas avp src
    for st in Start Stop; do
        assert_eq 1 "$(radius_detail_records "$f" --where "Acct-Status-Type=$st" --count)" "$st records"
        IFS=$'\t' read -r sid_ user nas avp src < <(radius_detail_records "$f" \
            --where "Acct-Status-Type=$st" \
            --get Acct-Session-Id,User-Name,NAS-IP-Address,Cisco-AVPair,Packet-Src-IP-Address)
        assert_eq "$sid" "$sid_" "$st Acct-Session-Id"
        assert_eq alice@lab.example "$user" "$st User-Name"
        assert_eq 192.0.2.1 "$nas" "$st NAS-IP-Address"
        assert_eq vrf-id=x "$avp" "$st Cisco-AVPair"
        assert_eq 192.0.2.1 "$src" "$st Packet-Src-IP-Address (sent from gw1)"
    done
    local stime cause
    IFS=$'\t' read -r stime cause < <(radius_detail_records "$f" \
        --where Acct-Status-Type=Stop --get Acct-Session-Time,Acct-Terminate-Cause)
    assert_eq 42 "$stime" "Stop Acct-Session-Time"
    assert_eq User-Request "$cause" "Stop Acct-Terminate-Cause"

    # wrong shared secret: FreeRADIUS must drop it (bad Request Authenticator)
    if radius_acct gw1 "$srv" wrong-secret \
        'Acct-Session-Id = "lab-bad-secret"' 'User-Name = "mallory"' \
        'NAS-IP-Address = 192.0.2.1' 'Acct-Status-Type = Start' \
        >"$out-badsecret.txt" 2>&1; then
        lab_fail "a request with a wrong shared secret was answered"
    fi
    assert_not_contains "$out-badsecret.txt" 'Received Accounting-Response' "no answer to wrong secret"
    assert_eq 2 "$(radius_detail_records "$f" --count)" "records after the wrong-secret request"
    assert_eq 0 "$(radius_detail_records "$f" --where User-Name=mallory --count)" "wrong-secret request recorded"
    assert_contains "$RADIUS_LOG" 'Shared secret is incorrect|invalid Request Authenticator' \
        "FreeRADIUS logged the bad authenticator"
}
