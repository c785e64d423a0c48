# shellcheck shell=bash
# integration/lib.sh - shared functions for vpnd lab scenarios.
#
# Sourced by integration/guest.sh inside the VM (never on the host: it creates
# network namespaces and starts daemons). A scenario file defines
# scenario_run() and may set SCENARIO_TIMEOUT=<seconds>; guest.sh sources this
# file, then the scenario, calls lab_topology, scenario_run, lab_teardown.
#
# Topology built by lab_topology (all addresses are TEST-NET, all links are
# veth pairs, everything lives in namespaces created here, inside the VM):
#
#               ns "net": bridge br0 = the transport network 192.0.2.0/24
#   +-----------------+-----------------+-----------------+----------------+
# t0 192.0.2.1     t0 192.0.2.2      t0 192.0.2.3      t0 192.0.2.10    t0 192.0.2.20
# [gw1] vpnd       [peer1] strongSwan [peer2] strongSwan [radius]        [syslog]
# i0 198.51.100.1  i0 203.0.113.1    i0 203.0.113.65
#   |                |                 |
# e0 198.51.100.10 e0 203.0.113.10   e0 203.0.113.70
# [host1]          [hostp1]          [hostp2]     (default via the gateway)
#
# The bridge ports in ns "net" are named after the namespace they lead to
# (gw1, peer1, ...); the other end is "t0" in that namespace.
#
#   ns      iface  address            role
#   gw1     t0     192.0.2.1/24       OUR gateway (vpnd runs here; charon in 10-*)
#   gw1     i0     198.51.100.1/25    inner side of gw1
#   host1   e0     198.51.100.10/25   client behind gw1, default via .1
#   peer1   t0     192.0.2.2/24       strongSwan gateway 1
#   peer1   i0     203.0.113.1/26     inner side of peer1
#   hostp1  e0     203.0.113.10/26    client behind peer1, default via .1
#   peer2   t0     192.0.2.3/24       strongSwan gateway 2
#   peer2   i0     203.0.113.65/26    inner side of peer2
#   hostp2  e0     203.0.113.70/26    client behind peer2, default via .65
#   radius  t0     192.0.2.10/24      FreeRADIUS (accounting on 1813)
#   syslog  t0     192.0.2.20/24      syslog receiver
#
# Gateways (gw1, peer1, peer2) have net.ipv4.ip_forward=1. Every namespace has
# lo up. IPv6 is disabled in every namespace unless LAB_IPV6=1 (keeps the
# links quiet so packet counters are exact).
#
# Environment set by guest.sh before sourcing (defaults below for manual use):
#   LAB_ROOT     integration/ directory      LAB_REPO   repository root
#   LAB_TARGET   $LAB_REPO/target/release    LAB_RESULTS results dir (host-visible)
#   LAB_LOGDIR   per-scenario log dir (host-visible, under LAB_RESULTS)
#   LAB_WORKDIR  per-scenario scratch dir on tmpfs (configs, sockets, pids)

LAB_ROOT=${LAB_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
LAB_REPO=${LAB_REPO:-$(cd "$LAB_ROOT/.." && pwd)}
LAB_TARGET=${LAB_TARGET:-$LAB_REPO/target/release}
LAB_RESULTS=${LAB_RESULTS:-/tmp/vpnd-lab-manual}
LAB_SCENARIO=${LAB_SCENARIO:-manual}
LAB_LOGDIR=${LAB_LOGDIR:-$LAB_RESULTS/$LAB_SCENARIO}
LAB_WORKDIR=${LAB_WORKDIR:-/run/vpnd-lab/$LAB_SCENARIO}
LAB_IPV6=${LAB_IPV6:-0}
LAB_DUMP_LINES=${LAB_DUMP_LINES:-200}
# Namespaces created by this lab run, one per line (lab_teardown reads it).
LAB_NS_FILE=${LAB_NS_FILE:-/run/vpnd-lab/namespaces}
export LAB_ROOT LAB_REPO LAB_TARGET LAB_RESULTS LAB_SCENARIO LAB_LOGDIR LAB_WORKDIR

LAB_PY=(python3 -I -S) # fast start: the tools only use the standard library

# ---------------------------------------------------------------- logging ---
# Process creation is expensive in the emulated VM (0.2-0.8 s per exec when
# the host is busy), so helpers here use bash builtins and batch commands.

# lab_log MSG... : timestamped progress line on stderr (no fork).
lab_log() {
    local us=${EPOCHREALTIME#*.}
    printf '[%(%T)T.%s] %s\n' -1 "${us:0:3}" "$*" >&2
}

# lab_init : create the per-scenario log and work dirs.
lab_init() {
    mkdir -p "$LAB_LOGDIR" "$LAB_WORKDIR" "${LAB_NS_FILE%/*}"
    touch "$LAB_NS_FILE"
}

# ----------------------------------------------------------- namespaces ---
# The topology is built with a few `ip -batch` runs: one in the VM's root
# namespace (namespaces, veth pairs created directly inside their target
# namespaces, the bridge) and one per namespace (lo, addresses, routes).

LAB_ROOT_BATCH=()       # lines for `ip -b` in the root namespace
declare -A LAB_NS_BATCH # ns -> lines for `ip -n ns -b`
LAB_NEW_NS=()           # namespaces of the topology being built

# lab_ns_add NS : queue creation of namespace NS with lo up.
lab_ns_add() {
    LAB_NEW_NS+=("$1")
    LAB_ROOT_BATCH+=("netns add $1")
    LAB_NS_BATCH[$1]+="link set lo up"$'\n'
}

# lab_transport_attach NS ADDR/PREFIX : queue veth "t0" in NS, bridged into
# br0 of namespace "net" through port named NS (so NS must be <= 15 chars).
lab_transport_attach() {
    local ns=$1 addr=$2
    LAB_ROOT_BATCH+=("link add name $ns netns net type veth peer name t0 netns $ns")
    LAB_NS_BATCH[net]+="link set $ns master br0 up"$'\n'
    LAB_NS_BATCH[$ns]+="addr add $addr dev t0"$'\n'"link set t0 up"$'\n'
}

# lab_inner_link GW GWADDR/P HOST HOSTADDR/P : queue veth i0 (in GW) <-> e0
# (in HOST); HOST gets a default route via GWADDR.
lab_inner_link() {
    local gw=$1 gwaddr=$2 host=$3 hostaddr=$4
    LAB_ROOT_BATCH+=("link add name i0 netns $gw type veth peer name e0 netns $host")
    LAB_NS_BATCH[$gw]+="addr add $gwaddr dev i0"$'\n'"link set i0 up"$'\n'
    LAB_NS_BATCH[$host]+="addr add $hostaddr dev e0"$'\n'"link set e0 up"$'\n'
    LAB_NS_BATCH[$host]+="route add default via ${gwaddr%/*}"$'\n'
}

# lab_topology_apply : run the queued batches (also usable after queueing
# extra lab_ns_add / lab_transport_attach / lab_inner_link calls yourself).
lab_topology_apply() {
    local ns
    printf '%s\n' "${LAB_ROOT_BATCH[@]}" >"$LAB_WORKDIR/topology-root.batch"
    ip -b "$LAB_WORKDIR/topology-root.batch" ||
        lab_fail "topology: ip -b topology-root.batch failed"
    printf '%s\n' "${LAB_NEW_NS[@]}" >>"$LAB_NS_FILE"
    if [[ $LAB_IPV6 != 1 ]]; then # before any interface comes up
        local -a sc=()
        for ns in "${LAB_NEW_NS[@]}"; do
            sc+=("$ns:net.ipv6.conf.all.disable_ipv6=1" "$ns:net.ipv6.conf.default.disable_ipv6=1")
        done
        lab_ns_sysctl_multi "${sc[@]}"
    fi
    for ns in "${LAB_NEW_NS[@]}"; do
        [[ -n ${LAB_NS_BATCH[$ns]:-} ]] || continue
        printf '%s' "${LAB_NS_BATCH[$ns]}" >"$LAB_WORKDIR/topology-$ns.batch"
        ip -n "$ns" -b "$LAB_WORKDIR/topology-$ns.batch" ||
            lab_fail "topology: ip -n $ns -b topology-$ns.batch failed"
    done
    LAB_ROOT_BATCH=() LAB_NEW_NS=()
    LAB_NS_BATCH=()
}

# lab_in_vm : true inside the lab VM (virtme-ng). lab_topology refuses to
# run elsewhere unless LAB_ALLOW_HOST=1 (the lab's traffic stays in the VM).
lab_in_vm() { [[ $(</proc/cmdline) == *virtme* ]]; }

# lab_topology : build the whole plan above. Once per scenario.
lab_topology() {
    lab_init
    lab_in_vm || [[ ${LAB_ALLOW_HOST:-0} == 1 ]] ||
        lab_fail "lab_topology: not inside the lab VM (set LAB_ALLOW_HOST=1 to force)"
    local ns
    for ns in net gw1 peer1 peer2 radius syslog host1 hostp1 hostp2; do
        lab_ns_add "$ns"
    done
    LAB_ROOT_BATCH+=("link add name br0 netns net type bridge")
    LAB_NS_BATCH[net]+="link set br0 up"$'\n'
    lab_transport_attach gw1 192.0.2.1/24
    lab_transport_attach peer1 192.0.2.2/24
    lab_transport_attach peer2 192.0.2.3/24
    lab_transport_attach radius 192.0.2.10/24
    lab_transport_attach syslog 192.0.2.20/24
    lab_inner_link gw1 198.51.100.1/25 host1 198.51.100.10/25
    lab_inner_link peer1 203.0.113.1/26 hostp1 203.0.113.10/26
    lab_inner_link peer2 203.0.113.65/26 hostp2 203.0.113.70/26
    lab_topology_apply
    local -a sc=(gw1:net.ipv4.ip_forward=1 peer1:net.ipv4.ip_forward=1 peer2:net.ipv4.ip_forward=1)
    lab_ns_sysctl_multi "${sc[@]}"
    lab_log "topology up"
}

# lab_ns_sysctl NS KEY=VALUE... : set sysctls inside NS.
lab_ns_sysctl() {
    local ns=$1 kv
    shift
    local -a a=()
    for kv in "$@"; do a+=("$ns:$kv"); done
    lab_ns_sysctl_multi "${a[@]}"
}

# lab_ns_sysctl_multi NS:KEY=VALUE... : sysctls in several namespaces, one process.
lab_ns_sysctl_multi() {
    "${LAB_PY[@]}" "$LAB_ROOT/tools/netns_sysctl.py" "$@" ||
        lab_fail "sysctl failed: $*"
}

# lab_ns_pids NS... : pids of every process in the given namespaces.
lab_ns_pids() { "${LAB_PY[@]}" "$LAB_ROOT/tools/netns_pids.py" "$@"; }

# lab_teardown : kill every process in the lab namespaces (TERM, then KILL
# after 5 s) and delete the namespaces. Idempotent; never fails.
lab_teardown() {
    [[ -s ${LAB_NS_FILE:-} ]] || return 0
    local -a all=()
    local pids
    mapfile -t all <"$LAB_NS_FILE"
    pids=$("${LAB_PY[@]}" "$LAB_ROOT/tools/netns_pids.py" --kill TERM "${all[@]}" 2>/dev/null) || true
    for _ in $(seq 20); do
        [[ -n $pids ]] || break
        sleep 0.25
        pids=$(lab_ns_pids "${all[@]}" 2>/dev/null) || true
    done
    if [[ -n $pids ]]; then
        lab_log "teardown: SIGKILL to ${pids//$'\n'/ }"
        "${LAB_PY[@]}" "$LAB_ROOT/tools/netns_pids.py" --kill KILL "${all[@]}" >/dev/null 2>&1 || true
        sleep 0.5
    fi
    printf 'netns del %s\n' "${all[@]}" | ip -force -b - >/dev/null 2>&1 || true
    : >"$LAB_NS_FILE"
    # keep the scratch configs next to the logs for post-mortem reading
    if [[ -d $LAB_WORKDIR && -d $LAB_LOGDIR ]]; then
        tar -C "$LAB_WORKDIR" --exclude='*.vici' --exclude='*.sock' \
            --exclude=./freeradius/mods-config --exclude=./freeradius/mods-available \
            --exclude=./freeradius/sites-available --exclude=./freeradius/certs \
            --exclude=./freeradius/policy.d --exclude='./freeradius/*.rst' \
            -czf "$LAB_LOGDIR/workdir.tar.gz" . 2>/dev/null || true
    fi
    return 0
}

# ------------------------------------------------------------ failures ---

# lab_diag : print the lab state (addresses, routes, xfrm, charon SAs).
lab_diag() {
    local ns f
    while read -r ns; do
        [[ -n $ns ]] || continue
        ip netns pids "$ns" >/dev/null 2>&1 || continue
        echo "### ns $ns"
        ip -n "$ns" -br addr 2>&1
        ip -n "$ns" route show table all 2>&1 | grep -v 'table local' | sed 's/^/  route: /'
        if [[ $ns == gw* || $ns == peer* ]]; then
            ip -n "$ns" -s xfrm state 2>&1 | sed 's/^/  /'
            ip -n "$ns" xfrm policy 2>&1 | sed 's/^/  /'
        fi
    done <"$LAB_NS_FILE"
    for f in "$LAB_WORKDIR"/charon-*.pid; do
        [[ -e $f ]] || continue
        ns=${f##*/charon-}
        ns=${ns%.pid}
        echo "### swanctl --list-sas in $ns"
        LAB_SWANCTL_TIMEOUT=10 swanctl_in "$ns" --list-sas 2>&1 | sed 's/^/  /'
    done
}

# lab_dump_logs : print diagnostics and the tail of every log in LAB_LOGDIR.
lab_dump_logs() {
    local f
    [[ -e $LAB_LOGDIR/.dumped ]] && return 0
    touch "$LAB_LOGDIR/.dumped"
    {
        echo "================ lab state ================"
        lab_diag
        find "$LAB_LOGDIR" -type f ! -name output.log ! -name '.*' \
            ! -name '*.gz' ! -name '*.pcap' | sort | while read -r f; do
            echo "================ $f (last $LAB_DUMP_LINES lines) ================"
            tail -n "$LAB_DUMP_LINES" "$f"
        done
        echo "================ end of logs ================"
    } >&2
}

# lab_fail MSG... : mark the scenario failed, dump logs, exit.
lab_fail() {
    trap - ERR
    set +e
    printf 'FAIL: %s\n' "$*" >&2
    printf '%s\n' "$*" >>"$LAB_LOGDIR/FAILED"
    lab_dump_logs
    exit 1
}

# lab_on_error LINE CMD : ERR trap installed by guest.sh (set -E).
lab_on_error() {
    local rc=$? i stack=""
    for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
        stack+=" <- ${FUNCNAME[i]}@${BASH_SOURCE[i]##*/}:${BASH_LINENO[i - 1]}"
    done
    lab_fail "command failed (exit $rc): $2 (line $1;${stack:- top level})"
}

# ---------------------------------------------------------- assertions ---

# assert_eq EXPECTED ACTUAL WHAT
assert_eq() {
    if [[ "$1" == "$2" ]]; then
        lab_log "ok: $3 = $2"
    else
        lab_fail "$3: expected '$1', got '$2'"
    fi
}

# assert_ge MIN ACTUAL WHAT : integer ACTUAL >= MIN
assert_ge() {
    if [[ "$2" =~ ^-?[0-9]+$ ]] && (($2 >= $1)); then
        lab_log "ok: $3 = $2 (>= $1)"
    else
        lab_fail "$3: expected >= $1, got '$2'"
    fi
}

# assert_contains FILE PATTERN WHAT : grep -E PATTERN in FILE
assert_contains() {
    if [[ -f $1 ]] && grep -qE -- "$2" "$1"; then
        lab_log "ok: $3 (/$2/ in ${1##*/})"
    else
        lab_fail "$3: pattern /$2/ not found in $1 ($(wc -l <"$1" 2>/dev/null || echo missing) lines)"
    fi
}

# assert_not_contains FILE PATTERN WHAT
assert_not_contains() {
    if [[ -f $1 ]] && grep -qE -- "$2" "$1"; then
        lab_fail "$3: pattern /$2/ unexpectedly found in $1: $(grep -E -- "$2" "$1" | head -3)"
    else
        lab_log "ok: $3 (/$2/ absent from ${1##*/})"
    fi
}

# assert_ok WHAT CMD... : CMD must exit 0 (its output goes to stderr)
assert_ok() {
    local what=$1
    shift
    if "$@" >&2; then lab_log "ok: $what"; else lab_fail "$what: '$*' failed"; fi
}

# assert_fails WHAT CMD... : CMD must exit non-zero
assert_fails() {
    local what=$1
    shift
    if "$@" >&2; then lab_fail "$what: '$*' unexpectedly succeeded"; else lab_log "ok: $what"; fi
}

# lab_pid_alive PID : true if PID exists and is not a zombie.
lab_pid_alive() {
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# lab_stop_pid PID WHAT [TIMEOUT=10] : SIGTERM PID, wait for it to go (then
# SIGKILL), reap it if it is our child.
lab_stop_pid() {
    local pid=$1 what=$2 t=${3:-10} end
    kill -TERM "$pid" 2>/dev/null || true
    end=$((SECONDS + t))
    while lab_pid_alive "$pid" && ((SECONDS < end)); do sleep 0.1; done
    if lab_pid_alive "$pid"; then
        lab_log "$what (pid $pid) ignored SIGTERM for ${t}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    lab_log "stopped $what (pid $pid)"
}

# lab_wait TIMEOUT WHAT CMD... : poll CMD every 0.2 s until it succeeds;
# fail the scenario after TIMEOUT seconds.
lab_wait() {
    local t=$1 what=$2 end
    shift 2
    end=$((SECONDS + t))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || lab_fail "timed out after ${t}s waiting for: $what"
        sleep 0.2
    done
    lab_log "ok: $what"
}

# ----------------------------------------------------------- traffic ---

# ping_count NS DEST COUNT : print how many of COUNT echo replies came back.
ping_count() {
    local out
    out=$(ip netns exec "$1" ping -n -q -c "$3" -i 0.2 -W 2 "$2" 2>&1) || true
    sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out" | head -1
}

# ping_ok NS DEST COUNT : assert all COUNT pings from NS to DEST answered.
ping_ok() {
    local got
    got=$(ping_count "$@")
    assert_eq "$3" "${got:-0}" "ping $1 -> $2 replies"
}

# xfrm_counters NS : JSON list of SAs in NS:
#   [{"src","dst","proto","spi":"0x...","spi_int","reqid","mode","bytes","packets"}]
xfrm_counters() {
    ip -n "$1" -s xfrm state | "${LAB_PY[@]}" "$LAB_ROOT/tools/xfrm_state.py"
}

# xfrm_counter NS SRC DST FIELD[,FIELD...] : the FIELDs (bytes, packets,
# spi, spi_int, reqid, mode, proto) of the one SA SRC->DST in NS, space
# separated (fails the scenario if there isn't exactly one such SA), e.g.
#   read -r pkts bytes <<<"$(xfrm_counter gw1 192.0.2.1 192.0.2.2 packets,bytes)"
xfrm_counter() {
    local v
    v=$(ip -n "$1" -s xfrm state | "${LAB_PY[@]}" "$LAB_ROOT/tools/xfrm_state.py" \
        --src "$2" --dst "$3" --get "$4") || lab_fail "xfrm_counter $*: $v"
    echo "$v"
}

# xfrm_sa_count NS : number of xfrm states in NS with an SPI (not counting the kernel's
# larval SA, spi 0, that an ACQUIRE leaves for 30 s while it waits for an IKE daemon).
xfrm_sa_count() {
    ip -n "$1" xfrm state | grep -E '^\s+proto [a-z]+ spi ' | grep -vc 'spi 0x00000000' || true
}

# start_capture NS IFACE [FILTER...] : tcpdump on IFACE in NS, written to
# $LAB_LOGDIR/NS-IFACE.pcap (stop it with stop_capture before reading).
start_capture() {
    local ns=$1 ifc=$2 pcap=$LAB_LOGDIR/$1-$2.pcap pid
    shift 2
    ip netns exec "$ns" tcpdump -n -U -s 256 -i "$ifc" -w "$pcap" "$@" \
        >"$LAB_LOGDIR/tcpdump-$ns-$ifc.log" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_WORKDIR/tcpdump-$ns-$ifc.pid"
    lab_wait 15 "tcpdump on $ns/$ifc listening" \
        grep -q 'listening on' "$LAB_LOGDIR/tcpdump-$ns-$ifc.log"
}

# stop_capture NS IFACE : stop the capture; prints the pcap file name.
stop_capture() {
    local f=$LAB_WORKDIR/tcpdump-$1-$2.pid
    lab_stop_pid "$(cat "$f")" "tcpdump $1/$2" >&2
    rm -f "$f"
    echo "$LAB_LOGDIR/$1-$2.pcap"
}

# pcap_count PCAP [FILTER...] : number of packets in PCAP matching FILTER.
pcap_count() {
    local f=$1
    shift
    tcpdump -n -r "$f" "$@" 2>/dev/null | wc -l
}

# ------------------------------------------------------------ strongSwan ---

# write_strongswan_conf DIR LOGFILE : strongswan.conf for an isolated charon,
# logging to LOGFILE (ike 2, cfg 1, knl 1, net 1).
write_strongswan_conf() {
    local dir=$1 log=$2
    mkdir -p "$dir"
    cat >"$dir/strongswan.conf" <<EOF
# generated by integration/lib.sh
charon {
    load_modular = yes
    plugins {
        include strongswan.d/charon/*.conf
    }
    filelog {
        lab {
            path = $log
            time_format = %H:%M:%S
            ike_name = yes
            append = no
            flush_line = yes
            default = 1
            ike = 2
            cfg = 1
            knl = 1
            net = 1
        }
    }
    syslog {
        daemon {
            default = -1
        }
    }
}
include strongswan.d/*.conf
# swanctl: only the plugins Debian installs (no load warnings, faster start)
swanctl {
    load = aesni aes rc2 sha2 sha1 md5 mgf1 random nonce x509 revocation constraints pubkey pkcs1 pkcs7 pkcs12 pgp dnskey sshkey pem openssl pkcs8 fips-prf gmp agent xcbc hmac kdf gcm drbg
}
EOF
}

# write_swanctl_conf DIR key=value... : add a site-to-site PSK connection to
# DIR/swanctl/conf.d/<name>.conf (call several times for several peers).
# Keys (defaults in brackets):
#   name [site]            connection and child name
#   local_addr remote_addr transport addresses (remote may be %any)
#   local_id remote_id     IKE identities [local_addr / remote_addr]
#   local_ts remote_ts     traffic selectors (comma-separated subnets)
#   psk [lab-secret-0123456789]
#   ike [aes256gcm16-prfsha256-x25519]   esp [aes256gcm16]
#   start_action [none]    start = initiate on load, trap = on traffic, none = respond
#   mode [tunnel]  rekey_time [0 = default]  child_rekey_time [0]  dpd_delay [0]
#   ike_extra / child_extra  raw swanctl.conf lines (';' separated) appended
#                            to the connection / child section
write_swanctl_conf() {
    local dir=$1
    shift
    local -A o=(
        [name]=site [psk]=lab-secret-0123456789
        [ike]=aes256gcm16-prfsha256-x25519 [esp]=aes256gcm16
        [start_action]=none [mode]=tunnel [rekey_time]=0 [child_rekey_time]=0
        [dpd_delay]=0 [ike_extra]="" [child_extra]=""
    )
    local kv
    for kv in "$@"; do
        [[ $kv == *=* ]] || { echo "write_swanctl_conf: bad arg '$kv'" >&2; return 1; }
        o[${kv%%=*}]=${kv#*=}
    done
    local k
    for k in local_addr remote_addr local_ts remote_ts; do
        [[ -n ${o[$k]:-} ]] || { echo "write_swanctl_conf: $k= is required" >&2; return 1; }
    done
    : "${o[local_id]:=${o[local_addr]}}" "${o[remote_id]:=${o[remote_addr]}}"
    mkdir -p "$dir/swanctl"/{conf.d,x509,x509ca,x509aa,x509ac,x509crl,x509ocsp,private,rsa,ecdsa,bliss,pkcs8,pkcs12,pubkey}
    [[ -f $dir/swanctl/swanctl.conf ]] ||
        echo 'include conf.d/*.conf' >"$dir/swanctl/swanctl.conf"
    local n=${o[name]}
    cat >"$dir/swanctl/conf.d/$n.conf" <<EOF
# generated by integration/lib.sh write_swanctl_conf
connections {
    $n {
        version = 2
        local_addrs = ${o[local_addr]}
        remote_addrs = ${o[remote_addr]}
        proposals = ${o[ike]}
        rekey_time = ${o[rekey_time]}
        dpd_delay = ${o[dpd_delay]}
        ${o[ike_extra]//;/$'\n        '}
        local {
            auth = psk
            id = ${o[local_id]}
        }
        remote {
            auth = psk
            id = ${o[remote_id]}
        }
        children {
            $n {
                local_ts = ${o[local_ts]}
                remote_ts = ${o[remote_ts]}
                esp_proposals = ${o[esp]}
                mode = ${o[mode]}
                rekey_time = ${o[child_rekey_time]}
                start_action = ${o[start_action]}
                ${o[child_extra]//;/$'\n                '}
            }
        }
    }
}
secrets {
    ike-$n {
        id-local = ${o[local_id]}
        id-remote = ${o[remote_id]}
        secret = "${o[psk]}"
    }
}
EOF
}

# charon_pid NS : pid of the lab charon running in NS.
charon_pid() { cat "$LAB_WORKDIR/charon-$1.pid"; }

# swanctl_in NS ARGS... : run swanctl against the charon of NS (enters its
# mount namespace, where /etc/swanctl and /run/charon.vici are its own).
swanctl_in() {
    local ns=$1
    shift
    timeout "${LAB_SWANCTL_TIMEOUT:-60}" nsenter -t "$(charon_pid "$ns")" -m -n swanctl "$@"
}

# start_charon NS DIR : start charon in NS with DIR/swanctl as /etc/swanctl and
# DIR/strongswan.conf (generated if missing) as /etc/strongswan.conf, log to
# $LAB_LOGDIR/charon-NS.log, wait for VICI, then swanctl --load-all.
start_charon() {
    local ns=$1 dir=$2 log=$LAB_LOGDIR/charon-$1.log pid
    [[ -d $dir/swanctl ]] || lab_fail "start_charon: $dir/swanctl missing (write_swanctl_conf first)"
    [[ -f $dir/strongswan.conf ]] || write_strongswan_conf "$dir" "$log"
    # CHARON_EXTRA_PLUGINS="eap-md5 eap-tls": plugins of libcharon-extra-plugins (unpacked by
    # install-deps.sh, not installed) for this charon only: Debian's plugins and those in a
    # copy mounted over the plugin directory in its own mount namespace, their libraries
    # (libtls) on LD_LIBRARY_PATH, each loaded by strongswan.conf.
    local plugins="" libs=""
    if [[ -n ${CHARON_EXTRA_PLUGINS:-} ]]; then
        local src=$LAB_ROOT/.cache/charon-extra/usr/lib/ipsec p
        plugins=$dir/plugins libs=$src
        rm -rf "$plugins"
        mkdir -p "$plugins"
        cp /usr/lib/ipsec/plugins/*.so "$plugins/"
        for p in $CHARON_EXTRA_PLUGINS; do
            [[ -f $src/plugins/libstrongswan-$p.so ]] ||
                lab_fail "start_charon: $p is not in $src (integration/install-deps.sh unpacks it)"
            cp "$src/plugins/libstrongswan-$p.so" "$plugins/"
            grep -q "^        $p { load = yes }" "$dir/strongswan.conf" ||
                sed -i "0,/^    plugins {/s//    plugins {\n        $p { load = yes }/" "$dir/strongswan.conf"
        done
    fi
    # ip netns exec and unshare (without --fork) both exec, so $! is charon.
    # Bind mounts first: DIR may be under /run, which the tmpfs then hides.
    # shellcheck disable=SC2016
    ip netns exec "$ns" unshare -m --propagation private sh -c '
        mount --bind "$1/swanctl" /etc/swanctl &&
        mount --bind "$1/strongswan.conf" /etc/strongswan.conf &&
        { [ -z "$2" ] || mount --bind "$2" /usr/lib/ipsec/plugins; } &&
        mount -t tmpfs tmpfs /run &&
        if [ -n "$3" ]; then export LD_LIBRARY_PATH="$3"; fi &&
        exec /usr/lib/ipsec/charon' charon-lab "$dir" "$plugins" "$libs" \
        >"$LAB_LOGDIR/charon-$ns.stdout" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_WORKDIR/charon-$ns.pid"
    local end=$((SECONDS + 30))
    until nsenter -t "$pid" -m test -S /run/charon.vici 2>/dev/null; do
        lab_pid_alive "$pid" || lab_fail "charon in $ns died at startup"
        ((SECONDS < end)) || lab_fail "charon in $ns: no VICI socket after 30s"
        sleep 0.2
    done
    swanctl_in "$ns" --load-all >"$LAB_LOGDIR/swanctl-load-$ns.log" 2>&1 ||
        lab_fail "swanctl --load-all in $ns failed: $(cat "$LAB_LOGDIR/swanctl-load-$ns.log")"
    lab_log "charon up in $ns (pid $pid)"
}

# stop_charon NS : SIGTERM the charon of NS and wait for it to exit.
stop_charon() {
    lab_stop_pid "$(charon_pid "$1")" "charon in $1" 15
    rm -f "$LAB_WORKDIR/charon-$1.pid"
}

# ike_state NS CONN : state of IKE SA CONN in NS (ESTABLISHED, CONNECTING...)
# or empty if there is none.
ike_state() {
    swanctl_in "$1" --list-sas --ike "$2" 2>/dev/null |
        sed -n "s/^$2: #[0-9]*, \([A-Z_]*\).*/\1/p" | head -1 || true
}

# wait_ike_established NS CONN [TIMEOUT=30] : wait until charon in NS has
# the IKE SA CONN ESTABLISHED with an INSTALLED child SA. Polls the charon
# log (cheap) when it is the lab's filelog, then confirms with swanctl.
wait_ike_established() {
    local ns=$1 conn=$2 t=${3:-30} log=$LAB_LOGDIR/charon-$1.log out
    if [[ -f $log ]]; then
        lab_wait "$t" "CHILD_SA of $conn established in $ns (charon log)" \
            grep -qE "CHILD_SA $conn\{[0-9]+\} established" "$log"
    fi
    # shellcheck disable=SC2016
    lab_wait "$t" "IKE SA $conn ESTABLISHED with INSTALLED child in $ns" bash -c '
        out=$(timeout 60 nsenter -t "$1" -m -n swanctl --list-sas --ike "$2" 2>/dev/null)
        grep -q "ESTABLISHED" <<<"$out" && grep -q "INSTALLED" <<<"$out"' _ "$(charon_pid "$ns")" "$conn"
}

# ------------------------------------------------------------ FreeRADIUS ---

# start_freeradius NS [ADDR_PREFIX=192.0.2.0/24] : run FreeRADIUS in NS with
# a private copy of /etc/freeradius/3.0 in $LAB_WORKDIR/freeradius; clients
# ADDR_PREFIX and localhost with secret "testing123"; accounting records go
# to $RADIUS_DETAIL_FILE ($LAB_LOGDIR/radius-detail, with the packet header:
# Packet-Src-IP-Address, Packet-Dst-Port...); debug log (-X) to
# $LAB_LOGDIR/freeradius.log (set LAB_RADIUS_DEBUG=0 for -f -l stdout); LAB_RADIUS_USERS:
# users-file lines added before the defaults.
start_freeradius() {
    local ns=$1 clients=${2:-192.0.2.0/24} d=$LAB_WORKDIR/freeradius pid
    RADIUS_DETAIL_FILE=$LAB_LOGDIR/radius-detail
    RADIUS_LOG=$LAB_LOGDIR/freeradius.log
    export RADIUS_DETAIL_FILE RADIUS_LOG
    rm -rf "$d"
    cp -a /etc/freeradius/3.0 "$d"
    mkdir -p "$d/log" "$d/run"
    sed -i -E \
        -e 's/^(\s*)(user|group)\s*=/\1# \2 =/' \
        -e "s|^logdir\s*=.*|logdir = $d/log|" \
        -e "s|^run_dir\s*=.*|run_dir = $d/run|" \
        -e 's/^(\s*)reject_delay\s*=.*/\1reject_delay = 0/' \
        "$d/radiusd.conf"
    # one fixed detail file instead of radacct/<client-ip>/detail-<date>
    rm -f "$d/mods-enabled/detail"
    # log_packet_header: records also carry Packet-Src-IP-Address etc.; locking: FreeRADIUS's
    # threads write records concurrently, and without the lock a burst interleaves them (half
    # of 10,000 Starts were lost in the detail file, though every one was acknowledged).
    sed -E -e "s|^(\s*)filename\s*=.*|\1filename = $RADIUS_DETAIL_FILE|" \
        -e 's|^(\s*)#\s*log_packet_header\s*=.*|\1log_packet_header = yes|' \
        -e 's|^(\s*)#\s*locking\s*=.*|\1locking = yes|' \
        "$d/mods-available/detail" >"$d/mods-enabled/detail"
    # LAB_RADIUS_USERS: users-file entries put first (EAP users with their reply attributes).
    # The default filter_username policy rejects a realm without a dot (IOS's joe@cclient),
    # so it is left out then.
    if [[ -n ${LAB_RADIUS_USERS:-} ]]; then
        { printf '%s\n\n' "$LAB_RADIUS_USERS"; cat "$d/mods-config/files/authorize"; } >"$d/users.new"
        mv "$d/users.new" "$d/mods-config/files/authorize"
        sed -i -E 's/^(\s*)filter_username\s*$/\1# filter_username/' "$d/sites-enabled/default"
    fi
    # LAB_RADIUS_TLS="CERT KEY CA": FreeRADIUS's eap tls with these files (EAP-TLS, lab 78).
    if [[ -n ${LAB_RADIUS_TLS:-} ]]; then
        local cert key ca
        read -r cert key ca <<<"$LAB_RADIUS_TLS"
        sed -i -E -e "s|^(\s*)private_key_file\s*=.*|\1private_key_file = $key|" \
            -e "s|^(\s*)certificate_file\s*=.*|\1certificate_file = $cert|" \
            -e "s|^(\s*)ca_file\s*=.*|\1ca_file = $ca|" \
            -e "s|^(\s*)private_key_password\s*=.*|\1# private_key_password|" \
            "$d/mods-available/eap"
    fi
    cat >>"$d/clients.conf" <<EOF

# added by integration/lib.sh
client lab_transport {
    ipaddr = $clients
    secret = testing123
    require_message_authenticator = no
    nas_type = other
}
EOF
    local args=(-X)
    [[ ${LAB_RADIUS_DEBUG:-1} == 1 ]] || args=(-f -l stdout)
    ip netns exec "$ns" freeradius "${args[@]}" -d "$d" >"$RADIUS_LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_WORKDIR/freeradius-$ns.pid"
    # "answers" = an Access-Reject for a probe user (reject_delay is 0)
    local end=$((SECONDS + 60))
    until printf 'User-Name = lab-probe\nUser-Password = x\n' |
        ip netns exec "$ns" radclient -x -r 1 -t 3 127.0.0.1 auth testing123 \
            >"$LAB_LOGDIR/radius-probe.txt" 2>&1 ||
        grep -q 'Received Access-' "$LAB_LOGDIR/radius-probe.txt"; do
        lab_pid_alive "$pid" || lab_fail "freeradius in $ns died at startup"
        ((SECONDS < end)) || lab_fail "freeradius in $ns: no answer after 60s"
        sleep 0.5
    done
    lab_log "FreeRADIUS up in $ns (pid $pid), detail file $RADIUS_DETAIL_FILE"
}

# radius_acct NS SERVER SECRET 'Attr = value'... : send one Accounting-Request
# from NS with radclient (1 retry, 2 s timeout); prints radclient's output;
# returns radclient's status (0 = Accounting-Response received).
radius_acct() {
    local ns=$1 server=$2 secret=$3
    shift 3
    printf '%s\n' "$@" | ip netns exec "$ns" radclient -x -r 1 -t 2 "$server" acct "$secret"
}

# radius_detail_records FILE [parse_detail.py options] : the detail file's
# records as JSON lines ({"_header": date, "Attr": "value", ...}); options:
#   --where Attr=Value (repeatable)   --count
#   --get Attr[,Attr...]  values of each kept record, tab-separated (an absent
#                         attribute prints as <missing>, so fields never collapse), e.g.
#   IFS=$'\t' read -r user nas < <(radius_detail_records "$f" --where Acct-Status-Type=Start --get User-Name,NAS-IP-Address)
radius_detail_records() {
    local f=$1
    shift
    "${LAB_PY[@]}" "$LAB_ROOT/tools/parse_detail.py" "$@" "$f"
}

# --------------------------------------------------------------- syslog ---

# start_syslog_receiver NS PORT [ADDR=0.0.0.0] : syslog receiver in NS on UDP
# and TCP PORT (tools/syslog_receiver.py); every message is appended as one
# line "proto<TAB>src<TAB>message" to $LAB_LOGDIR/syslog-NS-PORT.log (kept
# across restarts). Prints nothing; the file name is in SYSLOG_FILE.
start_syslog_receiver() {
    local ns=$1 port=$2 addr=${3:-0.0.0.0} pid ready=$LAB_WORKDIR/syslog-$1-$2.ready
    SYSLOG_FILE=$LAB_LOGDIR/syslog-$ns-$port.log
    export SYSLOG_FILE
    rm -f "$ready"
    ip netns exec "$ns" "${LAB_PY[@]}" "$LAB_ROOT/tools/syslog_receiver.py" \
        --addr "$addr" --port "$port" --out "$SYSLOG_FILE" --ready "$ready" \
        >>"$LAB_LOGDIR/syslog-receiver-$ns-$port.stderr" 2>&1 &
    pid=$!
    echo "$pid" >"$LAB_WORKDIR/syslog-$ns-$port.pid"
    lab_wait 30 "syslog receiver in $ns:$port ready" test -e "$ready"
}

# stop_syslog_receiver NS PORT
stop_syslog_receiver() {
    local f=$LAB_WORKDIR/syslog-$1-$2.pid
    lab_stop_pid "$(cat "$f")" "syslog receiver $1:$2"
    rm -f "$f"
}
