#!/bin/bash
# Installs the built package in a fresh Debian 12 chroot and checks what an operator would:
# files and modes, the conffile kept across an upgrade, man pages, bash completion, purge.
# Usage (as root, after `cargo run --example gen-docs && cargo deb --strip`):
#   bash debian/test-in-chroot.sh [CHROOT_DIR]   # debootstraps it first if missing (~2 min)
# No systemd runs in a chroot: the unit is installed and enabled, not started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
C=${1:-/tmp/vpnd-deb-chroot}
deb=$(ls target/debian/vpnd_*_amd64.deb | head -1)
if [[ ! -x $C/usr/bin/dpkg ]]; then
    command -v debootstrap >/dev/null || apt-get install -y -q debootstrap
    debootstrap --variant=minbase bookworm "$C" http://deb.debian.org/debian
fi
cp /etc/resolv.conf "$C/etc/resolv.conf"
chroot "$C" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq man-db bash-completion >/dev/null'
cp "$deb" "$C/tmp/vpnd.deb"
# A later revision of the same build, to upgrade to. (cargo deb empties target/debian
# first: the package under test is put back below.)
cargo deb --no-build --strip --deb-revision 99 -o "$C/tmp/vpnd-upgrade.deb" >/dev/null
mkdir -p target/debian && cp "$C/tmp/vpnd.deb" "$deb"
fail() { echo "FAIL: $*" >&2; exit 1; }
inroot() { chroot "$C" sh -c "$1"; }
inroot 'dpkg -i /tmp/vpnd.deb' >/dev/null
inroot 'getent passwd vpnd' | grep -q ':/var/lib/vpnd:/usr/sbin/nologin$' || fail "the vpnd user"
[[ $(inroot 'stat -c "%a %U:%G" /etc/vpnd/vpnd.yaml') == "640 root:vpnd" ]] || fail "conffile mode"
[[ $(inroot 'stat -c "%a %U:%G" /var/lib/vpnd') == "700 vpnd:vpnd" ]] || fail "/var/lib/vpnd mode"
inroot 'grep -q "^User=vpnd$" /usr/lib/systemd/system/vpnd.service' || fail "the unit's User="
# The daemon's user can read its configuration (as the unit runs it).
inroot 'setpriv --reuid=vpnd --regid=vpnd --init-groups vpnd --check' >/dev/null 2>&1 ||
    fail "vpnd --check as the vpnd user"
inroot 'grep -qx /etc/vpnd/vpnd.yaml /var/lib/dpkg/info/vpnd.conffiles' || fail "not a conffile"
inroot 'vpnd --check' >/dev/null 2>&1 || fail "vpnd --check of the default configuration"
inroot 'test -e /etc/systemd/system/multi-user.target.wants/vpnd.service' || fail "unit not enabled"
# A psk_file only root can read: --check (as root) says the unit's user cannot read it.
inroot 'umask 077; echo ops-chroot-secret-0123456789 >/etc/vpnd/p.psk
    printf "local: { addresses: [192.0.2.1] }\npeers:\n  - { name: p, address: 192.0.2.2, psk_file: /etc/vpnd/p.psk, children: [ { name: c, local_ts: [10.0.0.0/24], remote_ts: [10.0.1.0/24] } ] }\n" >/tmp/p.yaml
    vpnd --check -c /tmp/p.yaml 2>&1' | grep -q "cannot be read by the user 'vpnd'" || fail "psk_file warning"
inroot 'chown vpnd: /etc/vpnd/p.psk; vpnd --check -c /tmp/p.yaml 2>&1' | grep -q "cannot be read" &&
    fail "psk_file warning for vpnd's own file"
inroot 'rm /etc/vpnd/p.psk /tmp/p.yaml'
for page in vpnd.yaml vpnd vpnctl; do
    inroot "man -w $page" >/dev/null || fail "man $page"
done
inroot 'MANWIDTH=80 man vpnd.yaml' | grep -q 'metrics' || fail "man vpnd.yaml has no metrics"
words=$(chroot "$C" bash -c 'source /usr/share/bash-completion/bash_completion; _completion_loader vpnctl
    COMP_WORDS=(vpnctl sh); COMP_CWORD=1; _vpnctl vpnctl sh vpnctl; echo "${COMPREPLY[*]}"')
[[ $words == *show* ]] || fail "bash completion of 'vpnctl sh': $words"
inroot 'echo "# an edit" >>/etc/vpnd/vpnd.yaml; dpkg -i /tmp/vpnd-upgrade.deb </dev/null' >/dev/null
[[ $(inroot 'tail -1 /etc/vpnd/vpnd.yaml') == "# an edit" ]] || fail "the upgrade overwrote the conffile"
inroot 'dpkg --purge vpnd' >/dev/null
inroot 'test ! -e /etc/vpnd && test ! -e /var/lib/vpnd && test ! -e /usr/sbin/vpnd' || fail "purge left files"
echo "package OK: install, conffile kept on upgrade, man pages, completion, purge ($deb)"
