#!/usr/bin/env bash
# The demo: build converge and the demo app, boot one throwaway container host, start an
# ACME server (pebble) on the bridge, and converge playbooks/site.yml on the host: the app
# released behind nginx with a certificate obtained through a real HTTP-01 challenge. Then
# the rerun (nothing changes), HTTPS from here, drift detection and repair; the host is
# torn down at the end. Fresh Debian 12 machine, as root.
# CONVERGE_TESTHOSTS_SUBNET=A.B.C picks the test subnet (default 198.51.100).
# CONVERGE_DEMO_PLAYBOOK=site-roles.yml runs the same deployment written as a role.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"
source tests/hosts/site-env.sh
trap site_down EXIT
site_up "demo$$" 1
ip=$(cat "$run_dir/hosts/h1/ip")
domain=h1.test
site="$work/${CONVERGE_DEMO_PLAYBOOK:-site.yml}"

echo "== converge diff (fresh host: drift, exit 2)"; converge diff "$site" || echo "exit $?"
echo "== converge (first run)"; timed first converge "$site"
echo "== converge -v (rerun: nothing changes)"
timed rerun converge "$site" -v >"$work/rerun.log" 2>&1; cat "$work/rerun.log"
echo "== https://$domain/version through nginx, trusting only pebble's root"
curl -sS --cacert "$run_dir/pebble-roots.pem" --resolve "$domain:443:$ip" "https://$domain/version"
echo "== tamper (HSTS edited in the vhost, the service stopped), then converge diff"
tests/hosts/testhosts exec "$run_id" h1 -- sh -c \
    'sed -i "s/max-age=63072000/max-age=0/" /etc/nginx/sites-available/demo && systemctl stop demo'
converge diff "$site" || echo "exit $? (drift)"
echo "== converge repairs it"; converge "$site"
echo "== converge diff -q (cron: silent, exit 0 when nothing drifted)"
rc=0; converge diff "$site" -q || rc=$?; echo "exit $rc"
echo "== wall times on 1 host: first converge ${first} s, no-change rerun ${rerun} s ($(grep -o '[0-9]* exec(s)' "$work/rerun.log"))"
