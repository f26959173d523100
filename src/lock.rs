//! One run at a time per playbook + inventory on a controller: a non-blocking flock,
//! released by the kernel when the process dies (even by SIGKILL), so a crash never
//! blocks the next run.
//!
//! Where the lock lives depends on the effective uid alone, never on the environment:
//! cron (no XDG_RUNTIME_DIR), a login shell and sudo must all meet at the same file, and
//! a place other users can write (/tmp) would let them plant or redirect it. Root's locks
//! are in /run/converge, another user's under the home directory the user database gives.
//! The directory and the file are opened without following links and refused unless
//! they belong to that uid and no one else can write them.

use sha2::{Digest, Sha256};
use std::ffi::{CStr, OsStr};
use std::fs::{DirBuilder, File, OpenOptions, TryLockError};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Root's lock directory: /run is root's alone and emptied at boot.
const ROOT_DIR: &str = "/run/converge";
/// Another user's, under the home directory from the user database.
const USER_DIR: &str = ".local/state/converge";

pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

pub enum LockError {
    /// Another run holds it; `holder` is what that run wrote: who, which pid, since when.
    Held {
        path: PathBuf,
        holder: String,
    },
    Io(String),
}

impl RunLock {
    pub fn acquire(playbook: &Path, inventory: &Path) -> Result<RunLock, LockError> {
        let uid = effective_uid();
        Self::acquire_in(&lock_dir(uid)?, uid, playbook, inventory)
    }

    /// The lock of a folder converge keeps its own files in (a pull's checkout), held
    /// from the fetch to the record of the run's result, so that a second pull never
    /// changes the checkout under a run that is converging from it.
    pub fn acquire_folder(folder: &Path) -> Result<RunLock, LockError> {
        let uid = effective_uid();
        Self::acquire_in(&lock_dir(uid)?, uid, folder, Path::new(""))
    }

    fn acquire_in(
        dir: &Path,
        uid: u32,
        playbook: &Path,
        inventory: &Path,
    ) -> Result<RunLock, LockError> {
        private_dir(dir, uid, "its run lock")?;
        let path = dir.join(lock_name(playbook, inventory));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                LockError::Io(format!(
                    "cannot open the lock file {} without following a link: {e}\n  \
                     help: remove whatever is at that path; converge creates the file itself",
                    path.display()
                ))
            })?;
        match file.metadata() {
            Ok(m) if m.is_file() && m.uid() == uid => {}
            _ => {
                return Err(LockError::Io(format!(
                    "the lock file {} is not a regular file owned by uid {uid}\n  \
                     help: remove it; converge creates the file itself",
                    path.display()
                )));
            }
        }
        match file.try_lock() {
            Ok(()) => {
                // Written after locking, so what a refused run reads is the holder's.
                let holder = format!(
                    "{}, since {}",
                    holder(),
                    humantime::format_rfc3339_seconds(SystemTime::now())
                );
                file.set_len(0)
                    .and_then(|()| (&file).write_all(format!("{holder}\n").as_bytes()))
                    .map_err(|e| {
                        LockError::Io(format!("cannot write to {}: {e}", path.display()))
                    })?;
                Ok(RunLock { _file: file, path })
            }
            Err(TryLockError::WouldBlock) => {
                let written = std::io::read_to_string(&file).unwrap_or_default();
                let holder = match written.trim() {
                    // Between its lock and its write: a run that is just starting.
                    "" => "a run that is starting".to_string(),
                    h => h.to_string(),
                };
                Err(LockError::Held { path, holder })
            }
            Err(TryLockError::Error(e)) => Err(LockError::Io(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The lock file's name: one per playbook + inventory, wherever the run starts from.
fn lock_name(playbook: &Path, inventory: &Path) -> String {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut hasher = Sha256::new();
    hasher.update(canonical(playbook).as_os_str().as_bytes());
    hasher.update([0]);
    hasher.update(canonical(inventory).as_os_str().as_bytes());
    format!("{}.lock", hex::encode(&hasher.finalize()[..8]))
}

/// The lock file a run of `playbook` with `inventory` takes, for this effective uid.
pub fn lock_path(playbook: &Path, inventory: &Path) -> Result<PathBuf, String> {
    let dir = lock_dir(effective_uid()).map_err(|e| match e {
        LockError::Io(e) => e,
        LockError::Held { path, .. } => path.display().to_string(),
    })?;
    Ok(dir.join(lock_name(playbook, inventory)))
}

fn lock_dir(uid: u32) -> Result<PathBuf, LockError> {
    if uid == 0 {
        return Ok(PathBuf::from(ROOT_DIR));
    }
    let (_, home) = passwd(uid).ok_or_else(|| {
        LockError::Io(format!(
            "uid {uid} has no entry in the user database, so converge has no private \
             place for its run lock"
        ))
    })?;
    Ok(home.join(USER_DIR))
}

/// Create `dir` (0700) if it is missing, then check what is there without following a
/// link: a directory owned by `uid` that no other user can write into. `what` says what
/// converge keeps there, for the error.
pub(crate) fn private_dir(dir: &Path, uid: u32, what: &str) -> Result<(), LockError> {
    // An existing path is fine here: what it is gets checked below, link or not.
    let _ = DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let refuse = |why: String| {
        LockError::Io(format!(
            "converge keeps {what} in {}, but {why}\n  help: remove it, or make it a \
             directory owned by uid {uid} with mode 0700 (chown, chmod 700)",
            dir.display()
        ))
    };
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)
        .map_err(|e| match e.raw_os_error() {
            // Linux says ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW.
            Some(libc::ELOOP | libc::ENOTDIR) => {
                refuse("it is a symbolic link or not a directory".into())
            }
            _ => refuse(format!("it cannot be opened: {e}")),
        })?;
    let meta = opened
        .metadata()
        .map_err(|e| refuse(format!("it cannot be read: {e}")))?;
    if meta.uid() != uid {
        return Err(refuse(format!("it belongs to uid {}", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "its mode is {:04o}: others can reach it",
            meta.mode() & 0o7777
        )));
    }
    Ok(())
}

pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The user name and home directory of `uid` from the user database, not from $USER or
/// $HOME, which cron, sudo and login shells set differently.
pub(crate) fn passwd(uid: u32) -> Option<(String, PathBuf)> {
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, the buffer's length is its own, and
    // the strings read after it point into `buf`, which outlives them.
    unsafe {
        let rc = libc::getpwuid_r(
            uid,
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        );
        if rc != 0 || found.is_null() {
            return None;
        }
        let name = CStr::from_ptr(entry.pw_name).to_string_lossy().into_owned();
        let home = PathBuf::from(OsStr::from_bytes(CStr::from_ptr(entry.pw_dir).to_bytes()));
        Some((name, home))
    }
}

pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; the name is cut at its first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc == 0 && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "unknown-host".to_string()
    }
}

/// Who holds a lock, as another run shows it: `user@controller, pid N`.
pub fn holder() -> String {
    let uid = effective_uid();
    let user = passwd(uid).map_or_else(|| format!("uid {uid}"), |(name, _)| name);
    format!("{user}@{}, pid {}", hostname(), std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn paths(dir: &Path) -> (PathBuf, PathBuf) {
        (dir.join("site.yml"), dir.join("inventory.yml"))
    }

    #[test]
    fn a_second_run_is_refused_until_the_first_ends_and_is_told_who_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let (p, i) = paths(dir.path());
        let uid = effective_uid();
        let first = RunLock::acquire_in(&locks, uid, &p, &i)
            .ok()
            .expect("first");
        match RunLock::acquire_in(&locks, uid, &p, &i) {
            Err(LockError::Held { holder: who, .. }) => {
                assert!(who.starts_with(&holder()), "{who}");
                assert!(who.contains(", since 20"), "{who}");
            }
            _ => panic!("the second run got the lock"),
        }
        drop(first);
        assert!(RunLock::acquire_in(&locks, uid, &p, &i).is_ok());
        let mode = std::fs::metadata(&locks).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_directory_others_can_reach_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (p, i) = paths(dir.path());
        let uid = effective_uid();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o733)).unwrap();
        let refused = |d: &Path| match RunLock::acquire_in(d, uid, &p, &i) {
            Err(LockError::Io(e)) => e,
            _ => panic!("{} was accepted", d.display()),
        };
        assert!(refused(&open).contains("its mode is 0733"));
        let private = dir.path().join("private");
        std::fs::create_dir(&private).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&private, &link).unwrap();
        assert!(refused(&link).contains("it is a symbolic link"));
        std::fs::write(dir.path().join("file"), "").unwrap();
        assert!(refused(&dir.path().join("file")).contains("not a directory"));
        assert!(
            RunLock::acquire_in(&private, uid + 1, &p, &i).is_err(),
            "someone else's directory"
        );
    }

    #[test]
    fn a_planted_link_at_the_lock_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        let (p, i) = paths(dir.path());
        let uid = effective_uid();
        private_dir(&locks, uid, "its run lock")
            .ok()
            .expect("private dir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(&victim, locks.join(lock_name(&p, &i))).unwrap();
        assert!(matches!(
            RunLock::acquire_in(&locks, uid, &p, &i),
            Err(LockError::Io(e)) if e.contains("without following a link")
        ));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
}
