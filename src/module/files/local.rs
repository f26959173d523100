//! Files on this machine that go to hosts as they are (`file` with `src`, a release's
//! build): read and hashed once per run, then streamed from disk to each host, so a
//! 100 MB build sent to 300 hosts costs the controller one hash and a read buffer per
//! upload in flight, never a copy per host.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;

#[derive(Debug)]
pub struct LocalFile {
    pub path: PathBuf,
    pub sha256: String,
    pub len: u64,
    /// The content, when small enough to show in a diff: held once, whatever the number
    /// of hosts.
    pub small: Option<Vec<u8>>,
}

/// Size and modification time: a rebuilt file is read again.
type Stamp = (u64, Option<SystemTime>);

type Loaded = HashMap<PathBuf, (Stamp, Arc<LocalFile>)>;

static LOADED: LazyLock<Mutex<Loaded>> = LazyLock::new(Mutex::default);

/// The file at `path`, hashed once for as long as it stays the same.
pub fn load(path: &Path) -> std::io::Result<Arc<LocalFile>> {
    let meta = std::fs::metadata(path)?;
    let stamp = (meta.len(), meta.modified().ok());
    // A panic elsewhere while holding the lock leaves a usable map.
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, file)) = loaded.get(path)
        && *seen == stamp
    {
        return Ok(file.clone());
    }
    let mut reader = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut small = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let mut len = 0;
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
        len += n as u64;
        if small.len() as u64 <= super::CONTENT_LIMIT {
            small.extend_from_slice(&chunk[..n]);
        }
    }
    let file = Arc::new(LocalFile {
        path: path.to_path_buf(),
        sha256: hex::encode(hasher.finalize()),
        len,
        small: (small.len() as u64 <= super::CONTENT_LIMIT).then_some(small),
    });
    loaded.insert(path.to_path_buf(), (stamp, file.clone()));
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::files::sha256_hex;

    #[test]
    fn one_copy_per_build() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app");
        std::fs::write(&path, b"build 1").unwrap();
        let a = load(&path).unwrap();
        let b = load(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.sha256, sha256_hex(b"build 1"));
        assert_eq!(a.small.as_deref(), Some(&b"build 1"[..]));
        std::fs::write(&path, b"build 2, longer").unwrap();
        assert_eq!(load(&path).unwrap().sha256, sha256_hex(b"build 2, longer"));
        assert!(load(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn a_large_file_is_hashed_whole_and_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let bytes: Vec<u8> = (0..super::super::CONTENT_LIMIT as usize * 3 + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let file = load(&path).unwrap();
        assert_eq!(file.sha256, sha256_hex(&bytes));
        assert!(file.small.is_none());
    }
}
