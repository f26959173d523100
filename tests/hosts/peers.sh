#!/usr/bin/env bash
# The peers converge is checked and measured against, pinned, in one venv:
# Ansible 12.3.0 (with community.general, for ufw) and pyinfra 3.10.0.
# Prints the venv's path. Tests find it there (CONVERGE_PEERS_VENV overrides).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${CONVERGE_PEERS_VENV:-$PWD/bench/.venv}
if ! { [[ -x $VENV/bin/ansible-playbook && -x $VENV/bin/pyinfra ]] &&
    [[ $("$VENV/bin/pip" show ansible 2>/dev/null) == *"Version: 12.3.0"* ]] &&
    [[ $("$VENV/bin/pip" show pyinfra 2>/dev/null) == *"Version: 3.10.0"* ]]; }; then
    echo "peers: installing ansible 12.3.0 and pyinfra 3.10.0 into $VENV" >&2
    rm -rf "$VENV"
    # Debian's python3 makes venvs only with python3-venv installed.
    python3 -m venv "$VENV" 2>/dev/null || {
        rm -rf "$VENV"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; }
        python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install -q 'ansible==12.3.0' 'pyinfra==3.10.0' >&2
fi
echo "$VENV"
