# shellcheck shell=bash
# 63-vpnd-restart-invalid-spi: after a crash, vpnd does not leave the peer hanging (issue
# 15.3). charon initiates and runs DPD every 3 s; vpnd is SIGKILLed and started again, so
# charon's next DPD request names an IKE SA vpnd no longer knows. vpnd answers it, once per
# request and unencrypted, with INVALID_IKE_SPI (RFC 7296 2.21.4), the IKE SPIs and message
# ID copied from the request: parsed from a capture. strongSwan 5.9 does not act on the
# unauthenticated notification (RFC 7296 2.21.4 lets it ignore it): its liveness check gives
# up and it re-establishes (dpd_action = restart); the time it took is reported.
source "$LAB_ROOT/lib-vpnd.sh"
# shellcheck disable=SC2034 # read by guest.sh
SCENARIO_TIMEOUT=240

# _invalid_spi_answers PCAP : "requests answers": IKE requests from charon on SAs and
# vpnd's unencrypted INFORMATIONAL responses carrying INVALID_IKE_SPI (notify type 4) with
# the request's SPIs and message ID.
_invalid_spi_answers() {
    python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
off, reqs, answers = 24, {}, 0
while off + 16 <= len(data):
    incl = struct.unpack_from("<I", data, off + 8)[0]
    pkt = data[off + 16: off + 16 + incl]
    off += 16 + incl
    if len(pkt) < 14 + 20 + 8 + 28 or pkt[12:14] != b"\x08\x00":
        continue
    ip = pkt[14:]
    ihl = (ip[0] & 15) * 4
    src, dst = ip[12:16], ip[16:20]
    udp = ip[ihl:]
    ike = udp[8:]
    ports = struct.unpack_from("!HH", udp, 0)
    if 4500 in ports:
        if udp[8:12] != b"\0\0\0\0":
            continue  # ESP in UDP, not IKE
        ike = udp[12:]  # past the non-ESP marker (RFC 3948 2.2)
    elif 500 not in ports:
        continue
    if len(ike) < 28:
        continue
    spi_i, spi_r, nxt, ver, exch, flags, mid = struct.unpack_from("!QQBBBBI", ike, 0)
    response = bool(flags & 0x20)
    if not response and spi_r != 0:
        reqs[(spi_i, spi_r, mid)] = True
    elif response and exch == 37 and nxt == 41:
        # Notify: generic header (4), protocol, SPI size, type
        ntype = struct.unpack_from("!H", ike, 28 + 6)[0]
        if ntype == 4 and (spi_i, spi_r, mid) in reqs:
            answers += 1
print(len(reqs), answers)
PY
}

scenario_run() {
    local d=$LAB_WORKDIR/charon-peer1 conf=$LAB_WORKDIR/vpnd.yaml
    write_swanctl_conf "$d" name=site local_addr=192.0.2.2 remote_addr=192.0.2.1 \
        local_id=peer1.lab.example remote_id=gw1.lab.example \
        local_ts=203.0.113.0/26 remote_ts=198.51.100.0/25 start_action=start dpd_delay=3s \
        child_extra="dpd_action = restart"
    # charon gives up on an unanswered request after ~9 s instead of its default ~165 s:
    # it takes an unauthenticated INVALID_IKE_SPI as no answer (a first run: no log line,
    # the DPD retransmitted until it gave up), so its own liveness check brings it back.
    write_strongswan_conf "$d" "$LAB_LOGDIR/charon-peer1.log"
    sed -i 's/^charon {/charon {\n    retransmit_tries = 2\n    retransmit_timeout = 2.0\n    retransmit_base = 1.4/' "$d/strongswan.conf"
    write_vpnd_conf "$conf" start=respond dpd=0
    start_vpnd gw1 "$conf"
    start_charon peer1 "$d"
    wait_ike_established peer1 site 40
    ping_ok host1 203.0.113.10 3

    # charon floats IKE to 4500 whenever both ends do NAT-T, NAT or not.
    start_capture gw1 t0 udp port 500 or udp port 4500
    lab_log "== SIGKILL vpnd, start it again"
    kill -KILL "$(cat "$LAB_WORKDIR/vpnd-gw1.pid")"
    rm -f "$LAB_WORKDIR/vpnd-gw1.pid"
    mv "$LAB_LOGDIR/vpnd-gw1.log" "$LAB_LOGDIR/vpnd-gw1-run1.log"
    local t0=$SECONDS
    start_vpnd gw1 "$conf"
    # charon's DPD on the old IKE SA: answered with INVALID_IKE_SPI.
    sleep 8
    local pcap reqs answers
    pcap=$(stop_capture gw1 t0)
    read -r reqs answers <<<"$(_invalid_spi_answers "$pcap")"
    lab_log "requests on IKE SAs seen: $reqs, answered with INVALID_IKE_SPI: $answers"
    assert_ge 1 "$answers" "vpnd answered charon's request for the IKE SA it lost with INVALID_IKE_SPI"
    lab_wait 60 "charon re-established with the restarted vpnd" bash -c \
        "grep -a -q 'IKE SA established' '$LAB_LOGDIR/vpnd-gw1.log'"
    lab_log "tunnel back $((SECONDS - t0)) s after the restart (charon: $(grep -a -c 'INVALID_IKE_SPI' "$LAB_LOGDIR/charon-peer1.log" || true) log lines naming INVALID_IKE_SPI; it logged 'processing failed' for our answers)"
    wait_ike_established peer1 site 40
    ping_ok host1 203.0.113.10 3
}
