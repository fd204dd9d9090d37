//! Reading and writing cgroup interface files with errors that name the OCI field.

use std::io::{self, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `value` to `dir/file` for OCI field `field`. A missing file is reported as unsupported
/// (controller not enabled, feature not in this kernel), other errors with the OS error.
pub(crate) fn write_field(field: &str, dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    match res {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::unsupported(
            field,
            format!(
                "{} does not exist: the controller is not enabled for this cgroup or the kernel \
                 does not support this setting",
                path.display()
            ),
        )),
        Err(source) => Err(Error::Write {
            field: field.to_string(),
            path,
            value: value.to_string(),
            source,
        }),
    }
}

/// Writes a control file that is not tied to an OCI field.
pub(crate) fn write_file(path: &Path, value: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| Error::io("write", path, e))
}

pub(crate) fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Reads a file, returning None when it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// Parses a single number; "max" is u64::MAX.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    if s == "max" {
        return Some(u64::MAX);
    }
    s.parse().ok()
}

pub(crate) fn read_u64(path: &Path) -> Result<Option<u64>> {
    Ok(read_opt(path)?.and_then(|s| parse_u64(&s)))
}

/// Reads the pids listed in `dir/cgroup.procs`.
pub(crate) fn read_procs(dir: &Path) -> Result<Vec<i32>> {
    let path = dir.join("cgroup.procs");
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("read", path, e)),
    }
}

/// All directories at and below `dir` (the dir first, then children depth-first).
pub(crate) fn walk_dirs(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(rd) = std::fs::read_dir(&out[i]) {
            let mut children: Vec<_> = rd
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                .map(|e| e.path())
                .collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    out
}
