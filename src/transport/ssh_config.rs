//! The part of `~/.ssh/config` that decides where and as whom to connect: `Host` blocks with
//! `HostName`, `User`, `Port`, `IdentityFile`, `IdentitiesOnly`, `ProxyJump`, and `Include`; and what
//! it says about trust: `HashKnownHosts`, and whether `HostKeyAlgorithms` /
//! `PubkeyAcceptedAlgorithms` let the SHA-1 `ssh-rsa` algorithm back in.
//!
//! As in OpenSSH, the first value found for an option wins, `IdentityFile` accumulates, and
//! `Host` lines hold several patterns (`*`, `?`, `!negation`). `Match` blocks are not
//! evaluated: their options are ignored rather than applied to hosts they may not fit.

use std::path::{Path, PathBuf};

/// What the config says for one alias, before `%` tokens and `~` are expanded.
#[derive(Debug, Default, PartialEq)]
pub(super) struct HostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<String>,
    pub identities_only: Option<bool>,
    pub hash_known_hosts: Option<bool>,
    /// `HostKeyAlgorithms` as written: a list, or a change to the default (`+`, `-`, `^`).
    pub host_key_algorithms: Option<String>,
    /// `PubkeyAcceptedAlgorithms` (or its old name `PubkeyAcceptedKeyTypes`) as written.
    pub pubkey_accepted_algorithms: Option<String>,
    /// `ProxyJump` as written: `[user@]host[:port]`, comma-separated, or `none`.
    pub proxy_jump: Option<String>,
}

/// Whether an algorithm list as written in ssh_config lets `ssh-rsa` (RSA with SHA-1)
/// in. Like OpenSSH 8.8+, the default leaves it out; `+ssh-rsa`, `^ssh-rsa` or a full
/// list naming it (wildcards allowed) bring it back. Only this question is answered: the
/// order and the other algorithms of a list are not applied.
pub(super) fn allows_ssh_rsa(list: Option<&str>) -> bool {
    let Some(list) = list else {
        return false;
    };
    let names = match list.as_bytes().first() {
        Some(b'+' | b'^') => &list[1..],
        Some(b'-') => return false,
        _ => list,
    };
    names
        .split(',')
        .any(|pattern| wildcard_match(pattern.trim(), "ssh-rsa"))
}

/// OpenSSH's own limit: Include chains deeper than this are a loop.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Read `path` (a missing file is an empty config) and collect the options for `alias`.
/// Relative `Include` paths are taken from the directory of `path`, as `~/.ssh` is for the
/// user's config.
pub(super) fn load(path: &Path, alias: &str, home: Option<&Path>) -> Result<HostConfig, String> {
    let mut config = HostConfig::default();
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(config);
    };
    let parser = Parser {
        alias: alias.to_ascii_lowercase(),
        home,
        base: path.parent().unwrap_or(Path::new(".")),
    };
    parser.read(&mut config, &text, path, 0)?;
    Ok(config)
}

struct Parser<'a> {
    alias: String,
    home: Option<&'a Path>,
    base: &'a Path,
}

impl Parser<'_> {
    fn read(
        &self,
        config: &mut HostConfig,
        text: &str,
        source: &Path,
        depth: usize,
    ) -> Result<(), String> {
        // Options before any Host line apply to every host.
        let mut active = true;
        for (index, line) in text.lines().enumerate() {
            let Some((keyword, args)) = split_line(line) else {
                continue;
            };
            let at = || format!("{}:{}", source.display(), index + 1);
            let first = args.first().cloned();
            match keyword.as_str() {
                "host" => active = matches_any(args.iter().map(String::as_str), &self.alias),
                "match" => active = false,
                _ if !active => {}
                "hostname" => set(&mut config.host_name, first),
                "user" => set(&mut config.user, first),
                "port" => {
                    let port = first.as_deref().unwrap_or("");
                    let port = port
                        .parse::<u16>()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| format!("{}: bad Port {port:?}", at()))?;
                    set(&mut config.port, Some(port));
                }
                "identityfile" => config.identity_files.extend(first),
                "proxyjump" => set(&mut config.proxy_jump, first),
                "identitiesonly" => set(&mut config.identities_only, Some(yes(&first))),
                "hashknownhosts" => set(&mut config.hash_known_hosts, Some(yes(&first))),
                "hostkeyalgorithms" => set(&mut config.host_key_algorithms, first),
                "pubkeyacceptedalgorithms" | "pubkeyacceptedkeytypes" => {
                    set(&mut config.pubkey_accepted_algorithms, first)
                }
                "include" => {
                    if depth >= MAX_INCLUDE_DEPTH {
                        return Err(format!("{}: Include nested too deeply", at()));
                    }
                    for pattern in &args {
                        for file in self.include_files(pattern) {
                            if let Ok(included) = std::fs::read_to_string(&file) {
                                self.read(config, &included, &file, depth + 1)?;
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The files an Include pattern names, sorted; wildcards are honoured in the last
    /// path component, which covers the common `Include config.d/*` form.
    fn include_files(&self, pattern: &str) -> Vec<PathBuf> {
        let path = match expand_tilde(pattern, self.home) {
            p if p.is_absolute() => p,
            p => self.base.join(p),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            return vec![path];
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| wildcard_match(&name, &e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        files.sort();
        files
    }
}

fn yes(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| v.eq_ignore_ascii_case("yes"))
}

fn set<T>(slot: &mut Option<T>, value: Option<T>) {
    if slot.is_none() {
        *slot = value;
    }
}

/// `Keyword value`, `Keyword=value` or `Keyword = "quoted value"`; keywords are
/// case-insensitive and `#` starts a comment.
fn split_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(end);
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest);

    let mut args = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => break,
            Some('"') => {
                chars.next();
                args.push(chars.by_ref().take_while(|c| *c != '"').collect());
            }
            Some(_) => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    word.push(c);
                }
                args.push(word);
            }
        }
    }
    Some((keyword.to_ascii_lowercase(), args))
}

/// A pattern list matches when some pattern matches and no `!negated` one does.
pub(super) fn matches_any<'a>(patterns: impl IntoIterator<Item = &'a str>, name: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if let Some(negated) = pattern.strip_prefix('!') {
            if wildcard_match(negated, name) {
                return false;
            }
        } else if wildcard_match(pattern, name) {
            matched = true;
        }
    }
    matched
}

/// Case-insensitive glob with `*` (any run) and `?` (one character), as OpenSSH's
/// `match_pattern` for host names.
pub(super) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was and which text position it is currently made to cover up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `~` or `~/...` at the start means the home directory.
pub(super) fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => home.join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

/// Values for the `%` tokens OpenSSH allows in `HostName` and `IdentityFile`.
pub(super) struct Tokens<'a> {
    /// `%h`: the remote host name (the alias while expanding `HostName` itself).
    pub host: &'a str,
    /// `%r`: the remote user.
    pub remote_user: &'a str,
    /// `%u`: the local user.
    pub local_user: &'a str,
    /// `%d`: the local home directory.
    pub home: Option<&'a Path>,
}

/// Replace `%h %r %u %d %%`; other tokens are left as written.
pub(super) fn expand_tokens(value: &str, tokens: &Tokens<'_>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') => out.push_str(tokens.host),
            Some('r') => out.push_str(tokens.remote_user),
            Some('u') => out.push_str(tokens.local_user),
            Some('d') if let Some(home) = tokens.home => out.push_str(&home.to_string_lossy()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, alias: &str) -> Result<HostConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        load(&path, alias, Some(Path::new("/home/me")))
    }

    const CONFIG: &str = r#"
# Company hosts
Host web? db1 !web9
    HostName %h.internal.example.com
    User deploy
    Port 2222
    IdentityFile ~/.ssh/deploy_ed25519
    ProxyJump ops@bastion:2200,bastion2

Host web1
    User someone-else
    IdentityFile ~/.ssh/web1_key
    HashKnownHosts yes
    HostKeyAlgorithms +ssh-rsa
    PubkeyAcceptedKeyTypes +ssh-rsa*

Host=bastion
  Hostname = 10.0.0.1
  Port=22

Host *
    User fallback
    Port 22
    IdentityFile "~/.ssh/with space"
    IdentitiesOnly yes
"#;

    #[test]
    fn first_match_wins_and_identity_files_accumulate() {
        let c = parse(CONFIG, "web1").unwrap();
        assert_eq!(
            c,
            HostConfig {
                host_name: Some("%h.internal.example.com".into()),
                user: Some("deploy".into()),
                port: Some(2222),
                identity_files: vec![
                    "~/.ssh/deploy_ed25519".into(),
                    "~/.ssh/web1_key".into(),
                    "~/.ssh/with space".into()
                ],
                identities_only: Some(true),
                hash_known_hosts: Some(true),
                host_key_algorithms: Some("+ssh-rsa".into()),
                pubkey_accepted_algorithms: Some("+ssh-rsa*".into()),
                proxy_jump: Some("ops@bastion:2200,bastion2".into()),
            }
        );
    }

    #[test]
    fn ssh_rsa_comes_back_only_when_the_config_names_it() {
        assert!(!allows_ssh_rsa(None));
        assert!(allows_ssh_rsa(Some("+ssh-rsa")));
        assert!(allows_ssh_rsa(Some("^ssh-rsa,ssh-ed25519")));
        assert!(allows_ssh_rsa(Some("ssh-ed25519,ssh-rsa")));
        assert!(allows_ssh_rsa(Some("+ssh-rsa*")));
        assert!(!allows_ssh_rsa(Some("-ssh-rsa")));
        assert!(!allows_ssh_rsa(Some("ssh-ed25519,rsa-sha2-512")));
        assert!(!allows_ssh_rsa(Some("+ssh-rsa-cert-v01@openssh.com")));
    }

    #[test]
    fn negated_pattern_excludes_and_star_is_the_fallback() {
        let c = parse(CONFIG, "web9").unwrap();
        assert_eq!(c.host_name, None);
        assert_eq!(c.user.as_deref(), Some("fallback"));
        assert_eq!(c.port, Some(22));
    }

    #[test]
    fn equals_syntax_and_case_insensitive_keywords_and_alias() {
        let c = parse(CONFIG, "BASTION").unwrap();
        assert_eq!(c.host_name.as_deref(), Some("10.0.0.1"));
        assert_eq!(c.port, Some(22));
        assert_eq!(c.user.as_deref(), Some("fallback"));
    }

    #[test]
    fn unmatched_alias_gets_only_global_options() {
        let c = parse("Port 2200\nHost other\n  User x\n", "web1").unwrap();
        assert_eq!(c.port, Some(2200));
        assert_eq!(c.user, None);
    }

    #[test]
    fn match_blocks_are_not_applied() {
        let c = parse("Match user bob\n  Port 1\nHost *\n  Port 2\n", "h").unwrap();
        assert_eq!(c.port, Some(2));
    }

    #[test]
    fn bad_port_names_the_line() {
        let err = parse("Host *\n  Port ssh\n", "h").unwrap_err();
        assert!(err.ends_with("config:2: bad Port \"ssh\""), "{err}");
    }

    #[test]
    fn trailing_comments_are_ignored() {
        let c = parse("Host h # the box\n  User u # me\n", "h").unwrap();
        assert_eq!(c.user.as_deref(), Some("u"));
    }

    #[test]
    fn include_with_glob_relative_to_config_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config.d")).unwrap();
        std::fs::write(
            dir.path().join("config.d/a.conf"),
            "Host h\n  User from-a\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("config.d/b.conf"),
            "Host h\n  User from-b\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("config.d/skip.txt"), "Host *\n  User no\n").unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "Include config.d/*.conf\nHost *\n  Port 2022\n").unwrap();
        let c = load(&path, "h", None).unwrap();
        assert_eq!(c.user.as_deref(), Some("from-a"));
        assert_eq!(c.port, Some(2022));
    }

    #[test]
    fn include_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, "Include config\n").unwrap();
        assert!(load(&path, "h", None).unwrap_err().contains("too deeply"));
    }

    #[test]
    fn missing_file_is_empty() {
        let c = load(Path::new("/nonexistent/config"), "h", None).unwrap();
        assert_eq!(c, HostConfig::default());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("web*", "web12"));
        assert!(wildcard_match("*.example.com", "a.b.EXAMPLE.com"));
        assert!(wildcard_match("w?b", "web"));
        assert!(wildcard_match("*a*b", "xxaxxab"));
        assert!(!wildcard_match("web?", "web"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(matches_any(["db*", "web*", "!web9"], "web1"));
        assert!(!matches_any(["web*", "!web9"], "web9"));
        assert!(!matches_any(["!web9"], "web1"));
    }

    #[test]
    fn tokens_and_tilde() {
        let home = Path::new("/home/me");
        let t = Tokens {
            host: "web1",
            remote_user: "deploy",
            local_user: "me",
            home: Some(home),
        };
        assert_eq!(
            expand_tokens("%d/.ssh/%r@%h-%u %% %p", &t),
            "/home/me/.ssh/deploy@web1-me % %p"
        );
        assert_eq!(
            expand_tilde("~/.ssh/id", Some(home)),
            PathBuf::from("/home/me/.ssh/id")
        );
        assert_eq!(expand_tilde("~", Some(home)), PathBuf::from("/home/me"));
        assert_eq!(expand_tilde("~bob/x", Some(home)), PathBuf::from("~bob/x"));
        assert_eq!(expand_tilde("~/x", None), PathBuf::from("~/x"));
    }
}
