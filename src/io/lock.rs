//! Ownership of a run directory: an exclusive advisory lock on `DIR/.lock`, held by a training
//! process for as long as it writes into the directory, so that a second process (the same
//! command started twice, two `--resume`s) is refused instead of interleaving its files with the
//! first's. The lock file holds the owner's PID for the message; the operating system releases
//! the lock when the process ends, however it ends.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The lock file's name inside a run directory.
pub const LOCK_FILE: &str = ".lock";

#[derive(Debug, Error)]
pub enum LockError {
    #[error(
        "{dir} is in use by another neuralrg-gpu process ({holder}): wait for it to finish or \
         stop it, or choose another --out"
    )]
    Busy { dir: String, holder: String },
    #[error("--out {dir} is a file, not a directory: choose another --out")]
    NotADirectory { dir: String },
    #[error("cannot create the run directory {dir}: {message}; choose another --out")]
    Create { dir: String, message: String },
    #[error("cannot lock {path}: {message}")]
    Io { path: String, message: String },
}

/// An exclusive lock on a run directory, released when dropped. A directory the lock created
/// and nothing else wrote into (a command that failed before training) is removed with it, and
/// so are the parents it created.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
    /// The directories `acquire` created, innermost first.
    created: Vec<PathBuf>,
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let dir = self.path.parent().expect("the lock file has a directory");
        let only_the_lock = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .all(|e| e.file_name() == LOCK_FILE)
            })
            .unwrap_or(false);
        if !self.created.is_empty() && only_the_lock {
            let _ = std::fs::remove_file(&self.path);
            for created in &self.created {
                if std::fs::remove_dir(created).is_err() {
                    break;
                }
            }
        }
    }
}

impl DirLock {
    /// Creates `dir` if needed and takes its lock, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |e: std::io::Error| LockError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let created: Vec<PathBuf> = dir
            .ancestors()
            .filter(|d| !d.as_os_str().is_empty())
            .take_while(|d| !d.exists())
            .map(Path::to_path_buf)
            .collect();
        if dir.exists() && !dir.is_dir() {
            return Err(LockError::NotADirectory {
                dir: dir.display().to_string(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|e| LockError::Create {
            dir: dir.display().to_string(),
            message: e.to_string(),
        })?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("PID {pid}"),
                    Err(_) => "PID unknown".to_string(),
                };
                return Err(LockError::Busy {
                    dir: dir.display().to_string(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self {
            _file: file,
            path,
            created,
        })
    }

    /// Removes the temporary files an interrupted atomic write left in the directory (only the
    /// lock's holder may, since another process's write could be under way).
    pub fn remove_stale_temporaries(&self) -> std::io::Result<usize> {
        let dir = self.path.parent().expect("the lock file has a directory");
        let mut removed = 0;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().ends_with(".tmp") && entry.path().is_file() {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("neuralrg-lock-{}", std::process::id()));
        let first = DirLock::acquire(&dir).unwrap();
        let err = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("PID {}", std::process::id())),
            "{err}"
        );
        drop(first);
        // It created the directory and nothing else was written: gone with the lock.
        assert!(!dir.exists());
        let again = DirLock::acquire(&dir).unwrap();
        std::fs::write(dir.join("metrics.jsonl"), b"{}\n").unwrap();
        drop(again);
        assert!(dir.join("metrics.jsonl").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_or_an_impossible_path_is_refused_by_name() {
        let file = std::env::temp_dir().join(format!("neuralrg-file-{}", std::process::id()));
        std::fs::write(&file, b"kept").unwrap();
        let err = DirLock::acquire(&file).unwrap_err();
        assert!(matches!(err, LockError::NotADirectory { .. }), "{err}");
        assert_eq!(std::fs::read(&file).unwrap(), b"kept");
        let err = DirLock::acquire(&file.join("run")).unwrap_err();
        assert!(matches!(err, LockError::Create { .. }), "{err}");
        std::fs::remove_file(&file).unwrap();
    }

    #[test]
    fn stale_temporaries_are_removed() {
        let dir = std::env::temp_dir().join(format!("neuralrg-tmp-{}", std::process::id()));
        let lock = DirLock::acquire(&dir).unwrap();
        std::fs::write(dir.join("checkpoint.safetensors.123.tmp"), b"half").unwrap();
        std::fs::write(dir.join("metrics.jsonl"), b"{}\n").unwrap();
        assert_eq!(lock.remove_stale_temporaries().unwrap(), 1);
        assert!(dir.join("metrics.jsonl").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
