#!/usr/bin/env bash
# The benchmark: converge against Ansible, pyinfra and the floor (one ssh exec per host reading
# the same state) on the same workload, on throwaway container hosts.
#
#   bench/run.sh [HOSTS...]        host counts, default: 1 10
#
# Environment: RUNS (reruns per measurement, median reported; default 3),
# BENCH_SUBNET (default 198.18.80), BENCH_TOOLS (default "converge ansible pyinfra").
# Needs root (testhosts boots systemd-nspawn containers). Writes bench/out/results-DATE.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
[[ -d $HOME/.cargo/bin ]] && export PATH="$HOME/.cargo/bin:$PATH"

HOSTS=("$@")
((${#HOSTS[@]})) || HOSTS=(1 10)
RUNS=${RUNS:-3}
SUBNET=${BENCH_SUBNET:-198.18.80}
TOOLS=${BENCH_TOOLS:-converge ansible pyinfra}
for n in "${HOSTS[@]}"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] && ((n <= 200)) || { echo "bench: bad host count '$n' (1..200)" >&2; exit 2; }
done

WL=$ROOT/bench/workload
OUT=$ROOT/bench/out
STAMP=$(date +%Y%m%d-%H%M%S)
LOGS=$OUT/logs-$STAMP
RESULTS=$OUT/results-$STAMP.md
VENV=$ROOT/bench/.venv
TESTHOSTS=$ROOT/tests/hosts/testhosts
CONVERGE=$ROOT/target/release/converge
mkdir -p "$OUT" "$LOGS"
log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
# prerequisites: the peers in a venv, hyperfine, the test-host rootfs, converge, the binary
# ---------------------------------------------------------------------------
CONVERGE_PEERS_VENV=$VENV bash tests/hosts/peers.sh >/dev/null
if ! command -v hyperfine >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q hyperfine >/dev/null 2>&1; } ||
        log "hyperfine not available: timing with date +%s.%N"
fi
# testhosts' own tools (tests/hosts/prerequisites.sh installs them, and the test runner).
command -v systemd-nspawn >/dev/null && command -v debootstrap >/dev/null && command -v dpkg-scanpackages >/dev/null ||
    bash tests/hosts/prerequisites.sh >/dev/null
(($(cat /proc/sys/fs/inotify/max_user_instances) >= 8192)) || sysctl -qw fs.inotify.max_user_instances=8192
"$TESTHOSTS" rootfs >/dev/null
log "building converge (release)"
cargo build --release -q -p converge
[[ -s $WL/files/binary ]] || { mkdir -p "$WL/files" && head -c 5M /dev/urandom >"$WL/files/binary"; }

WORK=$(mktemp -d /tmp/converge-bench.XXXXXX)
RUN_ID=""
cleanup() {
    [[ -n $RUN_ID ]] && "$TESTHOSTS" down "$RUN_ID" >/dev/null 2>&1 || true
    close_masters 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---------------------------------------------------------------------------
# hosts
# ---------------------------------------------------------------------------
RUN_DIR=""
NAMES=()
boot() { # N LABEL: fresh hosts h1..hN, ready (systemd up)
    local n=$1 label=$2 h
    RUN_ID="bench-$$-$label-$n"
    RUN_ID=${RUN_ID:0:32}
    RUN_DIR=$("$TESTHOSTS" up "$RUN_ID" "$n" --subnet "$SUBNET" --wait 120 --owner-pid $$ 2>>"$LOGS/testhosts.log")
    NAMES=()
    for ((h = 1; h <= n; h++)); do NAMES+=("h$h"); done
    for h in "${NAMES[@]}"; do
        "$TESTHOSTS" exec "$RUN_ID" "$h" -- timeout 60 systemctl is-system-running --wait >/dev/null 2>&1 || true
    done
    verbose_sshd
}
teardown() {
    if [[ -n $RUN_ID ]]; then "$TESTHOSTS" down "$RUN_ID" >/dev/null 2>>"$LOGS/testhosts.log"; fi
    RUN_ID=""
}

# sshd at LogLevel VERBOSE logs one "Starting session:" per exec (or sftp/scp subsystem) and
# one "Accepted publickey" per connection: counted around every measurement (a few journal
# lines per session, the same for every tool).
verbose_sshd() {
    local h
    for h in "${NAMES[@]}"; do
        "$TESTHOSTS" exec "$RUN_ID" "$h" -- sh -c \
            'echo "LogLevel VERBOSE" >/etc/ssh/sshd_config.d/zz-bench.conf && systemctl reload ssh'
    done
    sleep 0.5
}
sshd_counts() { # -> "sessions connections" summed over the hosts
    local h s=0 c=0 line
    for h in "${NAMES[@]}"; do
        line=$("$TESTHOSTS" exec "$RUN_ID" "$h" -- sh -c \
            'j=$(journalctl _COMM=sshd -o cat --no-pager); printf "%s %s\n" "$(printf "%s\n" "$j" | grep -c "Starting session:")" "$(printf "%s\n" "$j" | grep -c "Accepted publickey")"')
        s=$((s + ${line% *}))
        c=$((c + ${line#* }))
    done
    echo "$s $c"
}
trips() { # KEY BEFORE RUNS: execs and connections per host and run since BEFORE (sshd_counts)
    local key=$1 before=$2 runs=$3 after n=${#NAMES[@]}
    sleep 0.3 # journald
    after=$(sshd_counts)
    local s=$((${after% *} - ${before% *})) c=$((${after#* } - ${before#* }))
    TRIPS[$key]=$(awk -v s=$s -v c=$c -v d=$((n * runs)) 'BEGIN { printf "%g execs, %g connections", s / d, c / d }')
    log "$key: $s execs and $c connections in $runs run(s) on $n host(s)"
}

# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------
# measure KEY RUNS PREPARE SCRIPT: median wall time in seconds of RUNS runs of `bash SCRIPT`,
# with `bash PREPARE` (or nothing: "") before each; stored in T[KEY]. A failing run aborts.
# Measurements of more than one run start with one warmup run (not timed): reruns are
# measured on hosts that have settled after the first run.
declare -A T TRIPS
measure() {
    local key=$1 runs=$2 prepare=$3 script=$4 i t0 t1 times=() before warmup=0
    ((runs > 1)) && warmup=1
    before=$(sshd_counts)
    if command -v hyperfine >/dev/null; then
        local args=(--runs "$runs" --warmup "$warmup" --style none --export-json "$LOGS/$key.json" --shell=none)
        [[ -n $prepare ]] && args+=(--prepare "bash $prepare")
        hyperfine "${args[@]}" "bash $script" >"$LOGS/hyperfine-$key.txt" 2>&1 ||
            { cat "$LOGS/hyperfine-$key.txt" >&2; die "$key: a run failed (logs in $LOGS)"; }
        T[$key]=$("$VENV/bin/python" -c 'import json, sys; print("%.3f" % json.load(open(sys.argv[1]))["results"][0]["median"])' "$LOGS/$key.json")
    else
        for ((i = -warmup; i < runs; i++)); do
            [[ -n $prepare ]] && bash "$prepare"
            t0=$(date +%s.%N)
            bash "$script" || die "$key: a run failed (logs in $LOGS)"
            t1=$(date +%s.%N)
            ((i >= 0)) && times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')")
        done
        T[$key]=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
    fi
    log "$key: ${T[$key]} s (median of $runs)"
    trips "$key" "$before" "$((runs + warmup))"
}

# A script file per command, so every tool is timed the same way (`bash FILE`, output to a log).
script() { # NAME BODY -> path
    local f=$WORK/$1.sh
    printf '%s\n' "set -e" "$2" >"$f"
    echo "$f"
}

# The floor and the equivalence check: one `ssh HOST sh -s < check.sh` per host, in parallel.
floor_script() { # DIR: where each host's output goes
    script floor "
for h in ${NAMES[*]}; do
    ssh -F '$RUN_DIR/ssh_config' -o KexAlgorithms=curve25519-sha256 \"\$h\" sh -s <'$WL/check.sh' >'$1/'\"\$h\" 2>&1 &
done
fail=0; for j in \$(jobs -p); do wait \"\$j\" || fail=1; done; exit \$fail"
}
check_state() { # TOOL: every host's state read back and compared with converge's
    local tool=$1 dir=$LOGS/state-$1-$N f
    mkdir -p "$dir"
    bash "$(floor_script "$dir")" || die "$tool: reading the state back failed (see $dir)"
    for f in "$dir"/*; do
        grep -q '^ActiveState=active$' "$f" || die "$tool: $(basename "$f"): the service is not active (see $f)"
        if [[ $tool != converge ]]; then
            diff -u "$LOGS/state-converge-$N/$(basename "$f")" "$f" >"$LOGS/state-diff-$tool-$N.txt" ||
                die "$tool left a different state than converge on $(basename "$f"): $LOGS/state-diff-$tool-$N.txt"
        fi
    done
}

# ---------------------------------------------------------------------------
# the tools
# ---------------------------------------------------------------------------
run_converge() {
    boot "$N" cvg
    local home=$WORK/home-converge
    rm -rf "$home" && mkdir -p "$home/.ssh" && cp "$RUN_DIR/known_hosts" "$home/.ssh/known_hosts"
    local cmd="HOME='$home' '$CONVERGE'" inv="-i '$RUN_DIR/inventory.yml' --color never"
    local first rerun diff
    first=$(script cvg-first "$cmd '$WL/site.yml' $inv -v >>'$LOGS/converge-first-$N.log' 2>&1")
    rerun=$(script cvg-rerun "$cmd '$WL/site.yml' $inv -v >>'$LOGS/converge-rerun-$N.log' 2>&1")
    # diff exits 2 on drift: on converged hosts it must exit 0.
    diff=$(script cvg-diff "$cmd diff '$WL/site.yml' $inv -v >>'$LOGS/converge-diff-$N.log' 2>&1")
    measure "converge-first-$N" 1 "" "$first"
    (($(grep -c ' ok=0 changed=12 failed=0 ' "$LOGS/converge-first-$N.log") == N)) ||
        die "converge's first run did not change 12 tasks on every host"
    measure "converge-rerun-$N" "$RUNS" "" "$rerun"
    grep -q 'changed=[1-9]' "$LOGS/converge-rerun-$N.log" && die "converge's rerun changed something"
    measure "converge-diff-$N" "$RUNS" "" "$diff"
    # One drifted item per host (task 3 of 12: a directory's mode), repaired: one change.
    local drift repair
    drift=$(script cvg-drift "for h in ${NAMES[*]}; do '$TESTHOSTS' exec '$RUN_ID' \$h -- chmod 0700 /opt/benchapp/config; done; sleep 1")
    repair=$(script cvg-repair "$cmd '$WL/site.yml' $inv -v >>'$LOGS/converge-repair-$N.log' 2>&1")
    measure "converge-repair-$N" "$RUNS" "$drift" "$repair"
    (($(grep -c ' ok=11 changed=1 failed=0 ' "$LOGS/converge-repair-$N.log") == N * (RUNS + 1))) ||
        die "converge's repair run did not change exactly one task per host"
    check_state converge
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
    local play="'$VENV/bin/ansible-playbook' -i '$RUN_DIR/inventory.yml' site-ansible.yml"
    local first rerun cold
    first=$(script ans-first "$env
$play >>'$LOGS/ansible-first-$N.log' 2>&1")
    rerun=$(script ans-rerun "$env
$play >>'$LOGS/ansible-rerun-$N.log' 2>&1")
    # A rerun from cron or CI starts without a live ControlPersist master, as converge does.
    cold=$(script ans-cold "$(declare -f close_masters); WORK='$WORK'; close_masters")
    close_masters
    measure "ansible-first-$N" 1 "" "$first"
    # Ansible counts a loop as one task: 10 tasks, 12 items.
    (($(grep -Ec ': ok=10 +changed=10 +unreachable=0 +failed=0' "$LOGS/ansible-first-$N.log") == N)) ||
        die "Ansible's first run did not change every task on every host"
    measure "ansible-rerun-$N" "$RUNS" "$cold" "$rerun"
    measure "ansible-warm-$N" "$RUNS" "" "$rerun"
    grep -Eq 'changed=[1-9]|failed=[1-9]|unreachable=[1-9]' "$LOGS/ansible-rerun-$N.log" && die "Ansible's rerun changed something"
    check_state ansible
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
    first=$(script pyi-first "cd '$WL'; '$VENV/bin/pyinfra' '$inv' deploy.py -y >>'$LOGS/pyinfra-first-$N.log' 2>&1")
    rerun=$(script pyi-rerun "cd '$WL'; '$VENV/bin/pyinfra' '$inv' deploy.py -y >>'$LOGS/pyinfra-rerun-$N.log' 2>&1")
    measure "pyinfra-first-$N" 1 "" "$first"
    grep -Eq "Grand total +$((12 * N)) +$((12 * N)) " "$LOGS/pyinfra-first-$N.log" || die "pyinfra's first run did not change 12 operations per host"
    measure "pyinfra-rerun-$N" "$RUNS" "" "$rerun"
    grep -Eq "Grand total +[0-9]+ +[0-9]|Grand total +[0-9]+ +- +[0-9]" "$LOGS/pyinfra-rerun-$N.log" && die "pyinfra's rerun changed something"
    check_state pyinfra
    teardown
}

# ---------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------
ratio() { awk -v a="${T[$1]:-}" -v b="${T[$2]:-}" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
val() { echo "${T[$1]:--}"; }

report() {
    local n
    echo "# converge benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ { print $2 }') GiB; $(uname -r); load average at start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Versions: $("$CONVERGE" --version 2>/dev/null || echo converge) ($(git -C "$ROOT" rev-parse --short HEAD)), " \
        "ansible $("$VENV/bin/pip" show ansible | awk '/^Version/ { print $2 }') (core $("$VENV/bin/pip" show ansible-core | awk '/^Version/ { print $2 }')), " \
        "pyinfra $("$VENV/bin/pip" show pyinfra | awk '/^Version/ { print $2 }'), $(ssh -V 2>&1)."
    echo "Workload: bench/workload (12 tasks per host, a 5 MiB binary). Wall time in seconds;"
    echo "first run: one run on fresh hosts; the others: median of $RUNS (after one warmup run) on converged hosts."
    echo
    echo "| hosts | tool | first run | no-change rerun | diff (check mode) | repair of 1 drifted task |"
    echo "|---:|---|---:|---:|---:|---:|"
    for n in "${HOSTS[@]}"; do
        echo "| $n | converge | $(val converge-first-$n) | $(val converge-rerun-$n) | $(val converge-diff-$n) | $(val converge-repair-$n) |"
        echo "| $n | ansible | $(val ansible-first-$n) | $(val ansible-rerun-$n) (warm ControlPersist: $(val ansible-warm-$n)) | - | - |"
        echo "| $n | pyinfra | $(val pyinfra-first-$n) | $(val pyinfra-rerun-$n) | - | - |"
        echo "| $n | floor (1 ssh exec/host) | - | $(val floor-$n) | - | - |"
    done
    echo
    echo "| hosts | rerun converge/ansible | converge/pyinfra | converge/floor | first run converge/ansible | converge/pyinfra |"
    echo "|---:|---:|---:|---:|---:|---:|"
    for n in "${HOSTS[@]}"; do
        echo "| $n | $(ratio converge-rerun-$n ansible-rerun-$n) | $(ratio converge-rerun-$n pyinfra-rerun-$n) | $(ratio converge-rerun-$n floor-$n) | $(ratio converge-first-$n ansible-first-$n) | $(ratio converge-first-$n pyinfra-first-$n) |"
    done
    echo
    echo "SSH round trips per host and run, counted on the hosts (sshd LogLevel VERBOSE:"
    echo "one \"Starting session\" per exec or subsystem, one \"Accepted publickey\" per connection):"
    echo
    local k
    for n in "${HOSTS[@]}"; do
        for k in converge-first converge-rerun converge-diff converge-repair ansible-first ansible-rerun ansible-warm pyinfra-first pyinfra-rerun floor; do
            if [[ -n ${TRIPS[$k-$n]:-} ]]; then echo "- $n host(s), $k: ${TRIPS[$k-$n]}"; fi
        done
    done
    echo
    echo "converge -v's own count (\"HOST: N exec(s) over one connection\"), mean per host and run:"
    echo
    local f
    for n in "${HOSTS[@]}"; do
        for k in first rerun diff repair; do
            f=$LOGS/converge-$k-$n.log
            [[ -f $f ]] || continue
            echo "- $n host(s), converge-$k: $(grep -o ': [0-9]* exec(s) over' "$f" | awk '{ s += $2; n++ } END { if (n) printf "%g execs", s / n; else print "not printed" }')"
        done
    done
    echo
    echo "Logs: ${LOGS#"$ROOT"/}"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for N in "${HOSTS[@]}"; do
    log "=== $N host(s)"
    for tool in $TOOLS; do
        log "--- $tool"
        "run_$tool"
    done
done
report | tee "$RESULTS"
log "results: ${RESULTS#"$ROOT"/}"
