//! The peers converge is checked against (Ansible 12.3, pyinfra 3.10), pinned in one venv
//! that `tests/hosts/prerequisites.sh` installs (see `tests/hosts/peers.sh`).
#![allow(dead_code)]

use std::path::PathBuf;

/// The venv's path; `CONVERGE_PEERS_VENV` overrides `bench/.venv`. A missing venv fails
/// the test: the prerequisites install it, so its absence is a broken setup, not a skip.
pub fn venv() -> PathBuf {
    let venv = std::env::var_os("CONVERGE_PEERS_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/.venv"),
        PathBuf::from,
    );
    assert!(
        venv.join("bin/ansible-playbook").is_file(),
        "no Ansible in {}: run `bash tests/hosts/prerequisites.sh` (or `bash tests/hosts/peers.sh`)",
        venv.display()
    );
    venv
}
