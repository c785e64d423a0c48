# shellcheck shell=bash
# bench-ike-held: what one more IKE SA costs a responder that already holds many (issue 9:
# timers and lookups must not grow with the SAs held). vpnd, then charon with its DoS
# thresholds raised ("tuned"), then charon with its defaults, in gw1; the generator (labtool
# ike-load, vpnd's engine) in peer2 from one address and 16 ports. Its children are refused
# by traffic selectors (TS_UNACCEPTABLE), so both responders do the same IKE work and the
# kernel holds no SAs. For each daemon and each level of SAs held (1,000, 10,000, 50,000):
# the rate and the responder's CPU time per IKE SA (utime+stime from /proc) over a batch of
# BENCH_HELD_BATCH handshakes, and its resident memory per held SA. Reports, never gates.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=1800

BENCH_HELD_LEVELS=${BENCH_HELD_LEVELS:-"1000 10000 50000"}
BENCH_HELD_BATCH=${BENCH_HELD_BATCH:-2000}
# charon "tuned": strongswan.conf settings (its defaults: cookie_threshold 30,
# cookie_threshold_ip 3, block_threshold 5, ikesa_table_size 1, ikesa_table_segments 1).
CHARON_TUNED='cookie_threshold = 1000000\n    cookie_threshold_ip = 1000000\n    block_threshold = 1000000\n    init_limit_half_open = 0\n    ikesa_table_size = 65536\n    ikesa_table_segments = 16'

# _load COUNT : COUNT more IKE SAs from the generator; prints its JSON line.
_load() {
    ip netns exec peer2 "$LABTOOL" ike-load --local 192.0.2.3 --target 192.0.2.1 \
        --count "$1" --concurrency 32 --ports 16 \
        --local-ts 203.0.113.128/26 --remote-ts 198.51.100.0/25 --timeout 600 \
        >"$LAB_LOGDIR/load.txt" 2>&1 || lab_fail "load generator failed: $(tail -3 "$LAB_LOGDIR/load.txt")"
    sed -n 's/^ike-load-json: //p' "$LAB_LOGDIR/load.txt"
}

# _cpu PID : its user+system CPU time in clock ticks (all threads).
_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# _rss PID : resident memory in kB.
_rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# _levels NAME PID : fill to each level, measure a batch there; one JSON line per level.
_levels() {
    local name=$1 pid=$2 held=0 level rss0 c0 c1 r json
    rss0=$(_rss "$pid")
    for level in $BENCH_HELD_LEVELS; do
        if ((level > held)); then
            _load $((level - held)) >/dev/null
            held=$level
        fi
        r=$(_rss "$pid")
        c0=$(_cpu "$pid")
        json=$(_load "$BENCH_HELD_BATCH")
        c1=$(_cpu "$pid")
        held=$((held + BENCH_HELD_BATCH))
        python3 -c 'import json, sys
j = json.loads(sys.argv[1])
name, level, ticks, hz, rss0, rss = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
n = max(j["established"], 1)
print(json.dumps({"daemon": name, "held": level, "rate": j["rate"], "established": j["established"], "failed": j["failed"],
  "cpu_us_per_sa": ticks * 1e6 / hz / n, "kb_per_held_sa": (rss - rss0) / level}))' \
            "$json" "$name" "$level" $((c1 - c0)) "$(getconf CLK_TCK)" "$rss0" "$r"
    done
}

scenario_run() {
    LABTOOL=${LABTOOL:-$LAB_TARGET/labtool}
    local conf=$LAB_WORKDIR/vpnd.yaml d=$LAB_WORKDIR/charon-gw1 out=$LAB_LOGDIR/held.jsonl pid
    ip -n peer2 route replace default dev t0
    : >"$out"

    write_vpnd_conf "$conf" start=respond peer_name=load peer_addr=192.0.2.3 \
        remote_id=load.lab.example psk=lab-load-secret remote_ts=203.0.113.64/26 dpd=0 reverse_route=
    sed -i 's/level: debug/level: info/' "$conf"
    # vpnd's DoS bounds raised as charon's "tuned" ones below: with the defaults
    # (block_threshold 5, cookie_threshold 10) a one-address generator would measure them.
    printf 'dos:\n  cookie_threshold: 0\n  block_threshold: 0\n  half_open_limit: 0\n' >>"$conf"
    start_vpnd gw1 "$conf"
    pid=$(cat "$LAB_WORKDIR/vpnd-gw1.pid")
    _levels vpnd "$pid" | tee -a "$out" >&2
    stop_vpnd gw1

    local mode
    for mode in tuned default; do
        rm -rf "$d"
        write_swanctl_conf "$d" name=load local_addr=192.0.2.1 remote_addr=192.0.2.3 \
            local_id=gw1.lab.example remote_id=load.lab.example psk=lab-load-secret \
            local_ts=198.51.100.0/25 remote_ts=203.0.113.64/26 start_action=none
        write_strongswan_conf "$d" "$LAB_LOGDIR/charon-gw1-$mode.log"
        sed -i 's/default = 1/default = 0/; s/ike = 2/ike = 1/; s/flush_line = yes/flush_line = no/' "$d/strongswan.conf"
        if [[ $mode == tuned ]]; then
            # One generator address: without these, charon's per-IP limits decide the rate;
            # and its IKE SA table is one bucket (a list) unless sized.
            sed -i "s/^charon {/charon {\n    $CHARON_TUNED/" "$d/strongswan.conf"
        fi
        start_charon gw1 "$d"
        pid=$(charon_pid gw1)
        if [[ $mode == tuned ]]; then
            _levels "charon-$mode" "$pid" | tee -a "$out" >&2
        else
            BENCH_HELD_LEVELS=1000 _levels "charon-$mode" "$pid" | tee -a "$out" >&2
        fi
        stop_charon gw1
    done

    python3 - "$out" <<'PY' | tee "$LAB_RESULTS/bench-ike-held.txt" >&2
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("bench-held: responder cost of one more IKE SA (children refused by TS) with N IKE SAs held")
print("bench-held: charon-tuned = cookie_threshold, cookie_threshold_ip, block_threshold 1000000, init_limit_half_open 0, ikesa_table_size 65536, ikesa_table_segments 16; charon-default = Debian's strongswan.conf")
print("bench-held: daemon          held   SAs/s  CPU us/SA  kB/held SA  (failed)")
for r in rows:
    print(f"bench-held: {r['daemon']:<15} {r['held']:>6} {r['rate']:>7.0f} {r['cpu_us_per_sa']:>10.0f} {r['kb_per_held_sa']:>11.1f}  ({r['failed']})")
by = {(r['daemon'], r['held']): r for r in rows}
for d in ("vpnd", "charon-tuned"):
    base = by.get((d, 1000))
    for n in (10000, 50000):
        r = by.get((d, n))
        if base and r:
            print(f"bench-held: {d}: CPU per SA at {n} held = {r['cpu_us_per_sa'] / base['cpu_us_per_sa']:.2f}x its cost at 1000 (target <= 1.25 for vpnd)")
v, c = by.get(("vpnd", 1000)), by.get(("charon-tuned", 1000))
if v and c:
    print(f"bench-held: at 1000 held, vpnd uses {v['cpu_us_per_sa'] / c['cpu_us_per_sa']:.2f}x charon's (tuned) CPU per IKE SA")
PY
}
