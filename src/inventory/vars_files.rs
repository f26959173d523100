//! `group_vars/` and `host_vars/` beside the inventory.

use super::Vars;
use super::yaml::merge_vars;
use crate::error::{InputError, InputResult, SourceFile};
use crate::node;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) fn read_source(path: &Path, help: &str) -> InputResult<Arc<SourceFile>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| InputError::new(format!("cannot read {}: {e}", path.display())).help(help))?;
    Ok(SourceFile::new(path.display().to_string(), text))
}

/// `DIR/NAME`, `DIR/NAME.yml`, `.yaml` or `.json`, the first that exists, as Ansible
/// looks for them; a directory `DIR/NAME/` contributes its files in name order.
pub(super) fn read_vars_files(dir: &Path, name: &str) -> InputResult<Vars> {
    let mut vars = Vars::new();
    if !dir.is_dir() {
        return Ok(vars);
    }
    let Some(found) = ["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|ext| dir.join(format!("{name}{ext}")))
        .find(|path| path.exists())
    else {
        return Ok(vars);
    };
    let mut files = Vec::new();
    if found.is_dir() {
        vars_dir_files(&found, &mut files)?;
    } else {
        files.push(found);
    }
    for path in files {
        let file = read_source(&path, "check the file's permissions")?;
        // Vaulted files and `!vault` values are opened here, with the run's passwords.
        let root = node::parse(&file)?;
        merge_vars(
            &mut vars,
            &root,
            "a vars file must be a mapping of variable names",
        )?;
    }
    Ok(vars)
}

fn vars_dir_files(dir: &Path, files: &mut Vec<PathBuf>) -> InputResult<()> {
    let unreadable = |e: std::io::Error| {
        InputError::new(format!("cannot read {}: {e}", dir.display()))
            .help("check the directory's permissions")
    };
    let mut paths = std::fs::read_dir(dir)
        .map_err(unreadable)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    paths.sort();
    for path in paths {
        // Hidden files and editor backups are skipped, and folders with an extension
        // are not entered, as Ansible does.
        let skipped = path.file_name().is_none_or(|n| {
            let n = n.to_string_lossy();
            n.starts_with('.') || n.ends_with('~')
        });
        let ext = path.extension().map(|e| e.to_string_lossy().into_owned());
        if skipped {
            continue;
        }
        if path.is_dir() {
            if ext.is_none() {
                vars_dir_files(&path, files)?;
            }
        } else if ext.is_none_or(|e| ["yml", "yaml", "json"].contains(&e.as_str())) {
            files.push(path);
        }
    }
    Ok(())
}
