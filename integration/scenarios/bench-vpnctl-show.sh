# shellcheck shell=bash
# bench-vpnctl-show: how long `vpnctl show crypto session` takes with 10,000 sessions. The
# daemon side is vpnd's own control socket and session table (`labtool fake-sessions`: one
# IKE SA and one child pair with counters per session, no IKE or kernel behind them), so the
# figure is the control path: building the views, rendering IOS text, the socket and vpnctl.
# Median of 7 per layout. Target: under 100 ms (measured in the VM, which is 5-10x slower
# than the machine itself; the host figure goes in the README). The same-run comparison
# with `swanctl --list-sas` is in bench-ike-responder (400 real IKE SAs on each daemon).
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

scenario_run() {
    local n=${BENCH_SESSIONS:-10000} sock=$LAB_WORKDIR/fake.sock layout ms report=$LAB_RESULTS/bench-vpnctl-show.txt
    LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}
    VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
    "$LABTOOL" fake-sessions --sessions "$n" --socket "$sock" >"$LAB_LOGDIR/fake-sessions.log" 2>&1 &
    echo $! >"$LAB_WORKDIR/fake-sessions.pid"
    lab_wait 60 "fake-sessions serving" test -S "$sock"
    # Every layout must list every session (the timing is of a complete answer).
    assert_eq "$n" "$("$VPNCTL" --socket "$sock" show crypto session | grep -c '^Session status: UP-ACTIVE$')" "sessions listed"
    : >"$report"
    # What starting vpnctl costs by itself (no socket): under emulation, a good part of it.
    ms=$(median_ms 7 "$VPNCTL" --version) || lab_fail "vpnctl --version failed"
    echo "bench-show: vpnctl --version (process start only): $ms ms (median of 7)" | tee -a "$report" >&2
    for layout in "" brief summary detail; do
        ms=$(median_ms 7 "$VPNCTL" --socket "$sock" show crypto session $layout) || lab_fail "vpnctl show $layout failed"
        echo "bench-show: vpnctl show crypto session ${layout:-(plain)} with $n sessions: $ms ms (median of 7; target < 100 ms: $([[ $ms -lt 100 ]] && echo MET || echo NOT MET in the VM))" | tee -a "$report" >&2
    done
    ms=$(median_ms 7 "$VPNCTL" --socket "$sock" --json show crypto session) || lab_fail "vpnctl --json failed"
    echo "bench-show: vpnctl --json show crypto session with $n sessions: $ms ms (median of 7)" | tee -a "$report" >&2
    lab_stop_pid "$(cat "$LAB_WORKDIR/fake-sessions.pid")" "fake-sessions"
}
