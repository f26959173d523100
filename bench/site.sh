#!/usr/bin/env bash
# playbooks/site.yml (the whole Gin-service deployment: release, unit, logrotate, ufw, certbot
# through a real HTTP-01 challenge, nginx) on N fresh container hosts: the wall time of the
# first converge and of the no-change rerun (median of RUNS, default 3), and the execs per host.
#   bench/site.sh [HOSTS...]      default: 1 10
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"
export CONVERGE_TESTHOSTS_SUBNET=${CONVERGE_TESTHOSTS_SUBNET:-198.18.80}
source tests/hosts/site-env.sh
counts=("$@")
((${#counts[@]})) || counts=(1 10)
runs=${RUNS:-3}
results=()
for n in "${counts[@]}"; do
    trap site_down EXIT
    site_up "site$$n$n" "$n" >&2
    timed first converge "$work/site.yml" -q >/dev/null
    reruns=()
    for _ in $(seq "$runs"); do
        timed t converge "$work/site.yml" -v >"$work/rerun.log" 2>&1
        grep -q "changed=0 failed=0" "$work/rerun.log" || { cat "$work/rerun.log"; exit 1; }
        reruns+=("$t")
    done
    median=$(printf '%s\n' "${reruns[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")
    execs=$(grep -o '[0-9]* exec(s)' "$work/rerun.log" | sort | uniq -c | sed 's/^ *//' | tr '\n' ';')
    results+=("$n host(s): first converge ${first} s, no-change rerun ${median} s (reruns: ${reruns[*]}; execs per host: ${execs})")
    site_down
    trap - EXIT
done
printf '%s\n' "${results[@]}"
