//! The command line: parse, load, lock, run, report, and choose the exit code.

use crate::error::{Exit, InputError};
use crate::inventory::Inventory;
use crate::lock::{LockError, RunLock};
use crate::plan::{HostPlan, NodeState, Selection};
use crate::playbook::Playbook;
use crate::playbook::vars::extra_vars;
use crate::report::{Human, Json, Reporter, TaskStatus};
use crate::runner::{self, RunOptions, RunSettings};
use crate::vault::{
    self,
    command::{PasswordArgs, VaultCommand},
};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const EXIT_CODES: &str = "\
Exit codes:
  0    success (diff: no drift)
  1    a task failed or a host was unreachable
  2    diff found drift and nothing failed
  3    bad input (playbook, inventory, vars, template, usage, -l matching no host); nothing was touched
  4    another run holds the lock (this playbook's, or a host's: that host is left alone)
  130  interrupted";

#[derive(Parser)]
#[command(
    name = "converge",
    version,
    about = "Converge Linux hosts to a YAML playbook over SSH: diff first, change only what differs",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Converge every host of the inventory (the default: `converge site.yml`).
    #[command(after_help = EXIT_CODES)]
    Apply(RunArgs),
    /// Check mode: change nothing, print unified diffs of what differs; exit 2 on drift.
    /// Takes no host lock, so it runs beside another controller's apply.
    #[command(after_help = EXIT_CODES)]
    Diff(RunArgs),
    /// Show each host's task DAG, without connecting.
    Graph(GraphArgs),
    /// Parse and type-check the playbook and inventory, without connecting.
    Validate(TargetArgs),
    /// Encrypt and decrypt files and values with Ansible Vault.
    Vault {
        #[command(subcommand)]
        command: VaultCommand,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// The playbook (YAML).
    playbook: PathBuf,
    /// The inventory; default: inventory.yml beside the playbook.
    #[arg(short, long)]
    inventory: Option<PathBuf>,
    /// Hosts or groups, comma-separated, globs allowed, `!name` excludes.
    #[arg(short, long)]
    limit: Option<String>,
    /// Extra variables: KEY=VALUE (a string) or @FILE (typed YAML); highest precedence.
    #[arg(short = 'e', long = "extra-vars")]
    extra: Vec<String>,
    #[command(flatten)]
    vault: PasswordArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Only tasks with one of these tags (comma-separated).
    #[arg(short, long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Leave out tasks with one of these tags.
    #[arg(long, value_delimiter = ',')]
    skip_tags: Vec<String>,
    /// Hosts converged at once.
    #[arg(short, long, default_value_t = 50)]
    forks: usize,
    /// One JSON document on stdout.
    #[arg(long)]
    json: bool,
    /// Print nothing when nothing changed and nothing failed.
    #[arg(short, long)]
    quiet: bool,
    /// More detail on stderr (connections, timings, warnings).
    #[arg(short, long)]
    verbose: bool,
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    color: ColorChoice,
    /// Trust and record the host key of a host not in known_hosts yet.
    #[arg(long)]
    accept_new_host_keys: bool,
    /// Connection timeout in seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

#[derive(Args)]
struct GraphArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
    format: GraphFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Text,
    Dot,
}

const SUBCOMMANDS: &[&str] = &["apply", "diff", "graph", "validate", "vault", "help"];

/// `converge site.yml` means `converge apply site.yml`.
fn with_default_subcommand(mut args: Vec<String>) -> Vec<String> {
    let first = args.get(1).map(String::as_str);
    let needs_apply = match first {
        None => false,
        Some(a) if SUBCOMMANDS.contains(&a) => false,
        Some("-h" | "--help" | "-V" | "--version") => false,
        Some(_) => true,
    };
    if needs_apply {
        args.insert(1, "apply".into());
    }
    args
}

pub fn main() -> i32 {
    let args = with_default_subcommand(std::env::args().collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => Exit::BadInput.code(),
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Failed.code();
        }
    };
    let exit = runtime.block_on(dispatch(cli));
    exit.code()
}

fn report_input_error(error: InputError) -> Exit {
    eprintln!("{:?}", miette::Report::new(error));
    Exit::BadInput
}

struct Loaded {
    playbook: Playbook,
    inventory: Inventory,
    inventory_path: PathBuf,
    extra: crate::playbook::vars::Layer,
}

fn load(target: &TargetArgs) -> Result<Loaded, InputError> {
    vault::unlock(target.vault.keyring()?);
    let playbook = Playbook::load(&target.playbook)?;
    let inventory_path = target
        .inventory
        .clone()
        .unwrap_or_else(|| playbook.dir.join("inventory.yml"));
    if !inventory_path.exists() {
        return Err(
            InputError::new(format!("no inventory at {}", inventory_path.display()))
                .help("give one with -i INVENTORY, or put inventory.yml beside the playbook"),
        );
    }
    let inventory = Inventory::load(&inventory_path)?;
    let extra = extra_vars(&target.extra)?;
    Ok(Loaded {
        playbook,
        inventory,
        inventory_path,
        extra,
    })
}

/// Plays whose `hosts:` names something the inventory lacks: not an error (a playbook
/// may name groups only some inventories have), but never silent, since it is usually
/// a typo and such a play runs on no host.
fn unmatched_hosts_warnings(loaded: &Loaded) -> Vec<String> {
    loaded
        .playbook
        .plays
        .iter()
        .filter_map(|play| {
            let (pattern, span) = &play.hosts;
            let selection = loaded.inventory.select(pattern, Some(span)).ok()?;
            (!selection.unmatched.is_empty()).then(|| {
                format!(
                    "warning: {}: play `{}`: `{}` names no host or group of {}",
                    span.position(),
                    play.name,
                    selection.unmatched.join("`, `"),
                    loaded.inventory_path.display()
                )
            })
        })
        .collect()
}

async fn dispatch(cli: Cli) -> Exit {
    match cli.command {
        Command::Apply(args) => run(args, false).await,
        Command::Diff(args) => run(args, true).await,
        Command::Graph(args) => graph(&args),
        Command::Validate(args) => validate(&args),
        Command::Vault { command } => vault::command::run(command),
    }
}

fn options(target: &TargetArgs, loaded: &Loaded, run: Option<&RunArgs>) -> RunOptions {
    RunOptions {
        limit: target.limit.clone(),
        selection: Selection {
            tags: run.map(|r| r.tags.clone()).unwrap_or_default(),
            skip_tags: run.map(|r| r.skip_tags.clone()).unwrap_or_default(),
        },
        extra: loaded.extra.clone(),
        forks: run.map_or(50, |r| r.forks),
        timeout: Duration::from_secs(run.map_or(10, |r| r.timeout)),
        accept_new_host_keys: run.is_some_and(|r| r.accept_new_host_keys),
        verbose: run.is_some_and(|r| r.verbose),
        quiet: run.is_some_and(|r| r.quiet),
    }
}

async fn run(args: RunArgs, check: bool) -> Exit {
    let started = Instant::now();
    let loaded = match load(&args.target) {
        Ok(l) => l,
        Err(e) => return report_input_error(e),
    };
    if !args.quiet {
        for warning in unmatched_hosts_warnings(&loaded) {
            eprintln!("{warning}");
        }
    }
    let _lock = match RunLock::acquire(&args.target.playbook, &loaded.inventory_path) {
        Ok(lock) => lock,
        Err(LockError::Held { path, holder }) => {
            eprintln!(
                "error: another converge run holds the lock for this playbook and inventory: \
                 {holder} ({})\n  help: wait for it to end; the lock goes with its process",
                path.display()
            );
            return Exit::Locked;
        }
        Err(LockError::Io(e)) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let color = match args.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let reporter: Box<dyn Reporter> = if args.json {
        Box::new(Json)
    } else {
        Box::new(Human::new(
            color,
            args.quiet,
            std::io::stdout().is_terminal(),
        ))
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: finishing the task in progress");
            flag.store(true, Ordering::SeqCst);
            // A second Ctrl-C means now.
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(Exit::Interrupted.code());
            }
        }
    });
    let options = options(&args.target, &loaded, Some(&args));
    let settings = RunSettings {
        check,
        reporter: reporter.as_ref(),
        interrupted: interrupted.clone(),
    };
    let result = match runner::run_playbook(
        &loaded.playbook,
        &loaded.inventory,
        &options,
        &settings,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return report_input_error(e),
    };
    reporter.finish(&result.hosts, check, started.elapsed());
    if args.verbose {
        eprintln!("finished in {:.2} s", started.elapsed().as_secs_f64());
    }
    let mut exit = Exit::Success;
    for host in &result.hosts {
        let recap = host.recap();
        if recap.failed > 0 || recap.unreachable {
            exit = exit.worst(Exit::Failed);
        }
        if recap.locked {
            exit = exit.worst(Exit::Locked);
        }
        if check && host.tasks.iter().any(|t| t.status == TaskStatus::Changed) {
            exit = exit.worst(Exit::Drift);
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        exit = exit.worst(Exit::Interrupted);
    }
    exit
}

/// Each play's name with its hosts' plans.
type PlayPlans = Vec<(String, Vec<HostPlan>)>;

/// Every host's plan for every play, without connecting.
fn offline_plans(target: &TargetArgs) -> Result<(Loaded, PlayPlans), InputError> {
    let loaded = load(target)?;
    for warning in unmatched_hosts_warnings(&loaded) {
        eprintln!("{warning}");
    }
    let options = options(target, &loaded, None);
    let mut all = Vec::new();
    for play in &loaded.playbook.plays {
        let hosts = runner::play_hosts(&loaded.inventory, play, options.limit.as_deref())?;
        let plans = runner::plans(
            &loaded.playbook,
            play,
            &loaded.inventory,
            &hosts,
            &options,
            None,
        )?;
        all.push((play.name.clone(), plans));
    }
    Ok((loaded, all))
}

fn validate(target: &TargetArgs) -> Exit {
    match offline_plans(target) {
        Ok((loaded, plays)) => {
            let hosts: std::collections::BTreeSet<&str> = plays
                .iter()
                .flat_map(|(_, p)| p.iter().map(|h| h.host.as_str()))
                .collect();
            let unresolved = plays
                .iter()
                .flat_map(|(_, p)| p.iter().flat_map(|h| h.nodes.iter()))
                .filter(|n| matches!(n.state, NodeState::Unresolved))
                .count();
            println!(
                "{}: ok ({} plays, {} tasks, {} hosts{})",
                target.playbook.display(),
                loaded.playbook.plays.len(),
                loaded
                    .playbook
                    .plays
                    .iter()
                    .map(|p| p.tasks.len() + p.handlers.len())
                    .sum::<usize>(),
                hosts.len(),
                if unresolved > 0 {
                    format!(
                        "; {unresolved} task nodes depend on facts and are checked when connected"
                    )
                } else {
                    String::new()
                }
            );
            Exit::Success
        }
        Err(e) => report_input_error(e),
    }
}

fn graph(args: &GraphArgs) -> Exit {
    let (_, plays) = match offline_plans(&args.target) {
        Ok(p) => p,
        Err(e) => return report_input_error(e),
    };
    for (play, plans) in &plays {
        for plan in plans {
            match args.format {
                GraphFormat::Text => print!("{}", crate::plan::render_text(play, plan)),
                GraphFormat::Dot => print!("{}", crate::plan::render_dot(play, plan)),
            }
        }
    }
    Exit::Success
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_help_lists_the_exit_codes() {
        let cli = Cli::command();
        assert!(cli.get_after_help().is_some());
        for sub in ["apply", "diff"] {
            let help = cli
                .find_subcommand(sub)
                .and_then(|c| c.get_after_help())
                .map(ToString::to_string)
                .unwrap_or_default();
            assert!(help.contains("130"), "{sub}: {help}");
        }
    }

    #[test]
    fn a_play_whose_hosts_match_nothing_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let playbook = dir.path().join("site.yml");
        std::fs::write(
            &playbook,
            "- hosts: webz\n  tasks: []\n- hosts: web\n  tasks: []\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("inventory.yml"),
            "all:\n  children:\n    web:\n      hosts: { w1: {} }\n",
        )
        .unwrap();
        let target = TargetArgs {
            playbook,
            inventory: None,
            limit: None,
            extra: Vec::new(),
            vault: PasswordArgs::default(),
        };
        let warnings = unmatched_hosts_warnings(&load(&target).unwrap());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("site.yml:1:10: play `webz`: `webz` names no host or group"));
    }
}
