//! The one way converge changes paths on a host: writes, links, owner and mode changes,
//! directories and removals, safe against the other users of the host.
//!
//! converge runs as root, and the directories it writes into may belong to the app's own
//! user (`/opt/app/config`), who must not be able to turn a write into root access. So:
//! - every script first enters the target's directory with [`PRELUDE`]'s `cvg_enter`, which
//!   follows no symbolic link that anyone but root could have planted or could redirect,
//!   and from then on names the target only relative to that directory (`./NAME`);
//! - new content is prepared in converge's staging directory, root's and 0700 on the
//!   target's filesystem, with its final owner and mode, validated and synced there, where
//!   no one else can reach it, and goes live by one `rename` that replaces whatever entry
//!   sits at the target (a planted link included) and never writes through it;
//! - owner and mode of an existing file change through a descriptor checked to be the very
//!   file at the target, never through a path that could have become a link.
//!
//! Only sh, coreutils, findutils and (for owner and mode of an existing file) perl-base,
//! all Essential on Debian and Ubuntu, are needed on the host.

use super::{DesiredFile, Source};
use crate::module::Mode;
use crate::quote::{quote, quote_all};
use crate::transport::sent_whole;

/// Shell functions the scripts below use. `cvg_enter MSG COMPONENT...` enters the
/// directory made of the components (from `/`), or fails with MSG: a real directory is
/// entered only when its physical path is what was asked, and a symbolic link on the way
/// is followed only when it sits in a directory only root can change and its target is
/// reached through real directories only root can change (`/lib -> usr/lib`,
/// `/var/run -> /run`); `cvg_fixed` checks such a chain (a sticky directory counts when
/// the entry below it is root's, which the next check sees). `cvg_stage` sets `S` to the staging
/// directory for the current directory's filesystem (the same filesystem, so the final
/// rename is atomic) and removes converge's own leftovers there, as far as it can: other
/// writes on the same machine (local hosts of one run) come and go meanwhile. Builtins
/// where they do (one `stat` for both mount points, `pwd -P` for the physical path): every
/// write runs this, and each process costs a host ~2 ms.
pub const PRELUDE: &str = r#"cvg_fail() { printf '%s\n' "$1" >&2; exit 1; }
cvg_fixed() {
  cvg_p=$1; shift
  while [ -n "$cvg_p" ]; do cvg_p=${cvg_p%/*}; set -- "$@" "${cvg_p:-/}"; done
  [ -z "$(find "$@" -maxdepth 0 \( ! -uid 0 -o ! -type d -o -perm /022 ! -perm -1000 \) -print 2>&1)" ]
}
cvg_enter() {
  cvg_m=$1; shift
  cd / || cvg_fail "$cvg_m"
  for cvg_c in "$@"; do
    if [ -L "./$cvg_c" ]; then
      cvg_t=$(readlink -- "./$cvg_c") || cvg_fail "$cvg_m"
      case $cvg_t in /*) ;; *) cvg_h=$(pwd -P); cvg_t=${cvg_h%/}/$cvg_t ;; esac
      cvg_t=${cvg_t%/}
      case "$cvg_t/" in */./*|*/../*|*//*) cvg_t=//unsafe ;; esac
      cvg_fixed "$cvg_t" . ||
        cvg_fail "$cvg_m ($(pwd -P)/$cvg_c is a symbolic link that someone other than root could redirect)"
    else
      cvg_t=$(pwd -P); cvg_t=${cvg_t%/}/$cvg_c
    fi
    cd -P -- "$cvg_t" 2>/dev/null && [ "$(pwd -P)" = "$cvg_t" ] || cvg_fail "$cvg_m"
  done
}
cvg_stage() {
  [ -d /var/lib/converge ] || mkdir -p -m 755 /var/lib/converge
  cvg_mnt=$(stat -c %m . /var/lib/converge) || exit 1
  if [ "${cvg_mnt%%'
'*}" = "${cvg_mnt#*'
'}" ]; then S=$(cd -P /var/lib/converge && pwd -P)/stage || exit 1
  else cvg_mnt=${cvg_mnt%%'
'*}; S=${cvg_mnt%/}/.converge-stage; fi
  [ "$cvg_staged" = "$S" ] && return 0
  [ -d "$S" ] || mkdir -m 700 -- "$S" 2>/dev/null || [ -d "$S" ] || cvg_fail "cannot create converge's staging directory $S"
  cvg_fixed "$S" "$S" || cvg_fail "converge's staging directory $S or a directory above it is not root's alone"
  for cvg_old in "$S"/*; do
    [ -e "$cvg_old" ] || break
    find "$S" -mindepth 1 -maxdepth 1 -mmin +60 -exec rm -rf -- {} + 2>/dev/null || :
    break
  done
  cvg_staged=$S
}
cvg_temp() {
  cvg_tmp=$(mktemp "$@" "$S/cvg.XXXXXXXXXX") || exit 1
  trap 'rm -f -- "$cvg_tmp"' EXIT
  trap 'exit 129' HUP INT TERM
}
cvg_done() { trap - EXIT HUP INT TERM; }
"#;

/// A normalised absolute path split into its directory's components and its last name.
struct Target<'a> {
    dir: &'a str,
    name: &'a str,
}

impl<'a> Target<'a> {
    fn of(path: &'a str) -> Target<'a> {
        match path.rsplit_once('/') {
            Some((dir, name)) => Target {
                dir: if dir.is_empty() { "/" } else { dir },
                name,
            },
            None => Target {
                dir: ".",
                name: path,
            },
        }
    }

    /// `./NAME`, quoted: the only way a script names the target once it entered the
    /// directory (a name starting with `-` stays an operand).
    fn here(&self) -> String {
        quote(&format!("./{}", self.name)).into_owned()
    }

    fn enter(&self) -> String {
        enter(self.dir)
    }
}

/// The line entering `dir` safely (see [`PRELUDE`]); fails with a message naming it.
pub fn enter(dir: &str) -> String {
    let components = dir.split('/').filter(|c| !c.is_empty() && *c != ".");
    let message = format!(
        "directory {dir} does not exist, or is reached through a symbolic link someone other than root could redirect"
    );
    format!("cvg_enter {} {}\n", quote(&message), quote_all(components))
}

fn refuse_directory(target: &Target<'_>, path: &str) -> String {
    let here = target.here();
    format!(
        "if [ -d {here} ] && [ ! -L {here} ]; then cvg_fail {}; fi\n",
        quote(&format!("{path} is a directory"))
    )
}

/// `chown` argument for an owner and/or a group; None when neither is given.
fn owner_arg(owner: Option<&str>, group: Option<&str>) -> Option<String> {
    match (owner, group) {
        (Some(o), Some(g)) => Some(format!("{o}:{g}")),
        (Some(o), None) => Some(o.to_string()),
        (None, Some(g)) => Some(format!(":{g}")),
        (None, None) => None,
    }
}

/// The script that installs stdin at `desired.path` atomically, with its final owner
/// and mode, after validation. Exits 3 when validation fails, leaving the target as it
/// was; whatever fails, the staged copy is removed.
pub fn write_script(desired: &DesiredFile<'_>) -> String {
    write_script_keeping(desired, None)
}

/// Where [`write_script_keeping`] keeps replaced files, below the staging directory: only
/// root can reach them, and they go with the staging directory's leftovers an hour after
/// the last one was kept.
const KEPT: &str = "\"$S\"/kept";

/// [`write_script`], keeping the regular file it replaces as `kept` in the staging
/// directory: a hard link, so its content, owner and mode survive the rename without a
/// byte being read. `ln -P` links whatever entry is there by then (a link or FIFO swapped
/// in stays a link or FIFO, never followed or opened).
pub fn write_script_keeping(desired: &DesiredFile<'_>, kept: Option<&str>) -> String {
    let target = Target::of(desired.path);
    let here = target.here();
    let mut s = format!("set -e\n{PRELUDE}{}", target.enter());
    s.push_str(&refuse_directory(&target, desired.path));
    s.push_str("cvg_stage\ncvg_temp\n");
    match desired.content {
        Source::Bytes(_) => s.push_str("cat > \"$cvg_tmp\"\n"),
        Source::Local(file) => {
            // Streamed from disk after it was hashed: an upload cut off, or a build
            // replaced on the controller meanwhile, never lands. Exit 3, as a failed
            // validation. GNU head reads no byte past the count, so `read` gets the line
            // that follows the file (see `transport::sent_whole`).
            let differs = format!(
                "what arrived is not {} as it was when the run began (cut off, or changed on the \
                 controller while it was sent); {} was left as it was",
                file.path.display(),
                desired.path
            );
            s.push_str(&format!(
                "head -c {} > \"$cvg_tmp\"\nIFS= read -r cvg_sent || :\n\
                 if [ \"$cvg_sent\" != {} ]; then printf '%s\\n' {} >&2; exit 3; fi\n",
                file.len,
                quote(&sent_whole(&file.sha256)),
                quote(&differs)
            ));
        }
    }
    // Unset owner and mode keep what the file had; a new file is root's, 0644, or 0600
    // when it holds a secret.
    if desired.owner.is_none() || desired.group.is_none() || desired.mode.is_none() {
        let new_mode = if desired.secret { "0600" } else { "0644" };
        s.push_str(&format!(
            "if [ -f {here} ] && [ ! -L {here} ]; then cvg_had=$(stat -c '%u:%g %a' -- {here}); \
             chown \"${{cvg_had% *}}\" \"$cvg_tmp\"; chmod \"${{cvg_had#* }}\" \"$cvg_tmp\"; \
             else chmod {new_mode} \"$cvg_tmp\"; fi\n"
        ));
    }
    if let Some(owner) = owner_arg(desired.owner, desired.group) {
        s.push_str(&format!("chown -- {} \"$cvg_tmp\"\n", quote(&owner)));
    }
    if let Some(mode) = desired.mode {
        s.push_str(&format!("chmod {} \"$cvg_tmp\"\n", mode.chmod_arg()));
    }
    if let Some(validate) = desired.validate {
        let line = validate.replace("%s", "\"$cvg_tmp\"");
        s.push_str(&format!(
            "if ! ( {line} ) >&2; then printf '%s\\n' {} >&2; exit 3; fi\n",
            quote(&format!("validation failed: {validate}"))
        ));
    }
    if let Some(kept) = kept {
        s.push_str(&format!(
            "if [ -f {here} ] && [ ! -L {here} ]; then mkdir -p -m 700 -- {KEPT}; \
             ln -f -P -- {here} {KEPT}/{}; fi\n",
            quote(kept)
        ));
    }
    s.push_str(&format!(
        "sync -- \"$cvg_tmp\"\nmv -T -- \"$cvg_tmp\" {here}\ncvg_done\n"
    ));
    s
}

/// The script putting back at `path`, by one rename, the file [`write_script_keeping`]
/// kept as `kept`; it fails when that copy is gone.
pub fn put_back_script(path: &str, kept: &str) -> String {
    let target = Target::of(path);
    format!(
        "set -e\n{PRELUDE}{}cvg_stage\nk={KEPT}/{}\n\
         if [ ! -f \"$k\" ] || [ -L \"$k\" ]; then cvg_fail {}; fi\n\
         mv -T -- \"$k\" {}\n",
        target.enter(),
        quote(kept),
        quote(&format!(
            "the copy of {path} kept when it was replaced is gone"
        )),
        target.here()
    )
}

/// The script making `path` a symlink to `target`, owned by `owner` when given: a new
/// link made in the staging directory and renamed over the old one, so `path` never
/// disappears. Fails on a directory at `path`.
pub fn link_script(path: &str, link_target: &str, owner: Option<&str>) -> String {
    let target = Target::of(path);
    let mut s = format!("set -e\n{PRELUDE}{}", target.enter());
    s.push_str(&refuse_directory(&target, path));
    s.push_str(&format!(
        "cvg_stage\ncvg_temp -u\nln -s -- {} \"$cvg_tmp\"\n",
        quote(link_target)
    ));
    if let Some(owner) = owner {
        s.push_str(&format!("chown -h -- {} \"$cvg_tmp\"\n", quote(owner)));
    }
    s.push_str(&format!(
        "mv -T -- \"$cvg_tmp\" {}\ncvg_done\n",
        target.here()
    ));
    s
}

/// Sets owner, group and mode of a regular file through a descriptor opened with
/// `O_NOFOLLOW|O_NONBLOCK`: a link swapped in is refused, never followed, and no device or
/// FIFO can be opened through one (opening /dev/watchdog alone has effects). POSIX sh
/// cannot open without following, so this one step is perl's (`perl-base` is Essential on
/// Debian and Ubuntu). Arguments: path, owner, group, mode ("" leaves one as it is).
const FCHOWN_FCHMOD: &str = r#"use Fcntl; my ($p, $o, $g, $m) = @ARGV;
sysopen(my $f, $p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or die "$p: $!\n";
-f $f or die "$p is not a regular file\n";
my $u = $o eq "" ? -1 : getpwnam($o); defined $u or die "no user $o\n";
my $i = $g eq "" ? -1 : getgrnam($g); defined $i or die "no group $g\n";
($u == -1 && $i == -1) || chown($u, $i, $f) or die "chown $p: $!\n";
$m eq "" || chmod(oct($m), $f) or die "chmod $p: $!\n";
"#;

/// Change only owner and mode of an existing file or link. A link's own owner changes
/// (`chown -h`); a file's through [`FCHOWN_FCHMOD`], so a link swapped in meanwhile is
/// never followed.
pub fn chown_chmod_script(
    path: &str,
    mode: Option<Mode>,
    owner: Option<&str>,
    group: Option<&str>,
) -> String {
    let target = Target::of(path);
    let here = target.here();
    let mut s = format!("set -e\n{PRELUDE}{}", target.enter());
    s.push_str(&format!("if [ -L {here} ]; then :\n"));
    if let Some(owner) = owner_arg(owner, group) {
        s.push_str(&format!("chown -h -- {} {here}\n", quote(&owner)));
    }
    s.push_str(&format!(
        "else\nperl -e {} -- {here} {} {} {}\nfi\n",
        quote(FCHOWN_FCHMOD),
        quote(owner.unwrap_or_default()),
        quote(group.unwrap_or_default()),
        quote(&mode.map(Mode::chmod_arg).unwrap_or_default()),
    ));
    s
}

/// The script creating the directory `path` (missing parents root's, 0755) and giving it
/// its owner and mode, or setting them on the existing one. Each level is entered safely
/// before the next is made in it, and the directory's own owner and mode are set on `.`
/// once inside it, so no link is ever followed; a new directory is 0700 until its mode is set.
pub fn dir_script(
    path: &str,
    mode: Option<Mode>,
    owner: Option<&str>,
    group: Option<&str>,
) -> String {
    let mut s = format!("set -e\n{PRELUDE}");
    let mut walked = String::new();
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, component) in components.iter().enumerate() {
        let here = quote(&format!("./{component}")).into_owned();
        if i + 1 < components.len() {
            s.push_str(&format!(
                "[ -e {here} ] || [ -L {here} ] || mkdir -m 755 -- {here}\n"
            ));
        } else {
            s.push_str(&format!(
                "cvg_new=\nif [ ! -e {here} ] && [ ! -L {here} ]; then mkdir -m 700 -- {here}; cvg_new=1; fi\n"
            ));
        }
        walked.push('/');
        walked.push_str(component);
        s.push_str(&enter(&walked));
    }
    if mode.is_none() {
        // A new directory without a mode gets what mkdir with umask 022 makes.
        s.push_str("[ -z \"$cvg_new\" ] || chmod 755 .\n");
    }
    if let Some(owner) = owner_arg(owner, group) {
        s.push_str(&format!("chown -- {} .\n", quote(&owner)));
    }
    if let Some(mode) = mode {
        s.push_str(&format!("chmod {} .\n", mode.chmod_arg()));
    }
    s
}

/// The script removing what is at `path`: a file or link (`rm -f`), or with `tree` a
/// whole directory, never crossing into another filesystem mounted below.
pub fn remove_script(path: &str, tree: bool) -> String {
    let target = Target::of(path);
    let rm = if tree {
        "rm -rf --one-file-system --"
    } else {
        "rm -f --"
    };
    format!(
        "set -e\n{PRELUDE}{}{rm} {}\n",
        target.enter(),
        target.here()
    )
}

/// The script touching the directory `path` itself (its mtime), through `.` once inside.
pub fn touch_dir_script(path: &str) -> String {
    format!("set -e\n{PRELUDE}{}touch .\n", enter(path))
}
