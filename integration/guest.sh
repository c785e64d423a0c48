#!/bin/bash
# integration/guest.sh - runs INSIDE the lab VM (started by integration/lab.sh).
#
#   guest.sh RESULTS_DIR SCENARIO...    run each scenario, write results
#   guest.sh --one SCENARIO_FILE        (internal) run one scenario in this shell
#
# For every scenario: fresh topology (lib.sh lab_topology), scenario_run under
# `timeout` (SCENARIO_TIMEOUT from the file, default 180 s), then lab_teardown
# even on failure or timeout. Per-scenario files in RESULTS_DIR/<name>/
# (output.log = the scenario's own output, charon-*.log, freeradius.log, ...),
# one line per scenario in RESULTS_DIR/summary.tsv: name<TAB>PASS|FAIL|TIMEOUT<TAB>seconds.
# shellcheck source-path=SCRIPTDIR
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}
LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LAB_ROOT

if [[ ${1:-} == --one ]]; then
    # Runs under `timeout` in its own process; LAB_* come from the parent.
    set -Eeuo pipefail
    # shellcheck source=lib.sh
    source "$LAB_ROOT/lib.sh"
    # shellcheck disable=SC1090
    source "$2"
    trap 'lab_on_error "$LINENO" "$BASH_COMMAND"' ERR
    trap 'lab_teardown' EXIT
    # `timeout` sends SIGTERM to the whole group: record the state first
    trap 'lab_fail "SIGTERM: scenario time limit reached"' TERM
    lab_log "scenario $LAB_SCENARIO: building topology"
    lab_topology
    lab_log "scenario $LAB_SCENARIO: running"
    scenario_run
    [[ ! -e $LAB_LOGDIR/FAILED ]] || exit 1
    lab_log "scenario $LAB_SCENARIO: all assertions passed"
    exit 0
fi

# lab_call 'SHELL CODE' : run code with lib.sh loaded, output to the scenario log.
lab_call() {
    # shellcheck disable=SC2016
    bash -c 'source "$LAB_ROOT/lib.sh"; eval "$1"' _ "$1" >>"$LAB_LOGDIR/output.log" 2>&1
}

RESULTS=${1:?usage: guest.sh RESULTS_DIR SCENARIO...}
shift
export LAB_RESULTS=$RESULTS
read -r up _ </proc/uptime
echo "guest: up ${up}s at start of guest.sh, kernel $(uname -r), $(nproc) cpus"

# --- mounts: the guest sees the host root read-only except --rwdir dirs.
# virtme-ng usually gives tmpfs /run and overlays on /etc /var /tmp; make sure
# of what the lab needs without relying on it.
if ! touch /run/.lab-w 2>/dev/null; then
    mount -t tmpfs -o mode=0755 tmpfs /run
fi
rm -f /run/.lab-w
mkdir -p /run/netns /run/vpnd-lab
[[ -e /var/run ]] || ln -s /run /var/run 2>/dev/null || true
if ! touch /var/tmp/.lab-w 2>/dev/null; then mount -t tmpfs tmpfs /var/tmp; fi
rm -f /var/tmp/.lab-w
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug 2>/dev/null || true
ulimit -c 0
{
    uname -a
    echo "uptime at guest.sh start: $up"
    mount
} >"$RESULTS/guest-info.txt" 2>&1

: >"$RESULTS/summary.tsv"
failed=0
total=$#
i=0
for name in "$@"; do
    i=$((i + 1))
    file=$LAB_ROOT/scenarios/$name.sh
    export LAB_SCENARIO=$name LAB_LOGDIR=$RESULTS/$name LAB_WORKDIR=/run/vpnd-lab/$name
    export LAB_NS_FILE=/run/vpnd-lab/namespaces
    mkdir -p "$LAB_LOGDIR" "$LAB_WORKDIR"
    if [[ ! -f $file ]]; then
        echo "guest: [$i/$total] $name: no such scenario file $file"
        printf '%s\tFAIL\t0\n' "$name" >>"$RESULTS/summary.tsv"
        failed=$((failed + 1))
        continue
    fi
    # shellcheck disable=SC2016
    limit=$(bash -c 'source "$1" >/dev/null 2>&1; echo "${SCENARIO_TIMEOUT:-180}"' _ "$file")
    [[ $limit =~ ^[0-9]+$ ]] || limit=180
    echo "guest: [$i/$total] $name (limit ${limit}s) ..."
    t0=$EPOCHREALTIME
    timeout -k 15 "$limit" bash "$LAB_ROOT/guest.sh" --one "$file" \
        >"$LAB_LOGDIR/output.log" 2>&1 </dev/null
    rc=$?
    status=PASS
    if [[ $rc == 124 || $rc == 137 ]]; then
        status=TIMEOUT
        lab_call "echo 'TIMEOUT: scenario $name exceeded ${limit}s' | tee -a \"\$LAB_LOGDIR/FAILED\"; lab_dump_logs"
    elif [[ $rc != 0 || -e $LAB_LOGDIR/FAILED ]]; then
        status=FAIL
    fi
    # teardown again: covers timeouts and scenarios that died before their trap
    lab_call lab_teardown
    t1=$EPOCHREALTIME
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    printf '%s\t%s\t%s\n' "$name" "$status" "$secs" >>"$RESULTS/summary.tsv"
    echo "guest: [$i/$total] $name: $status (${secs}s, exit $rc)"
    if [[ $status != PASS ]]; then
        failed=$((failed + 1))
        echo "----- $name: output.log (last ${LAB_CONSOLE_LINES:-500} lines; full logs in $LAB_LOGDIR) -----"
        tail -n "${LAB_CONSOLE_LINES:-500}" "$LAB_LOGDIR/output.log"
        echo "----- end of $name -----"
    fi
done
read -r up _ </proc/uptime
echo "guest: done, $((total - failed))/$total passed, uptime ${up}s"
touch "$RESULTS/guest.done"
((failed == 0))
