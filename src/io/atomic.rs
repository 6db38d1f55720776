//! Atomic file writes: a temporary file beside the target, synced, then renamed over it, so a
//! crash or an error never leaves a half-written checkpoint or metrics file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Whether [`write_atomic`] could write `path`: a file beside it is created and removed, so a
/// path that cannot be written is found before the work whose result it would hold. Only a file
/// this call created is removed (one already there, or a link, is left alone: the directory
/// took a file once).
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let probe = temp_path(path).with_extension("probe");
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => fs::remove_file(&probe),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether `dir` could be created (or is a directory) and files written in it, without creating
/// it: its nearest existing ancestor must be a directory that takes a file.
pub fn check_creatable_dir(dir: &Path) -> std::io::Result<()> {
    let existing = dir
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        // A dangling link is there too: create_dir_all would fail on it.
        .find(|a| a.symlink_metadata().is_ok())
        .unwrap_or(Path::new("."));
    if !existing.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("{} is not a directory", existing.display()),
        ));
    }
    check_writable(&existing.join(".neuralrg-probe"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("neuralrg-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // A target in a missing directory fails without side effects.
        assert!(write_atomic(&dir.join("missing/b.txt"), b"x").is_err());
        // The checks leave nothing behind, and find a file where a directory would be.
        check_writable(&p).unwrap();
        check_creatable_dir(&dir.join("new/deeper")).unwrap();
        assert!(check_writable(&dir.join("missing/b.txt")).is_err());
        let e = check_creatable_dir(&p.join("sub")).unwrap_err();
        assert!(e.to_string().contains("a.txt is not a directory"), "{e}");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        // A file at the probe's name is not removed; a dangling link is no directory.
        let probe = temp_path(&p).with_extension("probe");
        fs::write(&probe, b"keep").unwrap();
        check_writable(&p).unwrap();
        assert_eq!(fs::read(&probe).unwrap(), b"keep");
        fs::remove_file(&probe).unwrap();
        #[cfg(unix)]
        {
            let link = dir.join("dangling");
            std::os::unix::fs::symlink(dir.join("nowhere"), &link).unwrap();
            assert!(check_creatable_dir(&link.join("figures")).is_err());
            fs::remove_file(&link).unwrap();
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
