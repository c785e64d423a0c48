#!/bin/bash
# integration/lab.sh - host-side entry point of the vpnd VM test lab.
#
#   integration/lab.sh [--list] [--bench] [--demo] [SCENARIO ...]
#
#   no names   all scenarios in integration/scenarios/ not starting with bench- or demo-
#   --bench    the bench-* scenarios (plus any names given)
#   --demo     the demo-* scenarios (plus any names given)
#   --list     print the scenario names and exit
#
# Steps: install missing dependencies (install-deps.sh), build the workspace
# (skipped with LAB_SKIP_BUILD=1), boot ONE VM with virtme-ng (software
# emulation) running integration/guest.sh over the selected scenarios, then
# print each result, the reports the scenarios left in the results dir
# (bench-*.txt, demo*.txt), and a final line "lab: N passed, M failed".
# Exit status: 0 only if every scenario passed and the VM ran to the end.
#
# Environment: LAB_SKIP_BUILD=1, LAB_SKIP_DEPS=1, LAB_VM_TIMEOUT (seconds,
# default 2400), LAB_VM_MEMORY (2G), LAB_VM_CPUS (2), LAB_KERNEL (default:
# newest /boot/vmlinuz-*-amd64), LAB_RESULTS_KEEP (results are always kept;
# the directory is printed). LAB_IPV6, LAB_RADIUS_DEBUG, LAB_CONSOLE_LINES,
# LAB_DUMP_LINES, BENCH_PAIRS and BENCH_HELD_* are passed into the VM when set.
set -euo pipefail

LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$LAB_ROOT/.." && pwd)

usage() { sed -n '2,22s/^# \{0,1\}//p' "$0"; }

scenario_names() { # all scenario names, sorted
    local f
    for f in "$LAB_ROOT"/scenarios/*.sh; do
        [[ -e $f ]] || continue
        f=${f##*/}
        echo "${f%.sh}"
    done | sort
}

list=0 bench=0 demo=0
names=()
for arg in "$@"; do
    case $arg in
    --list) list=1 ;;
    --bench) bench=1 ;;
    --demo) demo=1 ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "lab: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
        arg=${arg##*/}
        arg=${arg%.sh}
        [[ -f $LAB_ROOT/scenarios/$arg.sh ]] || { echo "lab: no scenario '$arg' (see --list)" >&2; exit 2; }
        names+=("$arg")
        ;;
    esac
done

if ((list)); then
    scenario_names
    exit 0
fi

if ((bench)); then
    mapfile -t -O "${#names[@]}" names < <(scenario_names | grep '^bench-' || true)
fi
if ((demo)); then
    mapfile -t -O "${#names[@]}" names < <(scenario_names | grep '^demo-' || true)
fi
if ((!bench && !demo && ${#names[@]} == 0)); then
    mapfile -t names < <(scenario_names | grep -Ev '^(bench|demo)-' || true)
fi
# de-duplicate, keep order
mapfile -t names < <(printf '%s\n' "${names[@]}" | awk 'NF && !seen[$0]++')
if ((${#names[@]} == 0)); then
    echo "lab: no scenarios selected" >&2
    echo "lab: 0 passed, 0 failed"
    exit 1
fi

# (a) dependencies
if [[ ${LAB_SKIP_DEPS:-0} != 1 ]]; then
    bash "$LAB_ROOT/install-deps.sh" </dev/null
fi
export PATH=$PATH:/usr/sbin:/sbin:$HOME/.local/bin

# (b) build
if [[ ${LAB_SKIP_BUILD:-0} != 1 ]]; then
    if [[ -f $REPO/Cargo.toml ]]; then
        echo "lab: cargo build --release --workspace --bins"
        (cd "$REPO" && cargo build --release --workspace --bins) </dev/null
    else
        echo "lab: no Cargo.toml in $REPO, nothing to build"
    fi
fi

# (c) results dir + one VM
results=$(mktemp -d /tmp/vpnd-lab.XXXXXX)
chmod 0755 "$results"
newest_kernel() { # newest /boot/vmlinuz-*-amd64 by version
    local k
    for k in /boot/vmlinuz-*-amd64; do [[ -e $k ]] && echo "$k"; done | sort -V | tail -n 1
}
kernel=${LAB_KERNEL:-$(newest_kernel)}
[[ -n $kernel && -r $kernel ]] || { echo "lab: no readable /boot/vmlinuz-*-amd64" >&2; echo "lab: 0 passed, ${#names[@]} failed"; exit 1; }
vm_timeout=${LAB_VM_TIMEOUT:-2400}
# vng does not pass the environment into the guest: forward the knobs that are set
cmd="env"
for v in LAB_IPV6 LAB_RADIUS_DEBUG LAB_CONSOLE_LINES LAB_DUMP_LINES BENCH_PAIRS BENCH_HELD_LEVELS BENCH_HELD_BATCH; do
    [[ -z ${!v:-} ]] || cmd+=" $v=$(printf '%q' "${!v}")"
done
cmd+=" bash $(printf '%q' "$LAB_ROOT/guest.sh") $(printf '%q' "$results")"
for n in "${names[@]}"; do cmd+=" $(printf '%q' "$n")"; done

echo "lab: scenarios: ${names[*]}"
echo "lab: kernel $kernel, results in $results, VM limit ${vm_timeout}s"
t0=$(date +%s.%N)
set +e
(cd "$REPO" && timeout -k 30 "$vm_timeout" vng --run "$kernel" --disable-kvm \
    --memory "${LAB_VM_MEMORY:-2G}" --cpus "${LAB_VM_CPUS:-2}" \
    --rwdir "$results" --exec "$cmd") </dev/null 2>&1 | tee "$results/console.log"
vm_rc=${PIPESTATUS[0]}
set -e
t1=$(date +%s.%N)
vm_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

# (d) results
pass=0 fail=0
echo
echo "lab: results (VM ran ${vm_secs}s, exit $vm_rc; logs in $results/<scenario>/)"
for n in "${names[@]}"; do
    line=$(awk -F'\t' -v n="$n" '$1 == n { print; exit }' "$results/summary.tsv" 2>/dev/null || true)
    if [[ -z $line ]]; then
        echo "  FAIL     $n (did not run: VM stopped early)"
        fail=$((fail + 1))
        continue
    fi
    IFS=$'\t' read -r _ status secs <<<"$line"
    if [[ $status == PASS ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
    printf '  %-8s %s (%ss)\n' "$status" "$n" "$secs"
    if [[ $status != PASS && -f $results/$n/FAILED ]]; then
        sed 's/^/           /' "$results/$n/FAILED"
    fi
done
# reports written by bench-*/demo-* scenarios for the host (LAB_RESULTS in the VM)
for f in "$results"/bench-*.txt "$results"/demo*.txt; do
    [[ -f $f ]] || continue
    echo
    echo "===== ${f##*/} ====="
    cat "$f"
    ((fail == 0)) || echo "(a scenario FAILED: this report may be incomplete; see above)"
done
vm_ok=1
if [[ ! -e $results/guest.done ]]; then
    echo "lab: the VM did not finish (exit $vm_rc, limit ${vm_timeout}s): see $results/console.log"
    vm_ok=0
fi
echo "lab: $pass passed, $fail failed"
((fail == 0 && vm_ok == 1))
