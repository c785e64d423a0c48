# shellcheck shell=bash
# vpnd-xfrm: AES-CBC with HMAC-SHA2-256-128 (and -384, -512) with extended sequence numbers.
source "$LAB_ROOT/lib-xfrm.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=150

scenario_run() {
    xfrm_pair_scenario cbc256-sha256 --esn --replay-window 128
    assert_eq 0 "$(xfrm_sa_count gw1)" "gw1 clean"
    ip netns exec peer1 "$LABTOOL" flush >&2
    xfrm_install_pair cbc128-sha256 --esn --replay-window 128
    assert_eq True "$(xfrm_sa_field gw1 0xc0010001 esn)" "ESN flag read back from the dump"
    assert_eq 128 "$(xfrm_sa_field gw1 0xc0020001 replay_window)" "ESN replay window read back"
    grep -qE 'flag .*\besn\b' <<<"$(ip -n gw1 xfrm state)" || lab_fail "iproute2 does not show the esn flag"
    ping_ok host1 203.0.113.10 3
    xfrm_compare_counters gw1 >&2
    ip netns exec gw1 "$LABTOOL" flush >&2
    ip netns exec peer1 "$LABTOOL" flush >&2
    for alg in cbc256-sha384 cbc256-sha512; do
        xfrm_install_pair "$alg" --esn
        ping_ok host1 203.0.113.10 2
        xfrm_compare_counters gw1 >&2
        ip netns exec gw1 "$LABTOOL" flush >&2
        ip netns exec peer1 "$LABTOOL" flush >&2
    done
}
