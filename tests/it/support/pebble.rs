//! Debian's `pebble` (a test ACME server) on this machine, for certbot on the test hosts:
//! a thin wrapper over `testhosts pebble RUNID` (which owns the recipe: CA, config, env).
//!
//! ```ignore
//! let pebble = Pebble::start(&hosts.bridge_ip());   // listens on BRIDGE_IP:14000
//! // playbook: file: { path: /etc/ssl/pebble-ca.pem, src: pebble-ca.pem } (pebble.ca_pem())
//! //           certbot: { domains: [h1.test], server: pebble.directory(), ca_bundle: /etc/ssl/pebble-ca.pem }
//! let real = Pebble::start_real_http01(&hosts);     // HTTP-01 checked for real, through port 80
//! ```
//!
//! By default every challenge is valid without being checked (`PEBBLE_VA_ALWAYS_VALID=1`),
//! so the test names need no DNS and nothing has to answer on port 80. With
//! `start_real_http01` pebble resolves names through `pebble-challtestsrv` (`hN.test` is
//! host hN, any other name h1) and fetches the challenge from port 80 of the host, so
//! the web server there must serve the certbot webroot. Pebble listens on the bridge
//! address of one test run only, so runs on other subnets do not collide, and lives until
//! that run is torn down. Its HTTPS certificate is signed by a CA made by the harness:
//! certbot on a host trusts it through `REQUESTS_CA_BUNDLE` (the certbot module's
//! `ca_bundle`). The certificates it issues chain to another root, `roots_pem`.
#![allow(dead_code)]

use crate::support::hosts::{self, TestHosts};
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Pebble {
    run_dir: PathBuf,
    directory: String,
}

impl Pebble {
    /// Pebble on `ip:14000` (the bridge address of a live `TestHosts`), issuing
    /// certificates valid for pebble's default (5 years).
    pub fn start(ip: &str) -> Pebble {
        Pebble::start_with_validity(ip, None)
    }

    /// Pebble issuing certificates valid for `seconds` (e.g. 10 days: due for renewal
    /// at once, as certbot renews 30 days before expiry).
    pub fn start_with_validity(ip: &str, seconds: Option<u64>) -> Pebble {
        let (run_id, run_dir) = hosts::run_with_bridge_ip(ip)
            .unwrap_or_else(|| panic!("no live TestHosts run has the bridge address {ip}"));
        Pebble::launch(&run_id, run_dir, seconds, false)
    }

    /// Pebble validating HTTP-01 challenges for real: a GET on port 80 of the host.
    pub fn start_real_http01(hosts: &TestHosts) -> Pebble {
        Pebble::launch(hosts.run_id(), hosts.run_dir.clone(), None, true)
    }

    fn launch(run_id: &str, run_dir: PathBuf, validity: Option<u64>, real_http01: bool) -> Pebble {
        let mut cmd = Command::new(hosts::SCRIPT);
        cmd.args(["pebble", run_id]);
        if let Some(seconds) = validity {
            cmd.args(["--validity", &seconds.to_string()]);
        }
        if real_http01 {
            cmd.arg("--real-http01");
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", hosts::SCRIPT));
        let pebble = Pebble {
            run_dir,
            directory: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        };
        assert!(
            out.status.success() && pebble.directory.starts_with("https://"),
            "testhosts pebble {run_id} failed ({}):\n{}\npebble's log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            pebble.log()
        );
        pebble
    }

    /// The ACME directory URL, for the certbot module's `server`.
    pub fn directory(&self) -> String {
        self.directory.clone()
    }

    /// The CA that signed pebble's HTTPS certificate (PEM), for `ca_bundle`.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.run_dir.join("pebble-ca.pem")).expect("pebble-ca.pem")
    }

    /// The root the certificates pebble issues chain to (PEM file on this machine),
    /// e.g. for `curl --cacert`.
    pub fn roots_pem(&self) -> PathBuf {
        self.run_dir.join("pebble-roots.pem")
    }

    pub fn log(&self) -> String {
        read(&self.run_dir.join("pebble/pebble.log"))
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}
