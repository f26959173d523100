//! `converge pull REPO_URL [PLAYBOOK]`: ansible-pull's place, for fleets beyond one
//! controller. Each host fetches the repository into a folder of its own, picks itself
//! from the repository's inventory by its names, and converges itself with the local
//! connection, under the same locks and with the same exit codes as `converge apply`.
//!
//! With `--only-if-changed`, a run is skipped when the remote's commit and the run's
//! settings are those of the last run and that run succeeded, so a timer that finds
//! nothing new costs one `git ls-remote`.

mod git;

use crate::cli::{self, RunArgs};
use crate::error::{Exit, InputError};
use crate::inventory::Inventory;
use crate::lock::{self, LockError, RunLock};
use clap::Args;
use git::Git;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const AFTER_HELP: &str = "\
This machine is picked from the inventory by its names (hostname --fqdn, hostname, and
their first labels), else `localhost` is; -l picks instead. Whatever the inventory says
about connecting, the run uses the local connection.

Exit codes:
  0    success, or --only-if-changed found nothing new
  1    a task failed, or the repository cannot be reached
  3    bad input (playbook, inventory, vars, usage, a URL starting with `-`, an unknown
       --checkout ref, a commit refused by --verify-commit); nothing was touched
  4    another run holds the lock (this checkout's, the playbook's, or this host's)
  130  interrupted";

/// Root's pull folders: kept across reboots (unlike the run locks in /run), root's alone.
const ROOT_DIR: &str = "/var/lib/converge/pull";
/// Another user's, under the home directory from the user database (cron and a login
/// shell must find the same record).
const USER_DIR: &str = ".local/state/converge/pull";
/// In the pull folder: the outcome of the last run.
const RECORD: &str = "last-run.json";
/// In the pull folder: the inventory used when the repository has none.
const IMPLICIT_INVENTORY: &str = "localhost.yml";

#[derive(Args)]
#[command(mut_arg("playbook", |a| a
    .required(false)
    .default_value("site.yml")
    .help("The playbook, relative to the checkout")))]
#[command(mut_arg("inventory", |a| a
    .help("The inventory, relative to the checkout; default: inventory.yml beside the \
           playbook, or `localhost` alone when there is none")))]
pub struct PullArgs {
    /// The git repository: https://, ssh://, git@host:path, file:// or a path.
    #[arg(value_name = "REPO_URL")]
    url: String,
    #[command(flatten)]
    run: RunArgs,
    /// The folder of the checkout and of the last run's record; default:
    /// /var/lib/converge/pull/HASH for root, else ~/.local/state/converge/pull/HASH.
    #[arg(short = 'd', long, value_name = "DIR")]
    directory: Option<PathBuf>,
    /// A branch, a tag or a full commit id; default: the repository's HEAD.
    #[arg(short = 'C', long, value_name = "REF")]
    checkout: Option<String>,
    /// Refuse a commit without a good signature from a key of this machine's gpg keyring
    /// (`git verify-commit`).
    #[arg(long)]
    verify_commit: bool,
    /// Do nothing (exit 0) when the commit is the one the last run converged without error,
    /// with the same playbook and options.
    #[arg(short = 'o', long)]
    only_if_changed: bool,
}

/// Why a pull stopped before converging.
pub(crate) enum Stop {
    /// Exit 3: a mistake in what the user asked for; nothing was touched.
    Input(InputError),
    /// Exit 1: the repository or this machine failed.
    Failed(String),
    /// Exit 4: another pull is using the checkout.
    Locked(String),
}

impl Stop {
    fn report(self) -> Exit {
        match self {
            Stop::Input(error) => cli::report_input_error(error),
            Stop::Failed(message) => {
                eprintln!("error: {message}");
                Exit::Failed
            }
            Stop::Locked(message) => {
                eprintln!("error: {message}");
                Exit::Locked
            }
        }
    }
}

/// The outcome of the last run, kept in the pull folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    commit: String,
    /// The digest of what was asked besides the commit (see `settings_digest`).
    settings: String,
    exit: i32,
    finished: String,
}

impl Record {
    fn read(folder: &Path) -> Option<Record> {
        let text = std::fs::read_to_string(folder.join(RECORD)).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn converged(&self, commit: &str, settings: &str) -> bool {
        self.exit == Exit::Success.code() && self.commit == commit && self.settings == settings
    }
}

/// A run that is ready to start: the checkout is at `commit` and locked.
struct Prepared {
    run: RunArgs,
    folder: PathBuf,
    commit: String,
    settings: String,
    _lock: RunLock,
}

/// What pull itself says: on stdout beside the run's report, on stderr when stdout is
/// the JSON document's, nothing with `-q`.
struct Say {
    quiet: bool,
    json: bool,
}

impl Say {
    fn line(&self, text: &str) {
        match (self.quiet, self.json) {
            (true, _) => {}
            (false, true) => eprintln!("{text}"),
            (false, false) => println!("{text}"),
        }
    }
}

pub async fn pull(args: PullArgs) -> Exit {
    let say = Say {
        quiet: args.run.quiet,
        json: args.run.json,
    };
    let prepared = match prepare(args, &say) {
        Ok(Some(prepared)) => prepared,
        Ok(None) => return Exit::Success,
        Err(stop) => return stop.report(),
    };
    let exit = cli::run(prepared.run, false).await;
    let record = Record {
        commit: prepared.commit,
        settings: prepared.settings,
        exit: exit.code(),
        finished: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    };
    let written = serde_json::to_vec_pretty(&record)
        .map_err(std::io::Error::other)
        .and_then(|json| write_atomically(&prepared.folder, RECORD, &json));
    if let Err(e) = written {
        // The next --only-if-changed run then converges again: safe, only slower.
        eprintln!(
            "warning: cannot record the run in {}: {e}",
            prepared.folder.join(RECORD).display()
        );
    }
    exit
}

/// Lock the folder, fetch, verify and check out the commit, and set the run up; `None`
/// when `--only-if-changed` finds nothing to do.
fn prepare(args: PullArgs, say: &Say) -> Result<Option<Prepared>, Stop> {
    git::check_url(&args.url).map_err(Stop::Input)?;
    let folder = match &args.directory {
        Some(dir) => dir.clone(),
        None => default_folder(&args.url)?,
    };
    let git = Git::new(&args.url, folder.join("checkout"), args.run.timeout);
    let url = git.shown_url();
    lock::private_dir(&folder, lock::effective_uid(), "a pull's checkout").map_err(locked)?;
    let lock = RunLock::acquire_folder(&folder).map_err(locked)?;
    git.init()?;
    let target = git
        .remote_refs()?
        .resolve(args.checkout.as_deref(), url)
        .map_err(Stop::Input)?;
    let wanted = args.checkout.as_deref().unwrap_or("HEAD");
    let settings = settings_digest(&args);
    if args.only_if_changed
        && Record::read(&folder).is_some_and(|r| r.converged(&target.commit, &settings))
    {
        say.line(&format!(
            "pull: {url} {wanted} is still at {}, which the last run converged without error: \
             nothing to do (--only-if-changed)",
            short(&target.commit)
        ));
        return Ok(None);
    }
    let commit = git.fetch(&target)?;
    if args.verify_commit {
        git.verify(&commit)?;
    }
    git.checkout(&commit)?;
    let run = run_args(args.run, &folder, git.checkout_dir())?;
    say.line(&format!(
        "pull: {url} {wanted} at {}: converging {} with {}",
        short(&commit),
        run.target.limit.as_deref().unwrap_or_default(),
        run.target.playbook.display()
    ));
    Ok(Some(Prepared {
        run,
        folder,
        commit,
        settings,
        _lock: lock,
    }))
}

fn locked(error: LockError) -> Stop {
    match error {
        LockError::Held { path, holder } => Stop::Locked(format!(
            "another converge pull is using this checkout: {holder} ({})\n  help: wait for it \
             to end; the lock goes with its process",
            path.display()
        )),
        LockError::Io(message) => Stop::Failed(message),
    }
}

/// The first 12 digits of a commit id, as people quote them.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The pull folder of `url` when none is given: one per repository.
fn default_folder(url: &str) -> Result<PathBuf, Stop> {
    let uid = lock::effective_uid();
    let base = if uid == 0 {
        PathBuf::from(ROOT_DIR)
    } else {
        let (_, home) = lock::passwd(uid).ok_or_else(|| {
            Stop::Failed(format!(
                "uid {uid} has no entry in the user database, so converge has no folder of \
                 its own for the checkout\n  help: give one with --directory DIR"
            ))
        })?;
        home.join(USER_DIR)
    };
    Ok(base.join(&hex::encode(Sha256::digest(url.as_bytes()))[..16]))
}

/// What a run was asked besides its commit: a run with other settings is not the one
/// recorded. `-e` values are hashed, never stored, since they may hold secrets.
fn settings_digest(args: &PullArgs) -> String {
    let target = &args.run.target;
    let path = |p: Option<&Path>| {
        p.map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let fields = [
        args.url.clone(),
        path(Some(&target.playbook)),
        path(target.inventory.as_deref()),
        target.limit.clone().unwrap_or_default(),
        args.run.tags.join(","),
        args.run.skip_tags.join(","),
        target.extra.join("\0"),
        args.verify_commit.to_string(),
    ];
    let mut hasher = Sha256::new();
    for field in fields {
        hasher.update(field.as_bytes());
        hasher.update([0xff]);
    }
    hex::encode(hasher.finalize())
}

/// The run of the checkout: paths inside it, this machine's hosts, the local connection.
fn run_args(mut run: RunArgs, folder: &Path, checkout: &Path) -> Result<RunArgs, Stop> {
    let playbook = checkout.join(&run.target.playbook);
    let inventory = match &run.target.inventory {
        Some(inventory) => checkout.join(inventory),
        None => {
            let beside = playbook.parent().unwrap_or(checkout).join("inventory.yml");
            if beside.exists() {
                beside
            } else {
                implicit_inventory(folder)?
            }
        }
    };
    if run.target.limit.is_none() {
        let loaded = Inventory::load(&inventory).map_err(Stop::Input)?;
        let hosts = pick_hosts(&loaded, &inventory, &this_machine_names()).map_err(Stop::Input)?;
        run.target.limit = Some(hosts.join(","));
    }
    run.target.playbook = playbook;
    run.target.inventory = Some(inventory);
    // Last, so it beats any other -e: this machine converges itself.
    run.target.extra.push("ansible_connection=local".into());
    Ok(run)
}

/// Ansible-pull's `-i localhost,` for a repository without an inventory.
fn implicit_inventory(folder: &Path) -> Result<PathBuf, Stop> {
    write_atomically(
        folder,
        IMPLICIT_INVENTORY,
        b"all:\n  hosts:\n    localhost: {}\n",
    )
    .map_err(|e| {
        Stop::Failed(format!(
            "cannot write {}: {e}",
            folder.join(IMPLICIT_INVENTORY).display()
        ))
    })?;
    Ok(folder.join(IMPLICIT_INVENTORY))
}

/// The names this machine may have in an inventory, as ansible-pull limits its run to
/// them: the fully qualified name, the kernel's host name, and their first labels.
fn this_machine_names() -> Vec<String> {
    let fqdn = Command::new("hostname")
        .arg("--fqdn")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    let mut names: Vec<String> = Vec::new();
    for name in fqdn.into_iter().chain([lock::hostname()]) {
        let first_label = name.split('.').next().unwrap_or_default().to_string();
        for n in [name, first_label] {
            if !n.is_empty() && !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// The inventory's hosts named like this machine, else its `localhost`.
fn pick_hosts(
    inventory: &Inventory,
    path: &Path,
    names: &[String],
) -> Result<Vec<String>, InputError> {
    let own: Vec<String> = inventory
        .hosts()
        .iter()
        .filter(|h| names.contains(&h.name))
        .map(|h| h.name.clone())
        .collect();
    if !own.is_empty() {
        return Ok(own);
    }
    if let Some(local) = ["localhost", "127.0.0.1"]
        .into_iter()
        .find(|n| inventory.host(n).is_some())
    {
        return Ok(vec![local.to_string()]);
    }
    Err(InputError::new(format!(
        "no host of {} is this machine: none is named {}, nor localhost",
        path.display(),
        names.join(", ")
    ))
    .help(
        "add this machine to the inventory under one of these names (it converges itself \
         with the local connection, whatever its entry says about connecting), or give -l NAME",
    ))
}

/// The password of `https://user:password@host/...`, to hide wherever the URL or git's
/// messages about it show.
fn url_password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then(|| password.to_string())
}

/// Replace `folder/name` at once: a crash leaves the old file or the new one, and at most
/// a hidden temp file (`.name.XXXXXX~`).
fn write_atomically(folder: &Path, name: &str, content: &[u8]) -> std::io::Result<()> {
    let mut file = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix("~")
        .tempfile_in(folder)?;
    file.write_all(content)?;
    file.as_file().sync_all()?;
    file.persist(folder.join(name)).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::SourceFile;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        pull: PullArgs,
    }

    fn parse(args: &[&str]) -> Result<PullArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("pull").chain(args.iter().copied())).map(|c| c.pull)
    }

    #[test]
    fn the_playbook_defaults_to_site_yml_and_apply_options_are_taken() {
        let args = parse(&["file:///srv/r.git", "-C", "v1", "-o", "-q", "-e", "a=b"]).unwrap();
        assert_eq!(args.url, "file:///srv/r.git");
        assert_eq!(args.run.target.playbook, Path::new("site.yml"));
        assert_eq!(args.checkout.as_deref(), Some("v1"));
        assert!(args.only_if_changed && args.run.quiet && !args.verify_commit);
        assert_eq!(args.run.target.extra, ["a=b"]);
        let args = parse(&["r", "web.yml", "-i", "hosts.yml", "--verify-commit"]).unwrap();
        assert_eq!(args.run.target.playbook, Path::new("web.yml"));
        assert_eq!(
            args.run.target.inventory.as_deref(),
            Some(Path::new("hosts.yml"))
        );
        assert!(args.verify_commit);
        assert!(parse(&[]).is_err(), "the URL is required");
    }

    #[test]
    fn a_url_that_looks_like_an_option_never_reaches_git() {
        // clap takes it for an unknown option; given after `--`, pull refuses it.
        assert!(parse(&["--upload-pack=touch /tmp/pwned"]).is_err());
        let args = parse(&["--", "--upload-pack=touch /tmp/pwned"]).unwrap();
        let say = Say {
            quiet: true,
            json: false,
        };
        match prepare(args, &say) {
            Err(Stop::Input(e)) => assert!(e.message.contains("would be read as an option")),
            _ => panic!("accepted"),
        }
    }

    #[test]
    fn settings_that_differ_make_another_run() {
        let digest = |args: &[&str]| settings_digest(&parse(args).unwrap());
        let base = digest(&["r"]);
        assert_eq!(base, digest(&["r", "site.yml", "-q", "-o"]));
        for other in [
            &["r", "other.yml"][..],
            &["r", "-e", "v=2"],
            &["r", "-t", "web"],
            &["r", "--verify-commit"],
            &["r", "-l", "h2"],
            &["r2"],
        ] {
            assert_ne!(base, digest(other), "{other:?}");
        }
    }

    #[test]
    fn only_a_successful_run_on_the_same_commit_and_settings_counts() {
        let record = Record {
            commit: "c1".into(),
            settings: "s".into(),
            exit: 0,
            finished: String::new(),
        };
        assert!(record.converged("c1", "s"));
        assert!(!record.converged("c2", "s"));
        assert!(!record.converged("c1", "t"));
        for exit in [1, 3, 4, 130] {
            assert!(
                !Record {
                    exit,
                    ..record.clone()
                }
                .converged("c1", "s")
            );
        }
    }

    #[test]
    fn the_record_is_replaced_at_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Record::read(dir.path()), None);
        let record = Record {
            commit: "c1".into(),
            settings: "s".into(),
            exit: 1,
            finished: "2026-01-01T00:00:00Z".into(),
        };
        let json = serde_json::to_vec(&record).unwrap();
        write_atomically(dir.path(), RECORD, &json).unwrap();
        write_atomically(dir.path(), RECORD, &json).unwrap();
        assert_eq!(Record::read(dir.path()), Some(record));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [RECORD], "no temp file is left");
    }

    fn inventory(yaml: &str) -> Inventory {
        Inventory::parse(&SourceFile::new("inventory.yml", yaml)).unwrap()
    }

    #[test]
    fn this_machine_is_picked_by_its_names_else_localhost() {
        let names = ["web1.example.com".to_string(), "web1".to_string()];
        let path = Path::new("inventory.yml");
        let both = inventory("all:\n  hosts:\n    localhost: {}\n    web1: {}\n    web2: {}\n");
        assert_eq!(pick_hosts(&both, path, &names).unwrap(), ["web1"]);
        let local = inventory("all:\n  hosts:\n    localhost: {}\n    web2: {}\n");
        assert_eq!(pick_hosts(&local, path, &names).unwrap(), ["localhost"]);
        let none = inventory("all:\n  hosts:\n    web2: {}\n");
        let err = pick_hosts(&none, path, &names).unwrap_err();
        assert_eq!(
            err.message,
            "no host of inventory.yml is this machine: none is named web1.example.com, web1, \
             nor localhost"
        );
    }

    /// A checkout holding `files`, a pull folder beside it, and the run `args` make there.
    fn run_in_checkout(files: &[(&str, &str)], args: &[&str]) -> (tempfile::TempDir, RunArgs) {
        let folder = tempfile::tempdir().unwrap();
        let checkout = folder.path().join("checkout");
        for (name, text) in files {
            let path = checkout.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let parsed = parse(args).unwrap();
        let run = run_args(parsed.run, folder.path(), &checkout).ok().unwrap();
        (folder, run)
    }

    #[test]
    fn the_run_reads_the_checkout_and_converges_this_machine_locally() {
        let here = lock::hostname();
        let inventory = format!("all:\n  hosts:\n    {here}: {{ ansible_host: 203.0.113.1 }}\n");
        let (folder, run) = run_in_checkout(
            &[("ops/web.yml", "[]"), ("ops/inventory.yml", &inventory)],
            &["r", "ops/web.yml", "-e", "ansible_connection=ssh"],
        );
        let checkout = folder.path().join("checkout");
        assert_eq!(run.target.playbook, checkout.join("ops/web.yml"));
        assert_eq!(
            run.target.inventory,
            Some(checkout.join("ops/inventory.yml")),
            "as apply: inventory.yml beside the playbook"
        );
        assert_eq!(run.target.limit.as_deref(), Some(here.as_str()));
        assert_eq!(
            run.target.extra.last().map(String::as_str),
            Some("ansible_connection=local"),
            "last, so it wins"
        );
    }

    #[test]
    fn a_repository_without_inventory_runs_localhost_and_l_picks_instead() {
        let (folder, run) = run_in_checkout(&[("site.yml", "[]")], &["r"]);
        let implicit = folder.path().join(IMPLICIT_INVENTORY);
        assert_eq!(run.target.inventory.as_deref(), Some(implicit.as_path()));
        assert_eq!(run.target.limit.as_deref(), Some("localhost"));
        let (_, run) = run_in_checkout(
            &[
                ("site.yml", "[]"),
                ("hosts.yml", "all:\n  hosts:\n    db1: {}\n"),
            ],
            &["r", "-i", "hosts.yml", "-l", "db1"],
        );
        assert_eq!(run.target.limit.as_deref(), Some("db1"));
    }

    #[test]
    fn this_machine_has_at_least_its_kernel_host_name() {
        let names = this_machine_names();
        assert!(names.contains(&lock::hostname()), "{names:?}");
        assert!(names.iter().all(|n| !n.is_empty()));
    }

    #[test]
    fn a_password_in_the_url_is_found_to_be_hidden() {
        assert_eq!(
            url_password("https://ci:t0ken@git.example.com/ops/config.git").as_deref(),
            Some("t0ken")
        );
        for plain in [
            "https://git.example.com/a.git",
            "ssh://git@host/a.git",
            "https://ci:@host/a.git",
            "git@host:a.git",
            "/srv/a.git",
        ] {
            assert_eq!(url_password(plain), None, "{plain}");
        }
    }

    #[test]
    fn the_default_folder_is_one_per_repository() {
        let a = default_folder("file:///a.git").ok().unwrap();
        let b = default_folder("file:///b.git").ok().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), b.parent());
    }
}
