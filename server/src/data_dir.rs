//! The data directory's secrets: the directory itself is private to the orchestrator's user
//! (0700), and the first-run admin password file is created exclusively (never through a link or
//! over an existing file), readable by that user only, and removed once the password is changed.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file the first run writes the admin password to.
pub fn first_admin_password_file(data_dir: &Path) -> PathBuf {
    data_dir.join("initial-admin-password")
}

/// Creates `dir` if needed and makes it private (0700), so the embedded database, the password
/// file and the worktrees under it are not readable by other users.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes `contents` to a new file at `path` readable by this user only. Whatever is at `path`
/// already (a stale file, or a link an attacker planted to make us write elsewhere) is removed
/// first — the link itself, never its target — and the file is then created with O_EXCL, which
/// fails rather than follow a link raced into its place.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        ensure_private_dir(dir)?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_file(path)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(file, "{contents}")
}

/// Removes the first-run password file once that password no longer signs anyone in; `true` if
/// there was one.
pub fn forget_first_admin_password(data_dir: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(first_admin_password_file(data_dir)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_private_and_the_password_file_is_ours_alone() {
        let parent = tempfile::tempdir().unwrap();
        let data = parent.path().join("data");
        let file = first_admin_password_file(&data);
        write_private_file(&file, "secret").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret\n");
        assert!(forget_first_admin_password(&data).unwrap());
        assert!(!file.exists());
        assert!(!forget_first_admin_password(&data).unwrap());
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let parent = tempfile::tempdir().unwrap();
        let data = parent.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let target = parent.path().join("elsewhere");
        std::fs::write(&target, "untouched").unwrap();
        let file = first_admin_password_file(&data);
        std::os::unix::fs::symlink(&target, &file).unwrap();
        write_private_file(&file, "secret").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
        assert!(!std::fs::symlink_metadata(&file)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "secret\n");
    }
}
