# shellcheck shell=bash
# bench-xfrm-dump: how long one counters dump through vpnd-xfrm takes with many SAs,
# next to `ip -s xfrm state` and to reading every SA with its own GETSA (the per-SA way).
# labtool bench in gw1 installs BENCH_PAIRS (default 10,000) AES-GCM SA pairs, times the
# three reads (median of 5 for the dumps), prints `bench:` lines and a `bench-json:` line,
# then flushes. Fails only if labtool fails (including its check that every dump returned
# all SAs); the targets (dump within 1.5x of iproute2, >= 10x faster than per-SA) are
# reported, not enforced. Figures: $LAB_LOGDIR/bench.txt (everything labtool printed)
# and $LAB_RESULTS/bench-xfrm-dump.txt (the figures and verdicts; lab.sh --bench prints it).
# shellcheck source-path=SCRIPTDIR/..
# shellcheck source=lib-xfrm.sh
source "$LAB_ROOT/lib-xfrm.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=600 # installing 20,000 SAs alone took ~80 s in the VM

scenario_run() {
    local pairs=${BENCH_PAIRS:-10000} out=$LAB_LOGDIR/bench.txt
    local report=$LAB_RESULTS/$LAB_SCENARIO.txt
    lab_log "labtool bench: $pairs SA pairs (this takes minutes under emulation)"
    if ! ip netns exec gw1 "$LABTOOL" bench --pairs "$pairs" --local 192.0.2.1 \
        --remote 192.0.2.2 --reps 5 >"$out" 2>&1; then
        grep '^bench' "$out" >&2 || true
        lab_fail "labtool bench failed: $(grep -v '^bench' "$out" | tail -n 3)"
    fi
    grep '^bench' "$out" >&2
    local json
    json=$(sed -n 's/^bench-json: //p' "$out")
    [[ -n $json ]] || lab_fail "labtool bench printed no bench-json line"
    assert_eq 0 "$(xfrm_sa_count gw1)" "SAs left in gw1 after the bench's flush"
    {
        echo "bench-xfrm-dump: $pairs SA pairs in ns gw1, kernel $(uname -r), $(nproc) CPUs (VM, software emulation)"
        grep '^bench' "$out"
        python3 -c '
import json, sys
r = json.loads(sys.argv[1])
a, b = r["ratio_dump_vs_iproute2"], r["ratio_per_sa_vs_dump"]
print("target: vpnd-xfrm dump within 1.5x of ip -s xfrm state: %s (%.2fx)" % ("MET" if a <= 1.5 else "NOT MET", a))
print("target: vpnd-xfrm dump >= 10x faster than per-SA GETSA: %s (%.1fx)" % ("MET" if b >= 10 else "NOT MET", b))
' "$json"
    } >"$report"
    grep '^target' "$report" >&2
    lab_log "figures in $report"
}
