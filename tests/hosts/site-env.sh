# Sourced by tests/demo.sh and bench/site.sh: N throwaway hosts in the group `web`, pebble on
# the bridge (real HTTP-01 through nginx), and playbooks/site.yml (and its role-based twin
# site-roles.yml) with its build in a work dir.
#   site_up RUN_ID N   sets: work, run_dir, acme, home; converge() and timed() use them
# The caller's EXIT trap should call site_down.

site_up() {
    run_id=$1
    local n=$2
    bash tests/hosts/prerequisites.sh
    # A first build takes minutes: cargo's own progress says what it is doing.
    echo "building converge and the demo app (release; a few minutes on a fresh machine)" >&2
    cargo build --release -p converge
    DEMO_VERSION=v1 cargo build --release -p demo-app
    work=$(mktemp -d)
    cp -r playbooks/site.yml playbooks/site-roles.yml playbooks/roles playbooks/templates playbooks/vars "$work"/
    mkdir -p "$work/build" && cp target/release/demo-app "$work/build/demo-v1"
    run_dir=$(tests/hosts/testhosts up "$run_id" "$n" ${CONVERGE_TESTHOSTS_SUBNET:+--subnet "$CONVERGE_TESTHOSTS_SUBNET"})
    acme=$(tests/hosts/testhosts pebble "$run_id" --real-http01)
    # The play targets the `web` group: put every throwaway host in it.
    cp "$run_dir/inventory.yml" "$work/inventory.yml"
    printf '  children:\n    web:\n      hosts: {%s }\n' \
        "$(for i in $(seq 1 "$n"); do printf ' h%d:,' "$i"; done | sed 's/,$//')" >>"$work/inventory.yml"
    # Extra vars: hN.test (pebble's DNS resolves it to host hN), no watch window between the
    # batches of the gray release (CONVERGE_BATCH_PAUSE sets one), pebble as the ACME
    # server, and the CA of pebble's HTTPS.
    {
        echo 'domain: "{{inventory_hostname}}.test"'
        echo "batch_pause: ${CONVERGE_BATCH_PAUSE:-0}"
        echo "acme_server: $acme"
        echo "acme_ca_bundle: /etc/ssl/certs/converge-acme-ca.pem"
        echo "acme_ca_pem: |"
        sed 's/^/  /' "$run_dir/pebble-ca.pem"
    } >"$work/vars.yml"
    home=$(mktemp -d -p "$work")
    mkdir -p "$home/.ssh"
    cp "$run_dir/known_hosts" "$home/.ssh/known_hosts"
}

site_down() {
    tests/hosts/testhosts down "$run_id"
    rm -rf "$work"
}

converge() { HOME=$home ./target/release/converge "$@" -e @"$work/vars.yml"; }

timed() { # VAR CMD...: run CMD, store its wall time (seconds) in VAR
    local start=${EPOCHREALTIME/[.,]/} rc=0 us
    "${@:2}" || rc=$?
    us=$((${EPOCHREALTIME/[.,]/} - start))
    printf -v "$1" '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000))
    return "$rc"
}
