#!/bin/bash
# integration/test.sh - every test: unit and host-kernel tests (cargo test), then the VM lab
# scenarios (strongSwan, FreeRADIUS, syslog, vpnd-xfrm against Debian's kernel).
# Installs what it needs. Exit 0 only if everything passed.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

bash integration/ensure-toolchain.sh
bash integration/install-deps.sh

echo "== cargo test (unit tests; host-kernel tests in private network namespaces)"
# Host-kernel tests need root: this machine's kernel has XFRM netlink but no ESP.
cargo test --workspace --locked 2>&1

echo "== VM lab scenarios"
bash integration/lab.sh "$@"
