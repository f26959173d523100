#!/usr/bin/env bash
# The benchmark: the cost curve of converge against pyinfra, Ansible and the floor (one ssh exec
# per host reading the same state) on the same deployment workload, on throwaway container hosts.
#
#   bench/run.sh [HOSTS...]        host counts, default: 1 10 30 100
#
# Environment: RUNS (reruns per measurement, median reported; default 3),
# BENCH_SUBNET (default 198.18.80), BENCH_TOOLS (default "converge pyinfra ansible"),
# BENCH_PEER_MAX_HOSTS (the largest host count each peer runs at; default "ansible=30 pyinfra=100";
# a bare number applies to both). Needs root (testhosts boots systemd-nspawn containers, the
# controller's cost is read from a cgroup). Writes bench/out/results-DATE.md and its logs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

HOSTS=("$@")
((${#HOSTS[@]})) || HOSTS=(1 10 30 100)
RUNS=${RUNS:-3}
SUBNET=${BENCH_SUBNET:-198.18.80}
TOOLS=${BENCH_TOOLS:-converge pyinfra ansible}
for n in "${HOSTS[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] && ((n <= 200)) || { echo "bench: bad host count '$n' (1..200)" >&2; exit 2; }
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: bad RUNS '$RUNS'" >&2; exit 2; }
declare -A PEER_MAX=([ansible]=30 [pyinfra]=100)
for kv in ${BENCH_PEER_MAX_HOSTS:-}; do
    if [[ $kv =~ ^[0-9]+$ ]]; then PEER_MAX[ansible]=$kv PEER_MAX[pyinfra]=$kv
    elif [[ $kv =~ ^(ansible|pyinfra)=([0-9]+)$ ]]; then PEER_MAX[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
    else echo "bench: bad BENCH_PEER_MAX_HOSTS entry '$kv' (N, ansible=N or pyinfra=N)" >&2; exit 2
    fi
done

WL=$ROOT/bench/workload
OUT=$ROOT/bench/out
STAMP=$(date +%Y%m%d-%H%M%S)
LOGS=$OUT/logs-$STAMP
RESULTS=$OUT/results-$STAMP.md
VENV=$ROOT/bench/.venv
TESTHOSTS=$ROOT/tests/hosts/testhosts
CONVERGE=$ROOT/target/release/converge
METER=$ROOT/target/release/bench-meter
CG_ROOT=/sys/fs/cgroup/unified
HOST_CG_ROOT=$CG_ROOT/converge-testhosts # where testhosts puts each container's cgroup
mkdir -p "$OUT" "$LOGS"
log() { printf 'bench: %s [%s]\n' "$*" "$(date +%T)" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# prerequisites: the peers in a venv, the test-host rootfs, converge, the meter, the binary
# ---------------------------------------------------------------------------
[[ $EUID -eq 0 ]] || die "must run as root"
[[ $(stat -f -c %T "$CG_ROOT" 2>/dev/null) == cgroup2fs ]] ||
    die "no cgroup2 at $CG_ROOT (testhosts' layout): the controller's CPU and memory are read from a cgroup"
CONVERGE_PEERS_VENV=$VENV bash tests/hosts/peers.sh >/dev/null
# testhosts' own tools (tests/hosts/prerequisites.sh installs them, and the test runner).
command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null && command -v dpkg-scanpackages >/dev/null ||
    bash tests/hosts/prerequisites.sh >/dev/null
(($(cat /proc/sys/fs/inotify/max_user_instances) >= 8192)) || sysctl -qw fs.inotify.max_user_instances=8192
"$TESTHOSTS" rootfs >/dev/null
log "building converge (release)"
cargo build --release -q -p converge
[[ -x $METER && $METER -nt bench/meter.rs ]] || rustc -O --edition 2024 -o "$METER" bench/meter.rs
[[ -s $WL/files/binary ]] || { mkdir -p "$WL/files" && head -c 5M /dev/urandom >"$WL/files/binary"; }

WORK=$(mktemp -d /tmp/converge-bench.XXXXXX)
# The tools run in this cgroup (bench/meter moves them in): their CPU and memory, whatever
# process tree they make (Ansible's ssh masters daemonize).
CG=$CG_ROOT/converge-bench-$$
mkdir -p "$CG"
RUN_ID=""
cleanup() {
    [[ -n $RUN_ID ]] && "$TESTHOSTS" down "$RUN_ID" >/dev/null 2>&1 || true
    close_masters 2>/dev/null || true
    if [[ -d $CG ]]; then
        echo 1 >"$CG/cgroup.kill" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$CG" 2>/dev/null && break; sleep 0.2; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# hosts
# ---------------------------------------------------------------------------
RUN_DIR=""
NAMES=()
HOST_CGS=()
boot() { # N LABEL: fresh hosts h1..hN, ready (systemd up), booted in parallel by testhosts
    local n=$1 label=$2 h t0=$SECONDS
    RUN_ID="bench-$$-$label-$n"
    RUN_ID=${RUN_ID:0:32}
    RUN_DIR=$("$TESTHOSTS" up "$RUN_ID" "$n" --subnet "$SUBNET" --wait 120 --owner-pid $$ 2>>"$LOGS/testhosts.log") ||
        die "testhosts up $n failed: $(tail -n 20 "$LOGS/testhosts.log")"
    NAMES=() HOST_CGS=()
    for ((h = 1; h <= n; h++)); do
        NAMES+=("h$h")
        HOST_CGS+=("$HOST_CG_ROOT/$(cat "$RUN_DIR/hosts/h$h/machine")")
    done
    on_hosts 'timeout 60 systemctl is-system-running --wait >/dev/null 2>&1; echo "LogLevel VERBOSE" >/etc/ssh/sshd_config.d/zz-bench.conf && systemctl reload ssh'
    sleep 0.5
    log "$n host(s) up in $((SECONDS - t0)) s ($RUN_ID)"
}
teardown() {
    if [[ -n $RUN_ID ]]; then "$TESTHOSTS" down "$RUN_ID" >/dev/null 2>>"$LOGS/testhosts.log"; fi
    RUN_ID=""
}
# on_hosts SCRIPT: sh -c SCRIPT as root in every host (no SSH), all at once; each host's
# output in $WORK/on/HOST.
on_hosts() {
    local h
    mkdir -p "$WORK/on"
    for h in "${NAMES[@]}"; do
        "$TESTHOSTS" exec "$RUN_ID" "$h" -- sh -c "$1" >"$WORK/on/$h" 2>&1 &
    done
    wait
}

# sshd at LogLevel VERBOSE logs one "Starting session:" per exec (or sftp/scp subsystem) and
# one "Accepted publickey" per connection: counted around the measurements.
sshd_counts() { # -> "sessions connections" summed over the hosts
    on_hosts 'j=$(journalctl _COMM=sshd -o cat --no-pager); printf "%s %s\n" "$(printf "%s\n" "$j" | grep -c "Starting session:")" "$(printf "%s\n" "$j" | grep -c "Accepted publickey")"'
    cat "$WORK/on/"* | awk '{ s += $1; c += $2 } END { print s + 0, c + 0 }'
}
declare -A TRIPS
trips() { # KEY BEFORE RUNS: execs and connections per host and run since BEFORE (sshd_counts)
    local key=$1 before=$2 runs=$3 after n=${#NAMES[@]}
    sleep 0.3 # journald
    after=$(sshd_counts)
    local s=$((${after% *} - ${before% *})) c=$((${after#* } - ${before#* }))
    TRIPS[$key]=$(awk -v s=$s -v c=$c -v d=$((n * runs)) 'BEGIN { printf "%g execs, %g connections", s / d, c / d }')
}

# ---------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------
# measure KEY RUNS PREPARE SCRIPT: RUNS runs of `bash SCRIPT` under bench/meter, with `bash
# PREPARE` (or nothing: "") before each, not measured. Measurements of more than one run start
# with one warmup run (not measured): reruns are measured on hosts that settled after the
# first run. Stores the median of each quantity in V[KEY:wall|cpu|pss|hcpu] (seconds; MiB; host
# CPU seconds per host). A failing run aborts.
declare -A V
median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
measure() {
    local key=$1 runs=$2 prepare=$3 script=$4 i before warmup=0 line n=${#NAMES[@]}
    ((runs > 1)) && warmup=1
    before=$(sshd_counts)
    : >"$LOGS/$key.meter"
    for ((i = -warmup; i < runs; i++)); do
        if [[ -n $prepare ]]; then bash "$prepare"; fi
        line=$("$METER" "$CG" "${HOST_CGS[@]}" -- bash "$script") || die "$key: a run failed (logs in $LOGS)"
        ((i >= 0)) && echo "$line" >>"$LOGS/$key.meter"
    done
    local q
    for q in wall cpu pss_kib hosts_cpu; do
        V[$key:$q]=$(grep -o "\b$q=[0-9.]*" "$LOGS/$key.meter" | cut -d= -f2 | median)
    done
    V[$key:pss]=$(awk -v k="${V[$key:pss_kib]}" 'BEGIN { printf "%.0f", k / 1024 }')
    V[$key:hcpu]=$(awk -v s="${V[$key:hosts_cpu]}" -v n="$n" 'BEGIN { printf "%.2f", s / n }')
    log "$key: wall ${V[$key:wall]} s, controller CPU ${V[$key:cpu]} s, peak PSS ${V[$key:pss]} MiB, hosts' CPU ${V[$key:hcpu]} s/host (median of $runs)"
    trips "$key" "$before" "$((runs + warmup))"
}

# A script file per command, so every tool is run the same way (`bash FILE`, output to a log);
# the tool itself is exec'd, so the shell is not part of what is measured.
script() { # NAME BODY -> path
    local f=$WORK/$1.sh
    printf '%s\n' "set -e" "$2" >"$f"
    echo "$f"
}

# The floor and the equivalence check: one `ssh HOST sh -s < check.sh` per host, in parallel.
floor_script() { # DIR [ENV]: where each host's output goes; ENV for check.sh (VERIFY=1)
    script floor "
for h in ${NAMES[*]}; do
    ssh -F '$RUN_DIR/ssh_config' -o KexAlgorithms=curve25519-sha256 \"\$h\" ${2:+$2 }sh -s <'$WL/check.sh' >'$1/'\"\$h\" 2>&1 &
done
fail=0; for j in \$(jobs -p); do wait \"\$j\" || fail=1; done; exit \$fail"
}
check_state() { # TOOL: every host's state read back and compared with converge's
    local tool=$1 dir=$LOGS/state-$1-$N f
    mkdir -p "$dir"
    bash "$(floor_script "$dir" VERIFY=1)" || die "$tool: reading the state back failed (see $dir)"
    for f in "$dir"/*; do
        grep -q '^ActiveState=active$' "$f" || die "$tool: $(basename "$f"): the service is not active (see $f)"
        grep -q '^Status: active$' "$f" || die "$tool: $(basename "$f"): ufw is not active (see $f)"
        grep -q '^nginx for the vhost: 502$' "$f" || die "$tool: $(basename "$f"): nginx does not serve the vhost (see $f)"
        if [[ $tool != converge ]]; then
            [[ -d $LOGS/state-converge-$N ]] || { log "$tool: no converge state at $N hosts to compare with"; return 0; }
            diff -u "$LOGS/state-converge-$N/$(basename "$f")" "$f" >"$LOGS/state-diff-$tool-$N.txt" ||
                die "$tool left a different state than converge on $(basename "$f"): $LOGS/state-diff-$tool-$N.txt"
        fi
    done
    rm -f "$LOGS/state-diff-$tool-$N.txt"
    log "$tool: the state of the $N host(s) read back$([[ $tool != converge ]] && echo ", the same as converge's")"
}

# ---------------------------------------------------------------------------
# the tools
# ---------------------------------------------------------------------------
TASKS=13 # site.yml's tasks per host, the layout loop's three items counted apiece
run_converge() {
    boot "$N" cvg
    local home=$WORK/home-converge
    rm -rf "$home" && mkdir -p "$home/.ssh" && cp "$RUN_DIR/known_hosts" "$home/.ssh/known_hosts"
    local cmd="export HOME='$home'; exec '$CONVERGE'" inv="-i '$RUN_DIR/inventory.yml' --color never"
    local first rerun diff
    first=$(script cvg-first "$cmd '$WL/site.yml' $inv -v >>'$LOGS/converge-first-$N.log' 2>&1")
    rerun=$(script cvg-rerun "$cmd '$WL/site.yml' $inv -v >>'$LOGS/converge-rerun-$N.log' 2>&1")
    # diff exits 2 on drift: on converged hosts it must exit 0 (checked once, not measured).
    diff=$(script cvg-diff "$cmd diff '$WL/site.yml' $inv -v >>'$LOGS/converge-diff-$N.log' 2>&1")
    measure "converge-first-$N" 1 "" "$first"
    (($(grep -c " ok=0 changed=$TASKS failed=0 " "$LOGS/converge-first-$N.log") == N)) ||
        die "converge's first run did not change $TASKS tasks on every host (see $LOGS/converge-first-$N.log)"
    check_state converge
    measure "converge-rerun-$N" "$RUNS" "" "$rerun"
    (($(grep -c " ok=$TASKS changed=0 failed=0 " "$LOGS/converge-rerun-$N.log") == N * (RUNS + (RUNS > 1)))) ||
        die "converge's rerun changed something (see $LOGS/converge-rerun-$N.log)"
    bash "$diff" || die "converge diff found drift on the converged hosts (see $LOGS/converge-diff-$N.log)"
    measure "floor-$N" "$RUNS" "" "$(floor_script "$WORK")"
    teardown
}

close_masters() {
    local s
    for s in "$WORK"/cp/*; do
        [[ -S $s ]] && ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1 || true
    done
}
run_ansible() {
    boot "$N" ans
    mkdir -p "$WORK/cp"
    local env="cd '$WL'; export ANSIBLE_CONFIG='$WL/ansible.cfg' ANSIBLE_SSH_CONTROL_PATH_DIR='$WORK/cp'
export ANSIBLE_SSH_ARGS='-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=$RUN_DIR/known_hosts -o StrictHostKeyChecking=yes'"
    local play="exec '$VENV/bin/ansible-playbook' -i '$RUN_DIR/inventory.yml' site-ansible.yml"
    local first rerun cold
    first=$(script ans-first "$env
$play >>'$LOGS/ansible-first-$N.log' 2>&1")
    rerun=$(script ans-rerun "$env
$play >>'$LOGS/ansible-rerun-$N.log' 2>&1")
    # A rerun from cron or CI starts without a live ControlPersist master, as converge does.
    cold=$(script ans-cold "$(declare -f close_masters); WORK='$WORK'; close_masters")
    close_masters
    measure "ansible-first-$N" 1 "" "$first"
    (($(grep -Ec ': ok=[0-9]+ +changed=[1-9][0-9]* +unreachable=0 +failed=0' "$LOGS/ansible-first-$N.log") == N)) ||
        die "Ansible's first run failed or changed nothing on some host (see $LOGS/ansible-first-$N.log)"
    check_state ansible
    measure "ansible-rerun-$N" "$RUNS" "$cold" "$rerun"
    (($(grep -Ec ': ok=[0-9]+ +changed=0 +unreachable=0 +failed=0' "$LOGS/ansible-rerun-$N.log") == N * (RUNS + (RUNS > 1)))) ||
        die "Ansible's rerun changed something (see $LOGS/ansible-rerun-$N.log)"
    close_masters
    teardown
}

run_pyinfra() {
    boot "$N" pyi
    local inv=$WORK/inventory.py h ip
    {
        echo "hosts = ["
        for h in "${NAMES[@]}"; do
            ip=$(cat "$RUN_DIR/hosts/$h/ip")
            echo "    (\"$h\", {\"ssh_hostname\": \"$ip\", \"ssh_user\": \"root\", \"ssh_key\": \"$RUN_DIR/id_ed25519\","
            echo "            \"ssh_known_hosts_file\": \"$RUN_DIR/known_hosts\", \"ssh_strict_host_key_checking\": \"yes\"}),"
        done
        echo "]"
    } >"$inv"
    local first rerun
    first=$(script pyi-first "cd '$WL'; exec '$VENV/bin/pyinfra' '$inv' deploy.py -y >>'$LOGS/pyinfra-first-$N.log' 2>&1")
    rerun=$(script pyi-rerun "cd '$WL'; exec '$VENV/bin/pyinfra' '$inv' deploy.py -y >>'$LOGS/pyinfra-rerun-$N.log' 2>&1")
    measure "pyinfra-first-$N" 1 "" "$first"
    check_state pyinfra
    measure "pyinfra-rerun-$N" "$RUNS" "" "$rerun"
    # "Grand total  OPERATIONS  CHANGED  ..." per run: no change on a rerun.
    grep -E '^ *Grand total' "$LOGS/pyinfra-rerun-$N.log" | awk '$4 != "-" && $4 != 0 { bad = 1 } END { exit bad }' ||
        die "pyinfra's rerun changed something (see $LOGS/pyinfra-rerun-$N.log)"
    teardown
}

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
declare -A SKIP
ratio() { awk -v a="${V[$1:wall]:-}" -v b="${V[$2:wall]:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
cells() { # KEY: wall | CPU | PSS | hosts' CPU, or "-" x4
    if [[ -n ${V[$1:wall]:-} ]]; then
        echo "${V[$1:wall]} | ${V[$1:cpu]} | ${V[$1:pss]} | ${V[$1:hcpu]}"
    else echo "- | - | - | -"; fi
}

report() {
    local n t
    echo "# converge benchmark: the cost curve, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB; $(uname -r); load average at start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Versions: $("$CONVERGE" --version 2>/dev/null || echo converge) ($(git -C "$ROOT" rev-parse --short HEAD)), " \
        "ansible $("$VENV/bin/pip" show ansible | awk '/^Version/ { print $2 }') (core $("$VENV/bin/pip" show ansible-core | awk '/^Version/ { print $2 }')), " \
        "pyinfra $("$VENV/bin/pip" show pyinfra | awk '/^Version/ { print $2 }'), $(ssh -V 2>&1)."
    echo "Workload: bench/workload ($TASKS tasks per host, a 5 MiB binary). First run: one run on fresh hosts;"
    echo "rerun: the median of $RUNS no-change runs$( ((RUNS > 1)) && echo " after one warmup run"). Wall time and controller CPU (user+sys of"
    echo "every process the tool started, from its cgroup) in seconds; controller peak PSS in MiB (sampled every ~20 ms);"
    echo "hosts' CPU: the containers' cgroup CPU during the run, in seconds per host."
    echo
    echo "| hosts | tool | first: wall | CPU | peak PSS | hosts' CPU/host | rerun: wall | CPU | peak PSS | hosts' CPU/host |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for n in "${HOSTS[@]}"; do
        for t in converge pyinfra ansible; do
            if [[ -n ${SKIP[$t-$n]:-} ]]; then
                echo "| $n | $t | - (${SKIP[$t-$n]}) | - | - | - | - | - | - | - |"
            elif [[ " $TOOLS " == *" $t "* ]]; then
                echo "| $n | $t | $(cells "$t-first-$n") | $(cells "$t-rerun-$n") |"
            fi
        done
        [[ -n ${V[floor-$n:wall]:-} ]] && echo "| $n | floor (1 ssh exec/host) | - | - | - | - | $(cells "floor-$n") |"
    done
    echo
    echo "Wall-time ratios, from this run:"
    echo
    echo "| hosts | rerun converge/pyinfra | rerun converge/floor | first converge/pyinfra | rerun converge/ansible | first converge/ansible |"
    echo "|---:|---:|---:|---:|---:|---:|"
    for n in "${HOSTS[@]}"; do
        echo "| $n | $(ratio converge-rerun-$n pyinfra-rerun-$n) | $(ratio converge-rerun-$n floor-$n) | $(ratio converge-first-$n pyinfra-first-$n) | $(ratio converge-rerun-$n ansible-rerun-$n) | $(ratio converge-first-$n ansible-first-$n) |"
    done
    echo
    echo "SSH round trips per host and run, counted on the hosts (sshd LogLevel VERBOSE:"
    echo "one \"Starting session\" per exec or subsystem, one \"Accepted publickey\" per connection):"
    echo
    local k
    for n in "${HOSTS[@]}"; do
        for k in converge-first converge-rerun pyinfra-first pyinfra-rerun ansible-first ansible-rerun floor; do
            if [[ -n ${TRIPS[$k-$n]:-} ]]; then echo "- $n host(s), $k: ${TRIPS[$k-$n]}"; fi
        done
    done
    echo
    echo "Logs: ${LOGS#"$ROOT"/} (every measured run's numbers in KEY.meter)"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for N in "${HOSTS[@]}"; do
    log "=== $N host(s)"
    for tool in $TOOLS; do
        case $tool in
            converge) ;;
            ansible | pyinfra)
                if ((N > PEER_MAX[$tool])); then
                    SKIP[$tool-$N]="not run above ${PEER_MAX[$tool]} hosts: BENCH_PEER_MAX_HOSTS"
                    log "--- $tool: skipped (${SKIP[$tool-$N]})"
                    continue
                fi ;;
            *) die "unknown tool '$tool' in BENCH_TOOLS" ;;
        esac
        log "--- $tool"
        "run_$tool"
    done
done
report | tee "$RESULTS"
log "results: ${RESULTS#"$ROOT"/}"
