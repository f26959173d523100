#!/usr/bin/env bash
# The test command. On a fresh Debian 12 machine, as root: installs what the
# tests need, prepares the test-host rootfs, runs the whole suite with
# cargo-nextest (ci profile), and always tears the test hosts down after.
# Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

# Machine packages the test hosts (tests/hosts/testhosts) and tests need.
pkgs=(debootstrap systemd-container openssh-server pebble nginx logrotate iproute2 openssl dpkg-dev python3)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "run.sh: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi
command -v cargo-nextest >/dev/null || cargo install cargo-nextest --locked

# Containers die after ~20 with the default inotify instance limit.
(($(cat /proc/sys/fs/inotify/max_user_instances) >= 8192)) || sysctl -qw fs.inotify.max_user_instances=8192

# Tag this session's test hosts: down-all then removes them and dead runs'
# leftovers (mounts, bridges of a killed earlier run), but leaves live runs
# of someone else testing on the same machine alone.
CONVERGE_TESTHOSTS_SESSION="run-$$-$(date +%s)"
export CONVERGE_TESTHOSTS_SESSION
tests/hosts/testhosts down-all
tests/hosts/testhosts rootfs >/dev/null
trap 'tests/hosts/testhosts down-all' EXIT
cargo nextest run --workspace --profile ci "$@"
