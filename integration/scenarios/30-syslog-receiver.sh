# shellcheck shell=bash
# 30-syslog-receiver: the lab syslog receiver in ns syslog gets messages
# from gw1 over UDP and TCP (newline and octet-counting framing), and again
# after a restart of the receiver.
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=120

_send() { # PROTO_FLAG MESSAGE... : logger from gw1 to 192.0.2.20:5514
    local flag=$1
    shift
    timeout 10 ip netns exec gw1 logger -n 192.0.2.20 -P 5514 "$flag" -t vpnd-lab "$@"
}

scenario_run() {
    local tok
    tok=$(date +%s%N)
    start_syslog_receiver syslog 5514 192.0.2.20

    _send -d "udp-one $tok"
    _send -T "tcp-one $tok"
    _send -T --octet-count "tcp-octet $tok"
    lab_wait 10 "UDP message arrives" grep -qE "^udp	192\.0\.2\.1:[0-9]+	.*vpnd-lab.*udp-one $tok" "$SYSLOG_FILE"
    lab_wait 10 "TCP message arrives" grep -qE "^tcp	192\.0\.2\.1:[0-9]+	.*vpnd-lab.*tcp-one $tok" "$SYSLOG_FILE"
    lab_wait 10 "TCP octet-counted message arrives" grep -qE "^tcp	.*tcp-octet $tok\$" "$SYSLOG_FILE"

    stop_syslog_receiver syslog 5514
    # nobody listens now: TCP must fail, UDP is fire-and-forget
    assert_fails "TCP to a stopped receiver fails" _send -T "lost $tok"
    start_syslog_receiver syslog 5514 192.0.2.20

    _send -d "udp-two $tok"
    _send -T "tcp-two $tok"
    lab_wait 10 "UDP message after restart" grep -q "udp-two $tok" "$SYSLOG_FILE"
    lab_wait 10 "TCP message after restart" grep -q "tcp-two $tok" "$SYSLOG_FILE"
    assert_eq 5 "$(grep -c "$tok" "$SYSLOG_FILE")" "messages received in total"
    assert_contains "$SYSLOG_FILE" "udp-one $tok" "first messages kept across restart"
}
