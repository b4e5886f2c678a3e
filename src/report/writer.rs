//! Writing report files atomically: a reader sees the old file or the whole new one.
//!
//! The bytes go to a temporary file in the same directory, are flushed to disk, and the
//! file is renamed over the target. A crash or Ctrl-C mid-write leaves at most a stray
//! temporary file (removed on drop), never a truncated report.

use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` via a temporary file and a rename, creating the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(directory)?;
    let mut temporary = tempfile::Builder::new()
        .prefix(".labrun-")
        .suffix(".tmp")
        .tempfile_in(directory)?;
    temporary.write_all(bytes)?;
    // Reports are for sharing: readable by others, like any file the user writes (a
    // temporary file starts out private).
    use std::os::unix::fs::PermissionsExt;
    temporary
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    temporary.as_file().sync_all()?;
    temporary.persist(path).map_err(|err| err.error)?;
    Ok(())
}

/// A scenario name made safe as a file name.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_are_safe_file_names() {
        assert_eq!(file_stem("threaded"), "threaded");
        assert_eq!(file_stem("../../etc/passwd"), "-..-etc-passwd");
        assert_eq!(file_stem("my scenario/v2"), "my-scenario-v2");
    }

    #[test]
    fn replaces_whole_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("nested/report.json");
        write_atomically(&target, b"first").unwrap();
        write_atomically(&target, b"second").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(target.parent().unwrap()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }
}
