#!/usr/bin/env bash
# The demo: build converge and the demo app, boot one throwaway container host, converge
# playbooks/site.yml on it (first run changes everything, the rerun changes nothing), show
# drift detection, then tear the host down. Fresh Debian 12 machine, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"
bash tests/hosts/prerequisites.sh

cargo build --release -q -p converge
DEMO_VERSION=v1 cargo build --release -q -p demo-app
work=$(mktemp -d)
cp -r playbooks/site.yml playbooks/templates playbooks/vars "$work"/
mkdir -p "$work/build" && cp target/release/demo-app "$work/build/demo-v1"

run_id="demo$$"
run_dir=$(tests/hosts/testhosts up "$run_id" 1)
trap 'tests/hosts/testhosts down "$run_id"; rm -rf "$work"' EXIT
cp "$run_dir/inventory.yml" "$work/inventory.yml"
# The play targets the `web` group: put the throwaway host in it.
printf '  children:\n    web:\n      hosts: { h1: }\n' >> "$work/inventory.yml"
home=$(mktemp -d); mkdir -p "$home/.ssh"; cp "$run_dir/known_hosts" "$home/.ssh/known_hosts"
converge() { HOME=$home ./target/release/converge "$@"; }

echo "== converge diff (fresh host: drift, exit 2)"; converge diff "$work/site.yml" || echo "exit $?"
echo "== converge (first run)"; time converge "$work/site.yml"
echo "== converge (rerun: nothing changes)"; time converge "$work/site.yml"
echo "== tamper with the config, then converge diff"
tests/hosts/testhosts exec "$run_id" h1 -- sh -c 'echo "debug: true" >> /opt/demo/config/config.yaml'
converge diff "$work/site.yml" || echo "exit $? (drift)"
echo "== converge repairs it"; converge "$work/site.yml"
