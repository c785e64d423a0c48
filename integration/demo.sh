#!/bin/bash
# integration/demo.sh - the lab demo: installs what it needs, builds the workspace, boots
# Debian's kernel in a VM with strongSwan, FreeRADIUS and vpnd-xfrm tunnels (scenario
# integration/scenarios/demo-lab.sh), then prints the story of what happened: topology,
# swanctl --list-sas, the pings, ip -s xfrm state next to vpnd-xfrm's counters, and the
# accounting records FreeRADIUS received. Exit 0 only if every demo assertion passed.
#
#   bash integration/demo.sh            (fresh Debian 12, as root)
#   LAB_SKIP_BUILD=1 bash integration/demo.sh   use the binaries already in target/release
#
# Other LAB_* knobs are those of integration/lab.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

bash integration/ensure-toolchain.sh
bash integration/install-deps.sh

if [[ ${LAB_SKIP_BUILD:-0} != 1 ]]; then
    echo "demo: cargo build --release --workspace --bins"
    cargo build --release --workspace --bins </dev/null
fi

# lab.sh prints $results/demo.txt (the story) after the VM exits, then the verdict
LAB_SKIP_BUILD=1 LAB_SKIP_DEPS=1 exec bash integration/lab.sh --demo
