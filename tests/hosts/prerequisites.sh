#!/usr/bin/env bash
# What the test hosts and the tests need on this machine (fresh Debian 12, as root):
# packages, cargo-nextest, the inotify limit, and the cached test-host rootfs.
set -euo pipefail
cd "$(dirname "$0")/../.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

pkgs=(debootstrap systemd-container openssh-server pebble nginx logrotate iproute2 openssl dpkg-dev python3 curl)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "prerequisites: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

# Containers die after ~20 with the default inotify instance limit.
(($(cat /proc/sys/fs/inotify/max_user_instances) >= 8192)) || sysctl -qw fs.inotify.max_user_instances=8192

tests/hosts/testhosts rootfs >/dev/null

# Ansible and pyinfra, which the compatibility tests run beside converge.
bash tests/hosts/peers.sh >/dev/null
