//! Debian's `pebble` (a test ACME server) on this machine, for certbot on the test hosts.
//!
//! ```ignore
//! let pebble = Pebble::start(&hosts.bridge_ip());   // listens on BRIDGE_IP:14000
//! // playbook: file: { path: /etc/ssl/pebble-ca.pem, src: pebble-ca.pem } (pebble.ca_pem())
//! //           certbot: { domains: [h1.test], server: pebble.directory(), ca_bundle: /etc/ssl/pebble-ca.pem }
//! ```
//!
//! Every challenge is valid without being checked (`PEBBLE_VA_ALWAYS_VALID=1`), so the
//! test names need no DNS and nothing has to answer on port 80. Pebble listens on the
//! bridge address of one test run only, so runs on other subnets do not collide. Its
//! HTTPS certificate is signed by a CA made here with openssl: certbot on a host trusts
//! it through `REQUESTS_CA_BUNDLE` (the certbot module's `ca_bundle`).
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pebble {
    child: Child,
    dir: tempfile::TempDir,
    ip: String,
}

impl Pebble {
    /// Pebble on `ip:14000`, issuing certificates valid for pebble's default (5 years).
    pub fn start(ip: &str) -> Pebble {
        Pebble::start_with_validity(ip, None)
    }

    /// Pebble issuing certificates valid for `seconds` (e.g. 10 days: due for renewal
    /// at once, as certbot renews 30 days before expiry).
    pub fn start_with_validity(ip: &str, seconds: Option<u64>) -> Pebble {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=converge test ACME CA",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "key.pem",
                "-out",
                "cert.csr",
                "-subj",
                "/CN=pebble",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            format!(
                "subjectAltName=IP:{ip},DNS:localhost\nbasicConstraints=CA:FALSE\n\
                 extendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("ext.cnf");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "cert.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "cert.pem",
                "-days",
                "30",
                "-extfile",
                "ext.cnf",
            ],
        );
        let validity = seconds
            .map(|s| format!(",\n    \"certificateValidityPeriod\": {s}"))
            .unwrap_or_default();
        std::fs::write(
            d.join("pebble-config.json"),
            format!(
                r#"{{
  "pebble": {{
    "listenAddress": "{ip}:14000",
    "managementListenAddress": "{ip}:15000",
    "certificate": "{cert}",
    "privateKey": "{key}",
    "httpPort": 5002,
    "tlsPort": 5001,
    "ocspResponderURL": "",
    "externalAccountBindingRequired": false{validity}
  }}
}}
"#,
                cert = d.join("cert.pem").display(),
                key = d.join("key.pem").display(),
            ),
        )
        .expect("pebble config");
        let log = std::fs::File::create(d.join("pebble.log")).expect("pebble.log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(d.join("pebble-config.json"))
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start pebble (apt-get install pebble)");
        let pebble = Pebble {
            child,
            dir,
            ip: ip.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let address = format!("{ip}:14000");
        while TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "pebble did not listen on {address}:\n{}",
                pebble.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pebble
    }

    /// The ACME directory URL, for the certbot module's `server`.
    pub fn directory(&self) -> String {
        format!("https://{}:14000/dir", self.ip)
    }

    /// The CA that signed pebble's HTTPS certificate (PEM), for `ca_bundle`.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ca.pem")).expect("ca.pem")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}
