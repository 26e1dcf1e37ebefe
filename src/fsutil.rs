//! Writing a file so that readers see the old content or the new, never half.
//!
//! The daemon (gate files, run records, inbox files), the runner (prompt
//! files) and the clients (request files) all write files that a watcher or
//! an agent may read at any moment; they share this one way of doing it: a
//! dot-named temporary in the same directory (which the watcher ignores),
//! then a rename over the target.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file could not be written, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {}: the path has no directory or no file name", .0.display())]
    NoName(PathBuf),
    #[error("cannot create {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}", tmp.display())]
    Write {
        tmp: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot rename into {}", path.display())]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write a file so readers see the old or the new content, never half: a
/// dot-named temporary in the same directory (which the watcher ignores),
/// fsynced, then renamed.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    write_via_temp(path, contents, true)
}

/// As [`write_atomic`], without the fsync: for files gtmd rebuilds from its
/// journal after a crash (prompts, inbox files).
pub fn write_replaceable(path: &Path, contents: &[u8]) -> Result<(), WriteError> {
    write_via_temp(path, contents, false)
}

fn write_via_temp(path: &Path, contents: &[u8], durable: bool) -> Result<(), WriteError> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(WriteError::NoName(path.to_path_buf()));
    };
    fs::create_dir_all(dir).map_err(|source| WriteError::CreateDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let tmp = dir.join(format!(".{}.gtmd-tmp", name.to_string_lossy()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        if durable {
            f.sync_data()?;
        }
        Ok(())
    };
    write().map_err(|source| WriteError::Write {
        tmp: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| WriteError::Rename {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/gate.md");
        write_atomic(&path, b"old").unwrap();
        write_replaceable(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["gate.md"]);
    }

    #[test]
    fn a_failure_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        fs::write(&file, "").unwrap();
        let err = write_atomic(&file.join("x.md"), b"x").unwrap_err();
        assert!(matches!(err, WriteError::CreateDir { .. }), "{err:?}");
        assert!(err.to_string().contains("plain"), "{err}");
    }
}
