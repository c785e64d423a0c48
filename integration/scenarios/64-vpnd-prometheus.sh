# shellcheck shell=bash
# 64-vpnd-prometheus: Debian's Prometheus scrapes vpnd's metrics endpoint (gw1) while charon
# rekeys the child SA every 15 s under a ping: the session byte counter never resets across
# the rekeys (PromQL resets() == 0), grows by at least the ping's bytes, and equals the
# session totals vpnctl reports. install-deps.sh installs Debian's prometheus.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=300

VPNCTL=${VPNCTL:-$LAB_TARGET/vpnctl}
_vpnctl() { ip netns exec gw1 "$VPNCTL" --socket "$LAB_WORKDIR/vpnd.sock" "$@"; }

# _promql QUERY : the value of an instant query's single result (or "none").
_promql() {
    ip netns exec gw1 "${LAB_PY[@]}" -c '
import json, sys, urllib.parse, urllib.request
q = urllib.parse.urlencode({"query": sys.argv[1]})
r = json.load(urllib.request.urlopen("http://127.0.0.1:9090/api/v1/query?" + q, timeout=5))
res = r["data"]["result"]
print(res[0]["value"][1] if len(res) == 1 else "none")' "$1"
}

_session_bytes_out() {
    _vpnctl --json show crypto session detail | "${LAB_PY[@]}" -c '
import json, sys
s = json.load(sys.stdin)["sessions"]
print(s[0]["totals"]["bytes_out"] if len(s) == 1 else "missing")'
}

_has_series() { [[ $(_promql 'vpnd_session_bytes_total{direction="out",peer="peer1"}') != none ]]; }

scenario_run() {
    local dpeer=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml prom=$LAB_WORKDIR/prom
    local sent recv resets value want total
    command -v prometheus >/dev/null ||
        lab_fail "prometheus is not installed (integration/install-deps.sh installs it)"
    write_swanctl_conf "$dpeer" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 \
        ike=aes256gcm16-prfsha256-x25519 esp=aes256gcm16 \
        child_rekey_time=15s start_action=none
    start_charon peer1 "$dpeer"
    write_vpnd_conf "$conf" start=initiate extra=$'metrics:\n  listen: 127.0.0.1:9469'
    start_vpnd gw1 "$conf"
    wait_ike_established peer1 site 40

    mkdir -p "$prom/data"
    cat >"$prom/prometheus.yml" <<'YAML'
global: { scrape_interval: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: vpnd
    static_configs: [ { targets: ["127.0.0.1:9469"] } ]
YAML
    ip netns exec gw1 prometheus --config.file="$prom/prometheus.yml" \
        --storage.tsdb.path="$prom/data" --web.listen-address=127.0.0.1:9090 \
        >"$LAB_LOGDIR/prometheus.log" 2>&1 &
    lab_wait 60 "Prometheus has vpnd's session counter" _has_series

    # 200 pings (40 s): two or more child rekeys by charon meanwhile.
    ping_background host1 203.0.113.10 200 prom
    # shellcheck disable=SC2016 # expanded by the inner bash
    lab_wait 90 "vpnd installed a rekeyed child twice" \
        bash -c '(( $(grep -c "child SA installed" "$0") >= 3 ))' "$LAB_LOGDIR/vpnd-gw1.log"
    read -r sent recv <<<"$(ping_summary prom)"
    assert_eq "$sent" "${recv:-0}" "pings answered across the rekeys"
    # The next counter dump (every 10 s), then a scrape of it.
    sleep 14

    resets=$(_promql 'resets(vpnd_session_bytes_total{direction="out",peer="peer1"}[5m])')
    assert_eq 0 "$resets" "resets() of the session byte counter across the child rekeys"
    value=$(_promql 'vpnd_session_bytes_total{direction="out",peer="peer1"}')
    # Each echo request is an 84-byte IP packet into the tunnel.
    want=$((sent * 84))
    assert_ge "$want" "${value%.*}" "session bytes out (Prometheus) >= the ping's bytes"
    total=$(_session_bytes_out)
    assert_eq "$total" "${value%.*}" "Prometheus' last value = vpnctl's session total"
    assert_eq 0 "$(_promql 'vpnd_ike_handshakes_total{result="failed"}')" "no failed handshake"
    assert_ge 2 "$(_promql 'vpnd_rekeys_total{sa="child"}')" "child rekeys counted"
    stop_vpnd gw1
}
