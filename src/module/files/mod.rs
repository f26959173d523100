//! Managed files on a host: probe their state, diff it, write them atomically.
//!
//! Every module that puts a file on a host (file, template, systemd_unit, logrotate,
//! nginx_vhost, release) goes through here, so all of them write the same safe way
//! ([`write`]'s module doc says how).

mod local;
mod write;

pub use local::{LocalFile, load as load_local};
pub use write::{
    PRELUDE, chown_chmod_script, dir_script, enter, link_script, put_back_script, remove_script,
    touch_dir_script, write_script,
};

use super::{Command, Diff, HostView, Mode, Plan, Probed, Resource, Resources, probe::fields_of};
use crate::quote::quote;
use crate::transport::ExecOutput;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// Contents larger than this are compared by checksum only.
const CONTENT_LIMIT: u64 = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Absent,
    File,
    Dir,
    Link,
    Other,
}

/// A path's state on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileState {
    pub kind: Kind,
    pub mode: Option<String>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub sha256: Option<String>,
    /// The content, when it is a regular file small enough to diff.
    pub content: Option<Vec<u8>>,
    pub link_target: Option<String>,
}

/// How much of a file a probe reads besides type, owner, group, mode and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Metadata,
    /// The content too (small files only), for parsing or a diff. Always read, even
    /// when it matches: the probe must not depend on the desired content, which may
    /// change once facts are known, or the first round trip's reading could not be reused.
    Content,
}

/// The command printing the content of the path `quoted` (already quoted) without
/// following a link swapped in after it was looked at, and without blocking on a FIFO or
/// opening a device through one (opening alone can have effects: /dev/watchdog).
pub fn read_nofollow(quoted: &str) -> String {
    // 64 KiB blocks: dd's default of 512 bytes costs a 5 MiB build ~20k system calls.
    format!("dd if={quoted} iflag=nofollow,nonblock bs=64K status=none")
}

/// What a probe prints of a path: type, mode, owner, group and size.
const STAT: &str = "%F/%a/%U/%G/%s";

/// The command printing `path`'s [`STAT`] line, or failing when nothing is there. Through
/// `cvg_stat` when the batch it runs in stat'ed its paths in one process ahead (see
/// [`stat_ahead`]; it prints `-` for a path found absent there), else, or where it runs
/// alone, with a `stat` of its own. The path also goes hex-encoded, for the batch to find.
fn stat_line(path: &str) -> String {
    let p = quote(path);
    format!(
        "{{ cvg_stat {} {p} || stat -c '{STAT}' -- {p}; }} 2>/dev/null",
        hex::encode(path)
    )
}

/// The paths the probe snippet `probe` stats through `cvg_stat` (see [`stat_line`]).
pub fn stated(probe: &str) -> impl Iterator<Item = String> + '_ {
    probe.match_indices("cvg_stat ").filter_map(|(at, m)| {
        let hex = probe[at + m.len()..].split(' ').next()?;
        let path = String::from_utf8(hex::decode(hex).ok()?).ok()?;
        path.starts_with('/').then_some(path)
    })
}

/// The lines that stat `paths` with one process for the probes after them, which then look
/// their line up in `cvg_stats` rather than start a `stat` each: on a host a process costs
/// ~0.8 ms, and a rerun of a deployment stats a dozen paths. A path is found by the
/// newline before it and the tab after it, so one holding either is left to its own `stat`.
pub fn stat_ahead(paths: &[String]) -> String {
    let paths: Vec<&String> = paths.iter().filter(|p| !p.contains(['\n', '\t'])).collect();
    if paths.len() < 2 {
        return String::new();
    }
    let keys: Vec<String> = paths.iter().map(hex::encode).collect();
    format!(
        "cvg_ahead=' {} '\ncvg_stats=\"\n$(stat -c {} -- {} 2>/dev/null)\n\"\n\
         cvg_stat() {{\n  case $cvg_ahead in *\" $1 \"*) ;; *) return 1 ;; esac\n  \
         case $cvg_stats in\n    *\"\n$2\t\"*) cvg_v=${{cvg_stats#*\"\n$2\t\"}}; printf '%s\\n' \"${{cvg_v%%\"\n\"*}}\" ;;\n    \
         *) echo - ;;\n  esac\n}}\n",
        keys.join(" "),
        quote(&format!("%n\t{STAT}")),
        crate::quote::quote_all(&paths)
    )
}

/// A probe snippet for `path`, its fields prefixed with `tag.` so several paths can
/// share one probe. One `stat` (shared by the batch, see [`stat_line`]) and one read per
/// regular file, no link followed: probes of many tasks run in one exec, and process
/// starts are what it costs (hence pipes printed after their field's name, not command
/// substitutions, which fork a shell).
/// A file whose content is read gets its checksum computed here, not on the host.
pub fn probe(tag: &str, path: &str, read: Read) -> String {
    let p = quote(path);
    let bytes = read_nofollow(&p);
    // sha256sum prints `HASH  -`: the field is read up to the space.
    let hash = format!("printf '{tag}.sha256='; {bytes} | sha256sum");
    let regular = match read {
        Read::Metadata => hash,
        Read::Content => format!(
            "if [ \"${{s##*/}}\" -le {CONTENT_LIMIT} ]; then printf '{tag}.content:b64='; {bytes} | base64 -w0; echo; \
             else {hash}; fi"
        ),
    };
    format!(
        "if s=$({}) && [ \"$s\" != - ]; then echo \"{tag}.stat=$s\"; \
         case $s in \
         'regular file/'*|'regular empty file/'*) {regular};; \
         'symbolic link/'*) printf '{tag}.target:b64='; readlink {p} | base64 -w0; echo;; \
         esac; else echo {tag}.stat=absent; fi\n",
        stat_line(path)
    )
}

/// What [`probe`] of `path` under `tag` read: the path, and the names of the owner and
/// group it compares with, unless nothing was there (no names are shown then, so creating
/// that user or group leaves the reading standing).
pub fn reads(
    found: &Probed,
    tag: &str,
    path: &str,
    owner: &Option<String>,
    group: &Option<String>,
) -> Vec<Resource> {
    // The stat line alone: parsing every field would decode the content a second time.
    let absent = format!("{tag}.stat=absent");
    if found.stdout.lines().any(|l| l == absent) {
        return vec![Resource::Path(path.to_string())];
    }
    Resources::for_path(path, owner.as_deref(), group.as_deref()).needs
}

impl FileState {
    /// Read the fields [`probe`] printed under `tag`.
    pub fn from_probe(probed: &Probed, tag: &str) -> FileState {
        FileState::from_fields(&fields_of(&probed.stdout), tag)
    }

    pub fn from_fields(fields: &HashMap<String, Vec<u8>>, tag: &str) -> FileState {
        let text = |k: &str| {
            fields
                .get(&format!("{tag}.{k}"))
                .map(|v| String::from_utf8_lossy(v).into_owned())
        };
        // `TYPE/MODE/OWNER/GROUP/SIZE`; only the type may hold spaces, none holds `/`.
        let stat = text("stat").unwrap_or_default();
        let mut parts = stat.rsplitn(5, '/');
        let (_size, group, owner, mode, type_name) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        );
        let kind = match type_name {
            Some("regular file" | "regular empty file") => Kind::File,
            Some("directory") => Kind::Dir,
            Some("symbolic link") => Kind::Link,
            Some(_) => Kind::Other,
            None => Kind::Absent,
        };
        let present = |v: Option<&str>| {
            (kind != Kind::Absent)
                .then(|| v.map(str::to_string))
                .flatten()
        };
        let content = fields.get(&format!("{tag}.content")).cloned();
        FileState {
            kind,
            mode: present(mode).map(|m| format!("{m:0>4}")),
            owner: present(owner),
            group: present(group),
            sha256: text("sha256")
                .and_then(|h| h.split_whitespace().next().map(str::to_string))
                .or_else(|| content.as_deref().map(sha256_hex)),
            content,
            link_target: text("target").map(|t| t.trim_end_matches('\n').to_string()),
        }
    }

    /// Nothing at the path.
    pub fn absent() -> FileState {
        FileState {
            kind: Kind::Absent,
            mode: None,
            owner: None,
            group: None,
            sha256: None,
            content: None,
            link_target: None,
        }
    }

    pub fn exists(&self) -> bool {
        self.kind != Kind::Absent
    }
}

/// What a file written to a host holds: bytes made for it (a template, inline text), or
/// a file on this machine, streamed as it is sent.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Bytes(&'a [u8]),
    Local(&'a LocalFile),
}

impl<'a> Source<'a> {
    pub fn sha256(self) -> Cow<'a, str> {
        match self {
            Source::Bytes(bytes) => Cow::Owned(sha256_hex(bytes)),
            Source::Local(file) => Cow::Borrowed(&file.sha256),
        }
    }

    /// The content, unless it is a local file too large to diff.
    pub fn shown(self) -> Option<&'a [u8]> {
        match self {
            Source::Bytes(bytes) => Some(bytes),
            Source::Local(file) => file.small.as_deref(),
        }
    }
}

/// [`Source`] owned by a task.
#[derive(Debug)]
pub enum Content {
    Bytes(Vec<u8>),
    Local(Arc<LocalFile>),
}

impl Content {
    pub fn source(&self) -> Source<'_> {
        match self {
            Content::Bytes(bytes) => Source::Bytes(bytes),
            Content::Local(file) => Source::Local(file),
        }
    }
}

/// What a managed regular file should be.
#[derive(Debug, Clone)]
pub struct DesiredFile<'a> {
    pub path: &'a str,
    pub content: Source<'a>,
    pub mode: Option<Mode>,
    pub owner: Option<&'a str>,
    pub group: Option<&'a str>,
    /// A shell line run on the candidate (`%s` is its path) before it goes live.
    pub validate: Option<&'a str>,
    /// The content holds a secret: diff without lines.
    pub secret: bool,
}

impl<'a> DesiredFile<'a> {
    /// A system configuration file (a unit, a logrotate stanza, an nginx site): root's,
    /// mode 0644, diffed without lines when it holds a secret.
    pub fn system_config(path: &'a str, content: &'a [u8], host: &HostView<'_>) -> DesiredFile<'a> {
        DesiredFile {
            path,
            content: Source::Bytes(content),
            mode: Some(Mode(0o644)),
            owner: Some("root"),
            group: Some("root"),
            validate: None,
            secret: host.is_secret(content),
        }
    }

    /// The host's file (`state`) is not a regular file with this content.
    pub fn content_differs(&self, state: &FileState) -> bool {
        state.kind != Kind::File || state.sha256.as_deref() != Some(&*self.content.sha256())
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_text(bytes: &[u8]) -> bool {
    !bytes.contains(&0) && std::str::from_utf8(bytes).is_ok()
}

/// Key files are secrets whether or not a play says so.
pub fn holds_private_key(bytes: &[u8]) -> bool {
    const MARKER: &[u8] = b"PRIVATE KEY-----";
    bytes.windows(MARKER.len()).any(|w| w == MARKER)
}

/// The diffs between a file on the host and what it should be: content, then metadata.
pub fn diff(state: &FileState, desired: &DesiredFile<'_>) -> Vec<Diff> {
    let mut diffs = Vec::new();
    if desired.content_differs(state) {
        let mut d = content_diff(state, desired, &desired.content.sha256());
        d.secret = desired.secret
            || desired.content.shown().is_some_and(holds_private_key)
            || state.content.as_deref().is_some_and(holds_private_key);
        diffs.push(d);
    }
    let current = |v: &Option<String>| if state.exists() { v.clone() } else { None };
    let before = [
        ("mode", desired.mode.and(current(&state.mode))),
        ("owner", desired.owner.and(current(&state.owner))),
        ("group", desired.group.and(current(&state.group))),
    ];
    let after = [
        ("mode", desired.mode.map(Mode::text)),
        ("owner", desired.owner.map(str::to_string)),
        ("group", desired.group.map(str::to_string)),
    ];
    diffs.extend(Diff::of_metadata(desired.path, &before, &after));
    diffs
}

fn content_diff(state: &FileState, desired: &DesiredFile<'_>, want_sha: &str) -> Diff {
    let text = desired.content.shown().filter(|c| is_text(c));
    let before = match (&state.kind, &state.content) {
        (Kind::File, Some(bytes)) if is_text(bytes) && text.is_some() => {
            Some(String::from_utf8_lossy(bytes).into_owned())
        }
        (Kind::File, _) => state.sha256.as_ref().map(|s| format!("sha256: {s}\n")),
        (Kind::Absent, _) => None,
        (Kind::Dir, _) => Some("type: directory\n".into()),
        (Kind::Link, _) => Some(format!(
            "type: symlink -> {}\n",
            state.link_target.as_deref().unwrap_or("?")
        )),
        (Kind::Other, _) => Some("type: special file\n".into()),
    };
    let text_before = matches!((&state.kind, &state.content), (Kind::File, Some(b)) if is_text(b));
    let after = match text {
        Some(text) if text_before || state.kind != Kind::File => {
            String::from_utf8_lossy(text).into_owned()
        }
        _ => format!("sha256: {want_sha}\n"),
    };
    Diff::new(desired.path, before, Some(after))
}

/// The change that puts `desired` in place through the one write path.
pub fn write<'a>(desired: &DesiredFile<'a>) -> Command<'a> {
    writing(desired, None)
}

fn writing<'a>(desired: &DesiredFile<'a>, keeping: Option<&str>) -> Command<'a> {
    Command::new(
        format!("writing {}", desired.path),
        write::write_script_keeping(desired, keeping),
    )
    .with_stdin(desired.content)
}

/// Write `desired` over the file the probe saw as `before`, which the plan hands to the
/// engine: a health check failing after the restart this change owes puts it back. A file
/// too large for the probe to read is kept aside on the host instead.
pub fn replace<'a>(plan: &mut Plan<'a>, before: &FileState, desired: &DesiredFile<'a>) {
    let kept_as = match (before.kind, &before.content, &before.sha256) {
        (Kind::File, None, Some(sha)) => {
            Some(format!("{}-{sha}", sha256_hex(desired.path.as_bytes())))
        }
        _ => None,
    };
    plan.changes.push(writing(desired, kept_as.as_deref()));
    plan.replaces.push(PreviousFile {
        path: desired.path.to_string(),
        state: before.clone(),
        kept_as,
    });
}

/// A file as it was before this run replaced it, as its probe saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousFile {
    pub path: String,
    pub state: FileState,
    /// The name it was kept under on the host, when its content was too large to read:
    /// one per path and content, so a second change in the run keeps the first copy.
    pub kept_as: Option<String>,
}

impl PreviousFile {
    /// The change that puts the file back as it was (removes it when there was none),
    /// through the same write path; Err says why it cannot be.
    pub fn restore(&self) -> Result<Command<'static>, String> {
        let path = self.path.as_str();
        let state = &self.state;
        let script = match (state.kind, &state.content, &state.link_target) {
            (Kind::Absent, _, _) => remove_script(path, false),
            (Kind::File, Some(content), _) => {
                let mode = state
                    .mode
                    .as_deref()
                    .and_then(|m| u32::from_str_radix(m, 8).ok());
                let before = DesiredFile {
                    path,
                    content: Source::Bytes(content),
                    mode: mode.map(Mode),
                    owner: state.owner.as_deref(),
                    group: state.group.as_deref(),
                    validate: None,
                    secret: false,
                };
                return Ok(
                    Command::new(format!("restoring {path}"), write_script(&before))
                        .with_stdin(content.clone()),
                );
            }
            (Kind::File, None, _) => match &self.kept_as {
                Some(kept) => put_back_script(path, kept),
                None => return Err("its previous content was not kept".into()),
            },
            (Kind::Link, _, Some(target)) => link_script(path, target, state.owner.as_deref()),
            _ => return Err("it was not a regular file".into()),
        };
        Ok(Command::new(format!("restoring {path}"), script))
    }
}

/// What a checker said about a candidate file.
#[derive(Debug, Clone)]
pub struct CandidateCheck {
    /// Where the candidate was (already removed): checkers name it in their messages.
    pub path: String,
    pub output: ExecOutput,
}

/// Write `content` as `name` into a fresh temp directory on the host, run `command` on it
/// (`%s` is the candidate's path) and remove the directory. For checkers that need the
/// file's real name (`systemd-analyze verify`) or whose verdict is in what they print
/// (`logrotate -d` exits 0 on some errors): the caller reads `output`.
pub fn check_candidate<'a>(
    name: &str,
    content: &'a [u8],
    command: &str,
    verdict: impl Fn(&CandidateCheck) -> Result<(), String> + Send + Sync + 'a,
) -> Command<'a> {
    let script = format!(
        "t=$(mktemp -d) || exit 125\n\
         trap 'rm -rf \"$t\"' EXIT\n\
         f=\"$t\"/{}\n\
         cat > \"$f\" || exit 125\n\
         printf 'candidate=%s\\n' \"$f\"\n\
         {}\n",
        quote(name),
        command.replace("%s", "\"$f\"")
    );
    let name = name.to_string();
    Command::new(format!("checking {name}"), script)
        .with_stdin(content)
        .judged_by(move |out| {
            let stdout = out.stdout_text();
            let Some((first, rest)) = stdout
                .split_once('\n')
                .and_then(|(first, rest)| Some((first.strip_prefix("candidate=")?, rest)))
            else {
                return Err(format!(
                    "cannot write a candidate {name} into a temp directory: {}",
                    out.stderr_text()
                ));
            };
            verdict(&CandidateCheck {
                path: first.to_string(),
                output: ExecOutput {
                    stdout: rest.as_bytes().to_vec(),
                    ..out.clone()
                },
            })
        })
}

/// What a checker's messages about a candidate came to: the lines that reject it (naming
/// the real path) and how many failures were excused.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<String>,
    pub excused: usize,
}

impl Findings {
    /// Ok without errors, else the errors under "`checker` rejects `real_path`". A check
    /// that failed with nothing of ours to show, rejected or excused (the checker missing,
    /// say), shows all of its stderr.
    pub fn verdict(
        mut self,
        checker: &str,
        status: i32,
        stderr: &str,
        candidate: &str,
        real_path: &str,
    ) -> Result<(), String> {
        if self.errors.is_empty() && status != 0 && self.excused == 0 {
            let all = stderr.trim();
            self.errors.push(if all.is_empty() {
                format!("{checker} exited with {status}")
            } else {
                all.replace(candidate, real_path)
            });
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{checker} rejects {real_path}; it was not installed:\n{}",
                self.errors.join("\n")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::testing::sh_with_stdin as sh;
    use std::path::PathBuf;
    use std::process::Command;

    fn bytes<'a>(desired: &DesiredFile<'a>) -> &'a [u8] {
        desired.content.shown().expect("the test's content")
    }

    fn probe_local(path: &str) -> FileState {
        let out = sh(&probe("f", path, Read::Content), b"");
        FileState::from_probe(
            &Probed {
                stdout: String::from_utf8(out.stdout).unwrap(),
                status: 0,
            },
            "f",
        )
    }

    /// A local file is hashed when the run starts and streamed later: what arrives is
    /// checked against that hash, so a build replaced meanwhile never goes live.
    #[test]
    fn a_local_file_that_changed_after_it_was_hashed_is_not_installed() {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("build");
        std::fs::write(&local, b"build 1\n").unwrap();
        let file = load_local(&local).unwrap();
        let target = dir.path().join("app");
        std::fs::write(&target, b"old\n").unwrap();
        let desired = DesiredFile {
            path: target.to_str().unwrap(),
            content: Source::Local(&file),
            mode: None,
            owner: None,
            group: None,
            validate: None,
            secret: false,
        };
        // What the transport sends: the file as it is now, and the line saying it is the
        // file as hashed only when it is.
        let sent = || {
            crate::transport::Input::File {
                path: &local,
                sha256: &file.sha256,
            }
            .read()
        };
        std::fs::write(&local, b"build 2\n").unwrap();
        let cut_off = b"build 1\n"[..5].to_vec();
        for stdin in [sent(), cut_off] {
            let out = sh(&write_script(&desired), &stdin);
            assert!(!out.status.success());
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("changed on the controller while it was sent"),
                "{stderr}"
            );
            assert_eq!(std::fs::read(&target).unwrap(), b"old\n");
        }
        std::fs::write(&local, b"build 1\n").unwrap();
        let out = sh(&write_script(&desired), &sent());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"build 1\n");
    }

    #[test]
    fn probe_reads_what_write_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b.conf");
        let path = path.to_str().unwrap();
        assert_eq!(probe_local(path).kind, Kind::Absent);
        let desired = DesiredFile {
            path,
            content: Source::Bytes(b"hello\n"),
            mode: Some(Mode(0o640)),
            owner: None,
            group: None,
            validate: Some("grep -q hello %s"),
            secret: false,
        };
        let out = sh(&write_script(&desired), bytes(&desired));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let state = probe_local(path);
        assert_eq!(state.kind, Kind::File);
        assert_eq!(state.mode.as_deref(), Some("0640"));
        assert_eq!(state.content.as_deref(), Some(&b"hello\n"[..]));
        assert!(diff(&state, &desired).is_empty());
        // No temp file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Without owner, group and mode, a file replaced keeps those it had.
    #[test]
    fn a_replaced_file_keeps_its_owner_and_mode_unless_told() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kept.conf");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        std::os::unix::fs::chown(&path, Some(4321), Some(4322)).unwrap();
        let desired = desired_at(path.to_str().unwrap());
        let out = sh(&write_script(&desired), bytes(&desired));
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let written = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!((written.uid(), written.gid()), (4321, 4322));
        assert_eq!(written.mode() & 0o7777, 0o604);
    }

    #[test]
    fn links_are_read_with_their_target() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("c.conf", &link).unwrap();
        let out = sh(&probe("l", link.to_str().unwrap(), Read::Metadata), b"");
        let state = FileState::from_probe(
            &Probed {
                stdout: String::from_utf8(out.stdout).unwrap(),
                status: 0,
            },
            "l",
        );
        assert_eq!(state.kind, Kind::Link);
        assert_eq!(state.link_target.as_deref(), Some("c.conf"));
    }

    #[test]
    fn failed_validation_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.conf");
        std::fs::write(&path, "old\n").unwrap();
        let path = path.to_str().unwrap();
        let desired = DesiredFile {
            path,
            content: Source::Bytes(b"bad\n"),
            mode: None,
            owner: None,
            group: None,
            validate: Some("grep -q good %s"),
            secret: false,
        };
        let out = sh(&write_script(&desired), bytes(&desired));
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(std::fs::read_to_string(path).unwrap(), "old\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn links_are_switched_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("site b");
        let link = link.to_str().unwrap();
        for target in ["/etc/one", "/etc/two"] {
            let out = sh(&link_script(link, target, None), b"");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(std::fs::read_link(link).unwrap().to_str(), Some(target));
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::remove_file(link).unwrap();
        std::fs::create_dir(link).unwrap();
        assert!(
            !sh(&link_script(link, "/etc/one", None), b"")
                .status
                .success()
        );
    }

    fn desired_at(path: &str) -> DesiredFile<'_> {
        DesiredFile {
            path,
            content: Source::Bytes(b"new\n"),
            mode: None,
            owner: None,
            group: None,
            validate: None,
            secret: false,
        }
    }

    /// A temp dir holding `victim` (root's file, with `content`) and a link `name` to it,
    /// as a hostile user would plant it.
    fn planted_link(name: &str, content: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, content).unwrap();
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        (dir, victim, link)
    }

    #[test]
    fn a_link_planted_at_the_target_is_replaced_not_written_through() {
        let (dir, victim, path) = planted_link("config.yaml", "root only\n");
        let desired = desired_at(path.to_str().unwrap());
        let out = sh(&write_script(&desired), bytes(&desired));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root only\n");
        assert!(!path.is_symlink());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        // Nothing staged is left in the target's directory or anywhere else in it.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_link_on_the_way_is_followed_only_where_no_one_else_can_change_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let via = dir.path().join("via");
        std::os::unix::fs::symlink("real", &via).unwrap();
        let path = via.join("x.conf");
        let desired = desired_at(path.to_str().unwrap());
        // Root's link in root's 0700 directory (like /lib -> usr/lib): followed.
        let out = sh(&write_script(&desired), bytes(&desired));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read_to_string(real.join("x.conf")).unwrap(),
            "new\n"
        );
        // The same link in a directory anyone may write (no sticky bit): refused.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let out = sh(&write_script(&desired), bytes(&desired));
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("someone other than root could redirect"),
            "{stderr}"
        );
    }

    #[test]
    fn owner_and_mode_never_follow_a_link() {
        let (dir, victim, link) = planted_link("app.log", "x");
        let before = std::fs::metadata(&victim).unwrap().permissions();
        let script = chown_chmod_script(link.to_str().unwrap(), Some(Mode(0o666)), None, None);
        assert!(sh(&script, b"").status.success());
        assert_eq!(std::fs::metadata(&victim).unwrap().permissions(), before);
        // A regular file gets its mode through the checked descriptor.
        let file = dir.path().join("real.log");
        std::fs::write(&file, "x").unwrap();
        let script = chown_chmod_script(file.to_str().unwrap(), Some(Mode(0o640)), None, None);
        let out = sh(&script, b"");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o7777,
            0o640
        );
    }

    #[test]
    fn owner_and_mode_refuse_what_is_not_a_regular_file_without_blocking_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("app.log");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        let script = chown_chmod_script(fifo.to_str().unwrap(), Some(Mode(0o640)), None, None);
        let out = sh(&script, b"");
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("is not a regular file"), "{stderr}");
    }

    #[test]
    fn dirs_are_made_level_by_level_and_a_secret_file_is_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b c/-d");
        let out = sh(
            &dir_script(deep.to_str().unwrap(), Some(Mode(0o750)), None, None),
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&deep), 0o750);
        assert_eq!(mode(&dir.path().join("a/b c")), 0o755);
        let secret = deep.join("token");
        let mut desired = desired_at(secret.to_str().unwrap());
        desired.secret = true;
        assert!(
            sh(&write_script(&desired), bytes(&desired))
                .status
                .success()
        );
        assert_eq!(mode(&secret), 0o600);
        let out = sh(
            &remove_script(dir.path().join("a").to_str().unwrap(), true),
            b"",
        );
        assert!(out.status.success());
        assert!(!dir.path().join("a").exists());
    }

    #[tokio::test]
    async fn candidates_are_checked_under_their_name_and_removed() {
        let local = crate::module::testing::Local::default();
        let mut restarts = crate::module::RestartBook::default();
        let ctx = local.ctx(&mut restarts);
        let seen = std::sync::Mutex::new(None);
        let command = check_candidate(
            "my app.service",
            b"hello\n",
            "basename %s; cat %s >&2; exit 7",
            |check| {
                *seen.lock().unwrap() = Some(check.clone());
                Ok(())
            },
        );
        crate::module::Exec::run(&ctx, command).await.unwrap();
        let check = seen.into_inner().unwrap().unwrap();
        assert!(check.path.ends_with("/my app.service"), "{}", check.path);
        assert_eq!(check.output.stdout_text(), "my app.service\n");
        assert_eq!(check.output.stderr_text(), "hello");
        assert_eq!(check.output.status, 7);
        let dir = std::path::Path::new(&check.path).parent().unwrap();
        assert!(!dir.exists(), "{} was left behind", dir.display());
    }

    /// Replace the file at `path` with `new` as the engine would, then restore it.
    fn replace_and_restore(path: &std::path::Path, new: &[u8]) -> PreviousFile {
        let path = path.to_str().unwrap();
        let before = probe_local(path);
        let desired = DesiredFile {
            content: Source::Bytes(new),
            mode: Some(Mode(0o600)),
            ..desired_at(path)
        };
        let mut plan = Plan::default();
        replace(&mut plan, &before, &desired);
        let out = sh(&plan.changes[0].script, new);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(std::fs::read(path).unwrap(), new);
        let previous = plan.replaces.remove(0);
        let restore = previous.restore().unwrap();
        let out = sh(&restore.script, &restore.stdin.input().read());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        previous
    }

    #[test]
    fn a_replaced_file_is_put_back_with_its_mode_small_or_large() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let small = dir.path().join("app.conf");
        std::fs::write(&small, "old\n").unwrap();
        std::fs::set_permissions(&small, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(replace_and_restore(&small, b"new\n").kept_as, None);
        assert_eq!(std::fs::read(&small).unwrap(), b"old\n");
        assert_eq!(mode(&small), 0o640);

        // Too large for the probe to read: kept aside by the write, renamed back.
        let large = dir.path().join("model.bin");
        let old = vec![b'x'; CONTENT_LIMIT as usize + 1];
        std::fs::write(&large, &old).unwrap();
        std::fs::set_permissions(&large, std::fs::Permissions::from_mode(0o644)).unwrap();
        let previous = replace_and_restore(&large, b"new\n");
        assert!(previous.kept_as.is_some());
        assert_eq!(std::fs::read(&large).unwrap(), old);
        assert_eq!(mode(&large), 0o644);
        // The copy went back: restoring again fails, saying so.
        let out = sh(&previous.restore().unwrap().script, b"");
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("kept when it was replaced is gone"));

        // A file that was not there is removed again.
        let new = dir.path().join("extra.conf");
        replace_and_restore(&new, b"new\n");
        assert!(!new.exists());
    }

    #[test]
    fn key_files_never_show_their_lines() {
        let key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n-----END OPENSSH PRIVATE KEY-----\n";
        let absent = FileState::absent();
        let desired = DesiredFile {
            content: Source::Bytes(key),
            ..desired_at("/root/.ssh/id_ed25519")
        };
        let text: String = diff(&absent, &desired)
            .iter()
            .map(|d| d.unified("h"))
            .collect();
        assert!(text.contains("content: changed (secret)"), "{text}");
        assert!(!text.contains("b3BlbnNzaC1rZXk"), "{text}");
    }

    #[test]
    fn diff_shows_content_then_metadata() {
        let state = FileState {
            kind: Kind::File,
            mode: Some("0644".into()),
            owner: Some("root".into()),
            group: Some("root".into()),
            sha256: Some(sha256_hex(b"a\n")),
            content: Some(b"a\n".to_vec()),
            link_target: None,
        };
        let desired = DesiredFile {
            path: "/etc/x",
            content: Source::Bytes(b"b\n"),
            mode: Some(Mode(0o600)),
            owner: Some("root"),
            group: None,
            validate: None,
            secret: false,
        };
        let text: String = diff(&state, &desired)
            .iter()
            .map(|d| d.unified("h"))
            .collect();
        insta::assert_snapshot!(text, @r"
        --- h:/etc/x (current)
        +++ h:/etc/x (desired)
        @@ -1 +1 @@
        -a
        +b
        --- h:/etc/x (current)
        +++ h:/etc/x (desired)
        @@ -1,2 +1,2 @@
        -mode: 0644
        +mode: 0600
         owner: root
        ");
    }
}
