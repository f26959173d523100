#!/usr/bin/env bash
# The test command. On a fresh Debian 12 machine, as root: installs what the
# tests need, prepares the test-host rootfs, runs the whole suite with
# cargo-nextest (ci profile), and always tears the test hosts down after.
# Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

bash tests/hosts/prerequisites.sh
trap 'tests/hosts/testhosts down-all' EXIT
cargo nextest run --workspace --profile ci "$@"
