# shellcheck shell=bash
# bench-accounting: how many accounting Starts per second reach FreeRADIUS (and are
# acknowledged) when 10,000 sessions come up at once. `labtool acct-burst` in gw1 runs
# vpnd's own accounting task (outbox journal with fsync, RADIUS client) and feeds it the
# session-up events (generated: no IKE runs); FreeRADIUS in ns radius writes every record to
# its detail file, which must hold them all afterwards. Also prints the outbox's memory
# and journal bytes per queued record. Reports, never gates on speed.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=900

scenario_run() {
    local n=${BENCH_SESSIONS:-10000} out=$LAB_LOGDIR/acct-burst.txt
    LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}
    # FreeRADIUS without its debug output (-X prints every packet: the bottleneck otherwise).
    LAB_RADIUS_DEBUG=0 start_freeradius radius
    ip netns exec gw1 "$LABTOOL" acct-burst --sessions "$n" --server 192.0.2.10:1813 \
        --dir "$LAB_WORKDIR/acct-burst" >"$out" 2>&1 || lab_fail "acct-burst failed: $(tail -3 "$out")"
    grep '^acct-burst' "$out" | tee "$LAB_RESULTS/bench-accounting.txt" >&2
    # Every session's Start arrived. A Start retransmitted after the server answered late is
    # a new request to it (a new Acct-Delay-Time means a new Identifier), so it may be
    # written twice: counted and reported, not hidden.
    local ids total
    ids=$(radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start --get Acct-Session-Id | sort -u | wc -l)
    total=$(radius_detail_records "$RADIUS_DETAIL_FILE" --where Acct-Status-Type=Start --count)
    assert_eq "$n" "$ids" "every session's Start is in FreeRADIUS's detail file"
    echo "acct-burst: FreeRADIUS wrote $total Start records for $n sessions ($((total - n)) written twice after a late answer)" |
        tee -a "$LAB_RESULTS/bench-accounting.txt" >&2
    stop_freeradius radius
}
