//! One run at a time per playbook + inventory: a non-blocking flock, released by the
//! kernel when the process dies (even by SIGKILL), so a crash never blocks the next run.

use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

pub enum LockError {
    Held(PathBuf),
    Io(String),
}

impl RunLock {
    pub fn acquire(playbook: &Path, inventory: &Path) -> Result<RunLock, LockError> {
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let mut hasher = Sha256::new();
        hasher.update(canonical(playbook).to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(canonical(inventory).to_string_lossy().as_bytes());
        let id = hex::encode(&hasher.finalize()[..8]);
        let dir =
            std::env::var_os("XDG_RUNTIME_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
        let path = dir.join(format!("converge-{id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| LockError::Io(format!("cannot open lock file {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held(path)),
            Err(TryLockError::Error(e)) => Err(LockError::Io(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_is_refused_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let (p, i) = (
            dir.path().join("site.yml"),
            dir.path().join("inventory.yml"),
        );
        let first = RunLock::acquire(&p, &i).ok().expect("first lock");
        assert!(matches!(RunLock::acquire(&p, &i), Err(LockError::Held(_))));
        drop(first);
        assert!(RunLock::acquire(&p, &i).is_ok());
    }
}
