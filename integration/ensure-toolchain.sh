#!/bin/bash
# integration/ensure-toolchain.sh - make sure a Rust toolchain new enough for the workspace
# (rust-version 1.89) and a C compiler (aws-lc-sys builds C) are present. On Debian 12 the
# distribution's `rustc` is 1.63, too old; `cargo-web`/`rustc-web` (bookworm-security) are
# current and install /usr/bin/cargo. A rustup toolchain, when present, is used as it is.
set -euo pipefail

SUDO=()
((EUID == 0)) || SUDO=(sudo -n)
export PATH="$HOME/.cargo/bin:$PATH"

need_pkgs=()
command -v cc >/dev/null 2>&1 || need_pkgs+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)

rust_ok() {
    command -v cargo >/dev/null 2>&1 || return 1
    local v
    v=$(rustc --version 2>/dev/null | awk '{print $2}')
    [[ -n $v ]] && [[ $(printf '%s\n1.89.0\n' "$v" | sort -V | head -1) == 1.89.0 ]]
}
rust_ok || need_pkgs+=(cargo-web rustc-web)

if ((${#need_pkgs[@]})); then
    echo "ensure-toolchain: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -q "${need_pkgs[@]}" </dev/null
fi
rust_ok || { echo "ensure-toolchain: no Rust >= 1.89 after install; install one with rustup" >&2; exit 1; }
