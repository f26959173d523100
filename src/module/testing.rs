//! Unit-test helpers: parse a module's parameters from YAML; run an action on this
//! machine (its real probe through /bin/sh, then converge over the local transport),
//! only for actions whose effects stay inside a tempdir; or run it on a [`FakeHost`],
//! where system commands (systemctl, apt-get, dpkg-query, ...) are fakes, or where every
//! script gets a canned answer, to drive `converge` without touching a machine.

use super::{
    Action, Ctx, Failure, HostInfo, Module, Outcome, Params, Probed, Resource, RestartBook,
};
use crate::error::SourceFile;
use crate::node::{self, Node};
use crate::quote::quote;
use crate::transport::{
    ExecOutput, Input, LocalTransport, Purpose, RunAs, Script, Stream, Transport, TransportError,
};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Values no name parameter may take (each must be refused with a located error): shell
/// syntax, quotes, a line break, a leading `-`, a space, non-ASCII, a path, nothing.
pub const HOSTILE: &[&str] = &[
    "$(touch /tmp/pwned)",
    "`id`",
    "x;reboot",
    "a|b",
    "it's",
    "a\"b",
    "a\nb",
    "-rf",
    "a b",
    "café",
    "../x",
    "",
];

/// `value` as a YAML scalar (JSON's string syntax is YAML's double-quoted one).
pub fn yaml_str(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

/// A task's parameters as written in YAML, for `Module::prepare`.
pub struct TestParams {
    module: &'static str,
    node: Node,
    vars: Value,
    dir: PathBuf,
    play_modules: &'static [&'static str],
}

impl TestParams {
    pub fn new(module: &'static str, yaml: &str) -> TestParams {
        let node = node::parse(&SourceFile::new("play.yml", yaml)).expect("test YAML parses");
        TestParams {
            module,
            node,
            vars: Value::Null,
            dir: PathBuf::from("."),
            play_modules: &[],
        }
    }

    /// The modules the task's play uses (for checks across tasks).
    pub fn play_modules(mut self, modules: &'static [&'static str]) -> TestParams {
        self.play_modules = modules;
        self
    }

    pub fn vars(mut self, vars: Value) -> TestParams {
        self.vars = vars;
        self
    }

    pub fn dir(mut self, dir: impl Into<PathBuf>) -> TestParams {
        self.dir = dir.into();
        self
    }

    pub fn params(&self) -> Params<'_> {
        Params {
            module: self.module,
            value: self.node.to_value(),
            node: &self.node,
            playbook_dir: &self.dir,
            role_dir: None,
            vars: (&self.vars).into(),
            taint: crate::playbook::taint::Taint::none(),
            play_modules: self.play_modules,
        }
    }
}

/// Prepare a module's actions from parameters written as YAML, as the engine would;
/// a refusal is its message.
pub fn prepare(
    module: &dyn Module,
    yaml: &str,
    playbook_dir: &Path,
    vars: &Value,
) -> Result<Vec<Box<dyn Action>>, String> {
    let t = TestParams::new(module.name(), yaml)
        .vars(vars.clone())
        .dir(playbook_dir);
    module.prepare(&t.params()).map_err(|e| e.message)
}

/// Like [`prepare`] for a module that yields exactly one action.
pub fn one(module: &dyn Module, yaml: &str) -> Box<dyn Action> {
    let mut actions =
        prepare(module, yaml, Path::new("."), &Value::Null).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(actions.len(), 1);
    actions.remove(0)
}

/// Parameters written as YAML, deserialized as `Params::parse` does (to reach the
/// parts of an action that `prepare` hides behind `dyn Action`).
pub fn parsed<T: serde::de::DeserializeOwned>(module: &dyn Module, yaml: &str) -> T {
    let t = TestParams::new(module.name(), yaml);
    t.params()
        .parse()
        .unwrap_or_else(|e| panic!("{}", e.message))
}

/// The error message of parameters that must be refused.
pub fn refused(module: &dyn Module, yaml: &str) -> String {
    match prepare(module, yaml, Path::new("."), &Value::Null) {
        Ok(_) => panic!("accepted: {yaml}"),
        Err(message) => message,
    }
}

/// Each `(yaml, "LINE:COL", message)` must be refused with an error at LINE:COL of the
/// playbook whose message contains `message`.
pub fn assert_refused_at(module: &dyn Module, cases: &[(&str, &str, &str)]) {
    for (yaml, at, message) in cases {
        let err = refused(module, yaml);
        assert!(
            err.starts_with(&format!("play.yml:{at}:")) && err.contains(message),
            "{yaml}: {err}"
        );
    }
}

/// The action's probe run over `transport`, wrapped as the runner's batch wraps each one.
async fn probe_on(transport: &dyn Transport, action: &dyn Action) -> Probed {
    let body = format!("(\n{}\n) 2>/dev/null </dev/null", action.probe());
    let out = transport
        .exec(Script {
            body: &body,
            stdin: Input::NONE,
            run_as: &RunAs::Login,
            timeout: None,
            purpose: Purpose::Probe,
        })
        .await
        .expect("local probe runs");
    Probed {
        stdout: out.stdout_text(),
        status: out.status,
    }
}

/// How a test converges: applying or checking, and whether the host answers each
/// change's script from a canned reply (then each change gets its own exec).
#[derive(Clone, Copy)]
struct Mode {
    apply: bool,
    canned: bool,
}

/// Converge `action` over `transport` as the runner does.
async fn converge_on(
    transport: &dyn Transport,
    host: &HostInfo,
    action: &dyn Action,
    probed: &Probed,
    Mode { apply, canned }: Mode,
    restarts: &mut RestartBook,
    assumed: &HashSet<Resource>,
) -> Result<Outcome, Failure> {
    let guarded = CheckModeGuard { inner: transport };
    let transport: &dyn Transport = if apply { transport } else { &guarded };
    let ctx = Ctx::new(apply, host, transport, RunAs::Login, restarts, assumed);
    let mut ctx = if canned {
        ctx.one_exec_per_change()
    } else {
        ctx
    };
    ctx.carry_out(action, probed).await
}

/// Every module test in check mode runs over this: a script meant to change the host
/// fails the test, so no module can change anything in check mode.
#[derive(Debug)]
struct CheckModeGuard<'t> {
    inner: &'t dyn Transport,
}

#[async_trait]
impl Transport for CheckModeGuard<'_> {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        assert_ne!(
            script.purpose,
            Purpose::Change,
            "check mode ran a change:\n{}",
            script.body
        );
        self.inner.exec(script).await
    }

    async fn exec_stream(
        &self,
        _body: &str,
        _run_as: &RunAs,
    ) -> Result<Box<dyn Stream>, TransportError> {
        panic!("check mode opened a stream (only the host lock does, when applying)")
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        self.inner.connect_tcp(host, port).await
    }

    fn login_is_root(&self) -> bool {
        self.inner.login_is_root()
    }

    async fn close(&self) {}
}

/// A host for tests: this machine, with optional secrets and assumed resources.
#[derive(Default)]
pub struct Local {
    pub host: HostInfo,
    pub assumed: HashSet<Resource>,
    transport: LocalTransport,
}

impl Local {
    /// The action's probe, wrapped as the runner's batch wraps each one.
    pub async fn probe(&self, action: &dyn Action) -> Probed {
        probe_on(&self.transport, action).await
    }

    /// Converge `action` against an already probed state.
    pub async fn converge_with(
        &self,
        action: &dyn Action,
        probed: &Probed,
        apply: bool,
    ) -> Result<Outcome, Failure> {
        let mut restarts = RestartBook::default();
        converge_on(
            &self.transport,
            &self.host,
            action,
            probed,
            Mode {
                apply,
                canned: false,
            },
            &mut restarts,
            &self.assumed,
        )
        .await
    }

    /// Probe, then converge.
    pub async fn run(&self, action: &dyn Action, apply: bool) -> Result<Outcome, Failure> {
        let probed = self.probe(action).await;
        self.converge_with(action, &probed, apply).await
    }

    /// A context on this machine, for helpers that take one (check mode).
    pub fn ctx<'a>(&'a self, restarts: &'a mut RestartBook) -> Ctx<'a> {
        Ctx::new(
            false,
            &self.host,
            &self.transport,
            RunAs::Login,
            restarts,
            &self.assumed,
        )
    }
}

/// A probe's output that exited 0.
pub fn probed(stdout: &str) -> Probed {
    Probed {
        stdout: stdout.to_string(),
        status: 0,
    }
}

/// Run `script` with /bin/sh on this machine; it must succeed. Its stdout.
pub fn sh(script: &str) -> String {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("/bin/sh runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The diffs of an outcome as the report shows them, for snapshots.
pub fn diff_text(outcome: &Outcome) -> String {
    outcome.diffs.iter().map(|d| d.unified("host")).collect()
}

/// Commands that change a system: always shadowed by a fake in a [`FakeHost`].
const GUARDED: &[&str] = &[
    "systemctl",
    "apt-get",
    "apt-cache",
    "dpkg-query",
    "dpkg",
    "journalctl",
    "sudo",
];

type Responder = Box<dyn Fn(&str, &[u8]) -> ExecOutput + Send + Sync>;

/// A host for tests that records every script it is sent. Made with [`FakeHost::new`]
/// it is this machine with fake commands first on PATH (in a temp dir that also serves
/// as the test's scratch space), every fake call logged: the real probes and scripts of
/// system modules run without touching the system. Made with [`FakeHost::answering`] it
/// runs nothing and answers each script with a canned output: for actions whose scripts
/// write system paths (/etc/nginx, ...), driven with a probe output given as text.
pub struct FakeHost {
    pub dir: tempfile::TempDir,
    pub info: HostInfo,
    local: LocalTransport,
    respond: Option<Responder>,
    scripts: Mutex<Vec<String>>,
}

impl std::fmt::Debug for FakeHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHost")
            .field("dir", &self.dir)
            .field("canned", &self.respond.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHost {
    fn with(respond: Option<Responder>) -> FakeHost {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("bin")).expect("bin dir");
        let host = FakeHost {
            dir,
            info: HostInfo {
                name: "host".into(),
                ..HostInfo::default()
            },
            local: LocalTransport::new(),
            respond,
            scripts: Mutex::new(Vec::new()),
        };
        // A test must never reach the real system commands, even one it forgot to fake.
        for cmd in GUARDED {
            host.fake(
                cmd,
                &format!("echo '{cmd} is not faked in this test' >&2; exit 99"),
            );
        }
        host
    }

    /// This machine with every system command faked (see [`FakeHost::fake`]).
    pub fn new() -> FakeHost {
        FakeHost::with(None)
    }

    /// A host that runs nothing and answers every script through `respond`.
    pub fn answering(
        respond: impl Fn(&str, &[u8]) -> ExecOutput + Send + Sync + 'static,
    ) -> FakeHost {
        FakeHost::with(Some(Box::new(respond)))
    }

    /// A host on which every script succeeds silently.
    pub fn ok() -> FakeHost {
        FakeHost::answering(|_, _| ExecOutput::default())
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Install a fake `name` running the sh `body`; each call appends `name ARGS` to the log.
    pub fn fake(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        let log = self.path("log");
        let log = quote(log.to_str().expect("utf-8 temp path"));
        std::fs::write(
            &path,
            format!("#!/bin/sh\necho \"{name} $*\" >> {log}\n{body}\n"),
        )
        .expect("fake command");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The calls of the fake commands so far, one per line.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("log")).unwrap_or_default()
    }

    /// Every script sent so far, probes included.
    pub fn sent(&self) -> Vec<String> {
        self.scripts.lock().expect("not poisoned").clone()
    }

    /// Whether any script sent contains `needle`.
    pub fn ran(&self, needle: &str) -> bool {
        self.sent().iter().any(|s| s.contains(needle))
    }

    /// Probe and converge one action, as the runner does, with the run's restart book
    /// and the resources earlier tasks changed.
    pub async fn run(
        &self,
        action: &dyn Action,
        apply: bool,
        restarts: &mut RestartBook,
        changed: &HashSet<Resource>,
    ) -> Result<Outcome, Failure> {
        let probed = probe_on(self, action).await;
        let mode = Mode {
            apply,
            canned: self.respond.is_some(),
        };
        converge_on(self, &self.info, action, &probed, mode, restarts, changed).await
    }

    /// Converge one action on `probe` as its probed state, in a fresh run whose earlier
    /// tasks changed `changed`; the run's restart book comes back with the outcome.
    pub async fn converge(
        &self,
        action: &dyn Action,
        probe: &str,
        apply: bool,
        changed: &[Resource],
    ) -> (Result<Outcome, Failure>, RestartBook) {
        let probed = Probed {
            stdout: probe.to_string(),
            status: 0,
        };
        let mut restarts = RestartBook::default();
        let changed = changed.iter().cloned().collect();
        let result = converge_on(
            self,
            &self.info,
            action,
            &probed,
            Mode {
                apply,
                canned: self.respond.is_some(),
            },
            &mut restarts,
            &changed,
        )
        .await;
        (result, restarts)
    }
}

#[async_trait]
impl Transport for FakeHost {
    async fn exec(&self, script: Script<'_>) -> Result<ExecOutput, TransportError> {
        self.scripts
            .lock()
            .expect("not poisoned")
            .push(script.body.to_string());
        if let Some(respond) = &self.respond {
            return Ok(respond(script.body, &script.stdin.read()));
        }
        let bin = self.path("bin");
        let body = format!(
            "PATH={}:$PATH\n{}",
            quote(bin.to_str().expect("utf-8 temp path")),
            script.body
        );
        self.local
            .exec(Script {
                body: &body,
                stdin: script.stdin,
                run_as: &RunAs::Login,
                timeout: None,
                purpose: Purpose::Change,
            })
            .await
    }

    async fn exec_stream(
        &self,
        body: &str,
        run_as: &RunAs,
    ) -> Result<Box<dyn Stream>, TransportError> {
        self.local.exec_stream(body, run_as).await
    }

    async fn connect_tcp(&self, host: &str, port: u16) -> Result<Box<dyn Stream>, TransportError> {
        self.local.connect_tcp(host, port).await
    }

    fn login_is_root(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

/// An output with `stdout`, `stderr` and an exit status.
pub fn output(status: i32, stdout: &str, stderr: &str) -> ExecOutput {
    ExecOutput {
        status,
        stdout: stdout.as_bytes().to_vec(),
        stderr: stderr.as_bytes().to_vec(),
    }
}

/// Run `script` with /bin/sh on this machine, `stdin` as its input.
pub fn sh_with_stdin(script: &str, stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/bin/sh runs");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).expect("stdin written");
    drop(input);
    child.wait_with_output().expect("/bin/sh ends")
}
