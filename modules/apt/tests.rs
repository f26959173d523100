use super::{Apt, parse_dpkg, parse_policy};
use crate::module::testing::{FakeHost, diff_text, one, refused};
use crate::module::{Failure, Outcome, Resource, RestartBook, Status};
use std::collections::HashSet;

const POLICY_NGINX: &str = "nginx:\n  Installed: 1.22.1-9\n  Candidate: 1.22.1-9+deb12u1\n  Version table:\n     1.22.1-9+deb12u1 500\n        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages\n *** 1.22.1-9 100\n        100 /var/lib/dpkg/status\n";
const POLICY_UFW: &str =
    "ufw:\n  Installed: (none)\n  Candidate: 0.36.2-1\n  Version table:\n     0.36.2-1 500\n";

/// A host with dpkg's status, apt's candidates (one file per package) and an apt-get
/// that logs and succeeds.
fn host(dpkg: &str, policies: &[(&str, &str)]) -> FakeHost {
    let host = FakeHost::new();
    std::fs::write(host.path("dpkg"), dpkg).unwrap();
    std::fs::create_dir(host.path("policy")).unwrap();
    for (pkg, text) in policies {
        std::fs::write(host.path("policy").join(pkg), text).unwrap();
    }
    let dir = host.dir.path().display();
    host.fake(
        "dpkg-query",
        &format!("shift 2; for p; do grep \"^${{p%%:*}} \" '{dir}/dpkg'; done; true"),
    );
    host.fake(
        "apt-cache",
        &format!("shift; for p; do cat \"{dir}/policy/${{p%%:*}}\" 2>/dev/null; done; true"),
    );
    host.fake("apt-get", "true");
    host
}

async fn run(host: &FakeHost, yaml: &str, apply: bool) -> Result<Outcome, Failure> {
    let action = one(&Apt, yaml);
    host.run(
        &*action,
        apply,
        &mut RestartBook::default(),
        &HashSet::new(),
    )
    .await
}

/// Run `yaml`, applying or in check mode; it must succeed.
async fn ok(host: &FakeHost, yaml: &str, apply: bool) -> Outcome {
    run(host, yaml, apply).await.unwrap()
}

fn apt_calls(host: &FakeHost) -> Vec<String> {
    host.log()
        .lines()
        .filter(|l| l.starts_with("apt-get") || l.starts_with("apt-cache"))
        .map(str::to_string)
        .collect()
}

const INSTALL: &str = "apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold";

#[tokio::test]
async fn installs_only_what_is_missing_in_one_call() {
    let host = host(
        "nginx install ok installed 1.22.1-9\nufw deinstall ok config-files 0.36.1-4\n",
        &[("nginx", POLICY_NGINX), ("ufw", POLICY_UFW)],
    );
    let out = ok(&host, "{name: [nginx, ufw, nginx]}", true).await;
    assert_eq!(out.status, Status::Changed);
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:packages (current)
    +++ host:packages (desired)
    @@ -1,2 +1,2 @@
     nginx: installed (1.22.1-9)
    -ufw: absent
    +ufw: installed (0.36.2-1)
    ");
    assert_eq!(
        apt_calls(&host),
        [
            "apt-cache policy nginx ufw".to_string(),
            format!("{INSTALL} ufw")
        ]
    );
}

#[tokio::test]
async fn a_converged_host_never_asks_apt_cache() {
    let host = host(
        "nginx install ok installed 1.22.1-9\n",
        &[("nginx", POLICY_NGINX)],
    );
    let out = ok(&host, "{name: nginx, update_cache: true}", true).await;
    assert_eq!(out.status, Status::Ok);
    assert!(apt_calls(&host).is_empty());
}

#[tokio::test]
async fn update_cache_runs_only_before_an_install() {
    let host = host("", &[("ufw", POLICY_UFW)]);
    ok(&host, "{name: ufw, update_cache: true}", false).await;
    assert_eq!(apt_calls(&host), ["apt-cache policy ufw"]);
    ok(&host, "{name: ufw, update_cache: true}", true).await;
    assert_eq!(
        apt_calls(&host)[2..],
        [
            "apt-get -q -o DPkg::Lock::Timeout=300 update".to_string(),
            format!("{INSTALL} ufw")
        ]
    );
}

#[tokio::test]
async fn latest_upgrades_to_the_candidate() {
    let host = host(
        "nginx install ok installed 1.22.1-9\n",
        &[("nginx", POLICY_NGINX)],
    );
    let out = ok(&host, "{name: nginx, state: latest}", true).await;
    assert!(
        diff_text(&out)
            .contains("-nginx: installed (1.22.1-9)\n+nginx: installed (1.22.1-9+deb12u1)\n")
    );
    assert_eq!(apt_calls(&host)[1], format!("{INSTALL} nginx"));
    let host = self::host(
        "nginx install ok installed 1.22.1-9+deb12u1\n",
        &[("nginx", POLICY_NGINX)],
    );
    assert_eq!(
        ok(&host, "{name: nginx, state: latest}", true).await.status,
        Status::Ok
    );
}

#[tokio::test]
async fn absent_removes_what_is_installed() {
    let host = host("nginx install ok installed 1.22.1-9\n", &[]);
    let out = ok(&host, "{name: [nginx, ufw], state: absent}", true).await;
    insta::assert_snapshot!(diff_text(&out), @r"
    --- host:packages (current)
    +++ host:packages (desired)
    @@ -1,2 +1,2 @@
    -nginx: installed (1.22.1-9)
    +nginx: absent
     ufw: absent
    ");
    assert_eq!(
        apt_calls(&host),
        ["apt-get remove -y -q -o DPkg::Lock::Timeout=300 nginx"]
    );
}

#[tokio::test]
async fn unknown_packages() {
    let host = host("", &[]);
    let err = run(&host, "{name: nosuchpkg}", false).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "nosuchpkg: apt has no installation candidate (if the package lists are stale, set update_cache: true)"
    );
    // With update_cache the refreshed lists may know it: try.
    let out = ok(&host, "{name: nosuchpkg, update_cache: true}", false).await;
    assert!(diff_text(&out).contains("+nosuchpkg: installed\n"));
}

#[tokio::test]
async fn apt_failures_carry_a_hint() {
    let host = host("", &[("ufw", POLICY_UFW)]);
    host.fake(
        "apt-get",
        "echo 'E: Unable to locate package ufw' >&2; exit 100",
    );
    let err = run(&host, "{name: ufw}", true).await.unwrap_err();
    assert!(err.to_string().contains("exit 100"));
    assert!(err.to_string().ends_with("set update_cache: true)"));
}

#[tokio::test]
async fn hosts_without_dpkg() {
    let action = one(&Apt, "{name: nginx}");
    let (result, _) = FakeHost::new()
        .converge(&*action, "[no-dpkg]\n", false, &[])
        .await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("Debian and Ubuntu hosts only"));
}

#[test]
fn parsing() {
    let installed = parse_dpkg(&[
        "nginx install ok installed 1.22.1-9",
        "ufw deinstall ok config-files 0.36.1-4",
        "libc-dbg unknown ok not-installed ",
        "",
    ]);
    assert_eq!(installed.len(), 1);
    assert_eq!(installed["nginx"], "1.22.1-9");
    let text =
        format!("{POLICY_NGINX}{POLICY_UFW}libc6:\n  Installed: (none)\n  Candidate: (none)\n");
    let policy = parse_policy(&text.lines().collect::<Vec<_>>());
    assert_eq!(policy["nginx"].as_deref(), Some("1.22.1-9+deb12u1"));
    assert_eq!(policy["ufw"].as_deref(), Some("0.36.2-1"));
    assert_eq!(policy["libc6"], None);
}

#[test]
fn names_are_checked() {
    let err = |yaml: &str| refused(&Apt, yaml);
    insta::assert_snapshot!(err("{name: [nginx, 'ng*']}"), @"play.yml:1:8: apt: `name`: `ng*` is not a Debian package name");
    assert!(err("{name: Nginx}").contains("not a Debian package name"));
    assert!(err("{name: 'nginx=1.22'}").contains("not a Debian package name"));
    assert!(err("{name: '-o'}").contains("not a Debian package name"));
    assert!(err("{name: []}").contains("give at least one package"));
    assert!(err("{name: nginx, state: installed}").contains("unknown variant"));
}

#[test]
fn provides_packages() {
    let action = one(&Apt, "{name: [nginx, 'libc6:amd64']}");
    assert_eq!(
        action.resources().provides,
        [
            Resource::Package("nginx".into()),
            Resource::Package("libc6".into())
        ]
    );
    let action = one(&Apt, "{name: nginx, state: absent}");
    assert!(action.resources().provides.is_empty());
}

#[test]
fn the_probe() {
    let action = one(&Apt, "{name: [nginx, ufw]}");
    insta::assert_snapshot!(action.probe(), @r#"if command -v dpkg-query >/dev/null 2>&1; then out=$(dpkg-query -W -f='${Package} ${Status} ${Version}\n' nginx ufw 2>/dev/null); echo '[dpkg]'; printf '%s\n' "$out"; if [ "$(printf '%s\n' "$out" | awk '$4 == "installed" { print $1 }' | sort -u | wc -l)" -lt 2 ]; then echo '[policy]'; LC_ALL=C apt-cache policy nginx ufw 2>/dev/null; fi; else echo '[no-dpkg]'; fi"#);
}
