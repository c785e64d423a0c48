#!/bin/bash
# integration/install-deps.sh - install what the VM lab needs, only if missing.
# Idempotent and silent when everything is present. Debian/Ubuntu (apt).
set -euo pipefail

pkgs=(qemu-system-x86 linux-image-amd64 busybox-static strongswan-charon
    strongswan-swanctl freeradius freeradius-utils iproute2 iputils-ping socat
    python3 tcpdump procps util-linux prometheus nftables conntrack bird2)

SUDO=()
((EUID == 0)) || SUDO=(sudo -n)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -q "${missing[@]}" </dev/null
fi

# libcharon-extra-plugins (EAP-MD5 and EAP-TLS for labs 77 and 78's strongSwan clients) is unpacked
# into integration/.cache, not installed: installed, its plugins with `load = yes` (ha,
# dhcp, farp, forecast, lookip...) would load into every scenario's charon.
extra=$(cd "$(dirname "$0")" && pwd)/.cache/charon-extra
if ! [[ -f $extra/usr/lib/ipsec/plugins/libstrongswan-eap-md5.so ]]; then
    tmp=$(mktemp -d)
    if (cd "$tmp" && apt-get download -q libcharon-extra-plugins >/dev/null 2>&1); then
        echo "install-deps: libcharon-extra-plugins unpacked into $extra"
        mkdir -p "$extra"
        dpkg-deb -x "$tmp"/libcharon-extra-plugins_*.deb "$extra"
    else
        echo "install-deps: could not download libcharon-extra-plugins (labs 77 and 78 need it)" >&2
    fi
    rm -rf "$tmp"
fi

if ! command -v vng >/dev/null 2>&1 && ! [[ -x $HOME/.local/bin/vng ]]; then
    echo "install-deps: pip install virtme-ng"
    py=python3
    command -v "$py" >/dev/null || py=/usr/bin/python3
    if ! "$py" -m pip --version >/dev/null 2>&1; then
        "${SUDO[@]}" apt-get install -y -q python3-pip </dev/null
    fi
    "$py" -m pip install -q virtme-ng </dev/null ||
        "$py" -m pip install -q --break-system-packages virtme-ng </dev/null
    command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    command -v vng >/dev/null 2>&1 || [[ -x $HOME/.local/bin/vng ]] || {
        echo "install-deps: vng still not on PATH after pip install" >&2
        exit 1
    }
fi
