//! The `git` command, driven for `converge pull`: list the remote's refs, resolve the
//! wanted one, fetch it, check its signature, check it out. Every value is one argv
//! element, the repository's URL after `--`; git never prompts, so a timer never hangs
//! on a password or a host key question.

use super::Stop;
use crate::error::InputError;
use crate::report::redact;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Where a fetched commit is kept, so the next fetch negotiates from it.
const PULLED_REF: &str = "refs/converge/pulled";

pub struct Git<'a> {
    url: &'a str,
    /// The URL's password, hidden in every message.
    secrets: Vec<String>,
    /// The URL as messages show it.
    shown: String,
    checkout: PathBuf,
    /// Seconds, for ssh's connection and for a stalled https transfer.
    timeout: u64,
}

/// The remote's refs as `git ls-remote` lists them: (object id, ref name).
#[derive(Debug, PartialEq, Eq)]
pub struct RemoteRefs(Vec<(String, String)>);

/// What to fetch, and the commit the remote advertised for it.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// The ref name (or the commit id) given to `git fetch`.
    pub source: String,
    /// The commit, peeled from an annotated tag.
    pub commit: String,
}

/// A refusal before git is even asked: a URL git would read as an option.
pub fn check_url(url: &str) -> Result<(), InputError> {
    if url.is_empty() || url.starts_with('-') {
        return Err(InputError::new(format!(
            "`{url}` is not a repository URL: it would be read as an option of git"
        ))
        .help("give a URL (https://..., ssh://..., git@host:path, file:///path) or a path"));
    }
    Ok(())
}

impl RemoteRefs {
    pub fn parse(listing: &str) -> RemoteRefs {
        RemoteRefs(
            listing
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(id, name)| (id.trim().to_string(), name.trim().to_string()))
                .collect(),
        )
    }

    fn id_of(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(_, n)| n == name)
            .map(|(id, _)| id.as_str())
    }

    /// The commit `name` stands for: an annotated tag's `^{}` line when there is one.
    fn commit_of(&self, name: &str) -> Option<String> {
        self.id_of(&format!("{name}^{{}}"))
            .or_else(|| self.id_of(name))
            .map(str::to_string)
    }

    /// The ref to fetch for `wanted` (a branch, a tag, a full ref name or a full commit
    /// id; a branch wins over a tag of the same name, as in Ansible's git module), or the
    /// remote's HEAD when nothing is wanted.
    pub fn resolve(&self, wanted: Option<&str>, url: &str) -> Result<Target, InputError> {
        let Some(wanted) = wanted else {
            return self
                .commit_of("HEAD")
                .map(|commit| Target {
                    source: "HEAD".into(),
                    commit,
                })
                .ok_or_else(|| {
                    InputError::new(format!(
                        "{url} has no default branch (its HEAD names no commit)"
                    ))
                    .help(self.names_help("give one with --checkout"))
                });
        };
        let candidates = if wanted == "HEAD" || wanted.starts_with("refs/") {
            vec![wanted.to_string()]
        } else {
            vec![
                format!("refs/heads/{wanted}"),
                format!("refs/tags/{wanted}"),
            ]
        };
        if let Some((source, commit)) = candidates
            .into_iter()
            .find_map(|name| self.commit_of(&name).map(|commit| (name, commit)))
        {
            return Ok(Target { source, commit });
        }
        if is_commit_id(wanted) {
            return Ok(Target {
                source: wanted.to_ascii_lowercase(),
                commit: wanted.to_ascii_lowercase(),
            });
        }
        Err(InputError::new(format!(
            "--checkout {wanted}: {url} has no branch or tag of that name"
        ))
        .help(self.names_help(
            "give a branch, a tag, or a full commit id (an abbreviated one cannot be fetched)",
        )))
    }

    fn names_help(&self, lead: &str) -> String {
        let names = |prefix: &str| -> Vec<&str> {
            self.0
                .iter()
                .filter_map(|(_, n)| n.strip_prefix(prefix))
                .filter(|n| !n.ends_with("^{}"))
                .take(10)
                .collect()
        };
        let (branches, tags) = (names("refs/heads/"), names("refs/tags/"));
        let list = |v: &[&str]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        format!(
            "{lead}; branches: {}; tags: {}",
            list(&branches),
            list(&tags)
        )
    }
}

/// A full SHA-1 or SHA-256 commit id.
fn is_commit_id(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.chars().all(|c| c.is_ascii_hexdigit())
}

impl<'a> Git<'a> {
    pub fn new(url: &'a str, checkout: PathBuf, timeout: u64) -> Git<'a> {
        let secrets: Vec<String> = super::url_password(url).into_iter().collect();
        Git {
            url,
            shown: redact(url, &secrets),
            secrets,
            checkout,
            timeout,
        }
    }

    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    pub fn checkout_dir(&self) -> &Path {
        &self.checkout
    }

    /// `git ARGS` in the checkout, unable to prompt.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("git");
        // An empty core.askPass also keeps git from SSH_ASKPASS; GIT_ASKPASS beats both.
        command
            .args(["-c", "core.askPass="])
            .args(args)
            .current_dir(&self.checkout)
            .stdin(Stdio::null())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env_remove("GIT_ASKPASS")
            .env("GIT_HTTP_LOW_SPEED_LIMIT", "1")
            .env("GIT_HTTP_LOW_SPEED_TIME", self.timeout.to_string());
        // The user's own ssh command is theirs to make non-interactive.
        if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
            command.env(
                "GIT_SSH_COMMAND",
                format!("ssh -o BatchMode=yes -o ConnectTimeout={}", self.timeout),
            );
        }
        command
    }

    fn run(&self, args: &[&str]) -> Result<Output, Stop> {
        self.command(args).output().map_err(|e| {
            Stop::Failed(if e.kind() == std::io::ErrorKind::NotFound {
                "converge pull needs the git command, which is not installed\n  \
                 help: apt-get install git"
                    .to_string()
            } else {
                format!("cannot run git: {e}")
            })
        })
    }

    /// `git ARGS`, its stdout when it succeeds, else what `fail` makes of its stderr.
    fn stdout(&self, args: &[&str], fail: impl FnOnce(String) -> Stop) -> Result<String, Stop> {
        let out = self.run(args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            Err(fail(redact(stderr.trim(), &self.secrets)))
        }
    }

    /// An empty repository for the checkout, the first time. Whatever else is there is
    /// left alone, since every pull drops what the checkout holds besides the commit.
    pub fn init(&self) -> Result<(), Stop> {
        if self.checkout.join(".git").is_dir() {
            return Ok(());
        }
        std::fs::create_dir(&self.checkout).map_err(|e| {
            Stop::Failed(format!(
                "cannot create the checkout {}: {e}\n  help: remove what is there, or give \
                 another --directory",
                self.checkout.display()
            ))
        })?;
        self.stdout(&["init", "--quiet"], |err| {
            Stop::Failed(format!(
                "git init in {} failed: {err}",
                self.checkout.display()
            ))
        })
        .map(drop)
    }

    /// Every ref of the remote; failing here means the repository cannot be reached.
    pub fn remote_refs(&self) -> Result<RemoteRefs, Stop> {
        let listing = self.stdout(&["ls-remote", "--", self.url], |err| {
            Stop::Failed(format!("cannot reach the repository {}: {err}", self.shown))
        })?;
        Ok(RemoteRefs::parse(&listing))
    }

    /// Fetch `target`; the commit fetched (a push since the listing may have moved it).
    pub fn fetch(&self, target: &Target) -> Result<String, Stop> {
        let refspec = format!("+{}:{PULLED_REF}", target.source);
        self.stdout(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                self.url,
                &refspec,
            ],
            |err| {
                if is_commit_id(&target.source) {
                    Stop::Input(
                        InputError::new(format!(
                            "--checkout {}: {} does not have that commit, or does not give it \
                             by its id: {err}",
                            target.source, self.shown
                        ))
                        .help("give a branch or a tag that contains the commit"),
                    )
                } else {
                    Stop::Failed(format!(
                        "cannot fetch {} from {}: {err}",
                        target.source, self.shown
                    ))
                }
            },
        )?;
        let peeled = format!("{PULLED_REF}^{{commit}}");
        let commit = self.stdout(&["rev-parse", "--verify", "--quiet", &peeled], |err| {
            Stop::Failed(format!(
                "{} fetched from {} is not a commit: {err}",
                target.source, self.shown
            ))
        })?;
        Ok(commit.trim().to_string())
    }

    /// `git verify-commit`: a good signature from a key of the local gpg keyring.
    pub fn verify(&self, commit: &str) -> Result<(), Stop> {
        self.stdout(&["verify-commit", "--", commit], |err| {
            let said = if err.is_empty() {
                "it carries no signature".to_string()
            } else {
                err
            };
            Stop::Input(
                InputError::new(format!(
                    "--verify-commit: commit {commit} of {} has no good signature: {said}",
                    self.shown
                ))
                .help(
                    "sign the commit (git commit -S) with a key whose public half is in this \
                     machine's gpg keyring (gpg --import), or leave out --verify-commit",
                ),
            )
        })
        .map(drop)
    }

    /// The working tree exactly at `commit`: local changes and stray files are dropped,
    /// since the checkout is converge's copy of the repository, never edited in place.
    pub fn checkout(&self, commit: &str) -> Result<(), Stop> {
        let fail = |err: String| {
            Stop::Failed(format!(
                "cannot check out {commit} in {}: {err}",
                self.checkout.display()
            ))
        };
        self.stdout(
            &["checkout", "--quiet", "--force", "--detach", commit],
            fail,
        )?;
        self.stdout(&["clean", "--quiet", "-ffdx"], fail).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
1111111111111111111111111111111111111111\tHEAD
1111111111111111111111111111111111111111\trefs/heads/main
2222222222222222222222222222222222222222\trefs/heads/v1
3333333333333333333333333333333333333333\trefs/tags/v1
4444444444444444444444444444444444444444\trefs/tags/v1^{}
5555555555555555555555555555555555555555\trefs/tags/light
";

    fn resolve(wanted: Option<&str>) -> Result<Target, InputError> {
        RemoteRefs::parse(LISTING).resolve(wanted, "file:///r.git")
    }

    fn target(source: &str, commit: char) -> Target {
        Target {
            source: source.into(),
            commit: commit.to_string().repeat(40),
        }
    }

    #[test]
    fn nothing_wanted_is_the_remote_head() {
        assert_eq!(resolve(None).unwrap(), target("HEAD", '1'));
    }

    #[test]
    fn a_branch_wins_over_a_tag_of_the_same_name() {
        assert_eq!(resolve(Some("v1")).unwrap(), target("refs/heads/v1", '2'));
        assert_eq!(
            resolve(Some("refs/tags/v1")).unwrap(),
            target("refs/tags/v1", '4'),
            "an annotated tag is peeled to its commit"
        );
        assert_eq!(
            resolve(Some("light")).unwrap(),
            target("refs/tags/light", '5')
        );
    }

    #[test]
    fn a_full_commit_id_is_fetched_by_id() {
        let id = "ABCDEF0123456789abcdef0123456789abcdef01";
        let t = resolve(Some(id)).unwrap();
        assert_eq!(t.source, id.to_ascii_lowercase());
        assert_eq!(t.commit, id.to_ascii_lowercase());
    }

    #[test]
    fn an_unknown_ref_names_what_there_is() {
        let err = resolve(Some("mian")).unwrap_err();
        assert_eq!(
            err.message,
            "--checkout mian: file:///r.git has no branch or tag of that name"
        );
        let help = err.help.unwrap();
        assert!(
            help.ends_with("branches: main, v1; tags: v1, light"),
            "{help}"
        );
        let abbreviated = resolve(Some("abcdef0")).unwrap_err();
        assert!(abbreviated.help.unwrap().contains("abbreviated"));
    }

    #[test]
    fn a_remote_without_head_asks_for_a_ref() {
        let refs = RemoteRefs::parse("1111111111111111111111111111111111111111\trefs/heads/dev\n");
        let err = refs.resolve(None, "r").unwrap_err();
        assert_eq!(
            err.message,
            "r has no default branch (its HEAD names no commit)"
        );
        assert!(
            err.help
                .unwrap()
                .starts_with("give one with --checkout; branches: dev")
        );
    }

    #[test]
    fn a_url_git_would_read_as_an_option_is_refused() {
        for url in ["--upload-pack=touch /tmp/x", "-u", ""] {
            assert!(check_url(url).is_err(), "{url}");
        }
        for url in ["file:///srv/r.git", "git@host:r.git", "/srv/r.git"] {
            assert!(check_url(url).is_ok(), "{url}");
        }
    }
}
