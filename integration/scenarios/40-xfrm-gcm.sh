# shellcheck shell=bash
# vpnd-xfrm: AES-GCM-16 (256 and 128) tunnel SA pairs between gw1 and peer1 carry a ping;
# one counters dump equals `ip -s xfrm state`; flush removes exactly what was installed.
source "$LAB_ROOT/lib-xfrm.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=120

scenario_run() {
    xfrm_pair_scenario gcm256
    ip netns exec peer1 "$LABTOOL" flush >&2
    xfrm_pair_scenario gcm128 --reqid 2
}
