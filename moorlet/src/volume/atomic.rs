//! Files published the kubelet's way: the data goes in a fresh `..<timestamp>` directory, the
//! `..data` symlink is swapped to it with one rename, and the names a user sees are symlinks
//! through `..data`. A reader that opens `..data` once sees one version of every key; a reader of
//! any one file sees it whole.

use super::VolumeError;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// A file to publish. No Debug: it may hold a secret.
pub(crate) struct File {
    pub(crate) bytes: Vec<u8>,
    pub(crate) mode: u32,
}

/// Relative path (checked by `check_path`) → contents.
pub(crate) type Payload = BTreeMap<String, File>;

/// A path under the volume: relative, no `..` component, nothing starting with `..` (those
/// names are the writer's own).
pub(crate) fn check_path(field: &str, path: &str) -> Result<(), VolumeError> {
    let bad = |reason| VolumeError::invalid(field, path, reason);
    if path.is_empty() || path.len() > 4096 {
        return Err(bad("must be 1 to 4096 characters"));
    }
    if path.contains('\0') {
        return Err(bad("must not contain NUL"));
    }
    if Path::new(path).is_absolute() {
        return Err(bad("must be a relative path"));
    }
    for c in Path::new(path).components() {
        match c {
            Component::Normal(s) if !s.as_encoded_bytes().starts_with(b"..") => {}
            Component::CurDir => return Err(bad("must not contain '.' elements")),
            _ => return Err(bad("must not contain '..' or an element starting with '..'")),
        }
    }
    Ok(())
}

pub(crate) fn publish(dir: &Path, payload: &Payload) -> Result<(), VolumeError> {
    let data_link = dir.join(DATA);
    let old = std::fs::read_link(&data_link).ok();
    let ts_name = new_timestamp_dir(dir)?;
    let ts_dir = dir.join(&ts_name);
    if let Err(e) = write_tree(&ts_dir, payload) {
        let _ = std::fs::remove_dir_all(&ts_dir);
        return Err(e);
    }
    let tmp_link = dir.join(DATA_TMP);
    match std::fs::remove_file(&tmp_link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(VolumeError::io("remove", &tmp_link, e)),
    }
    std::os::unix::fs::symlink(&ts_name, &tmp_link).map_err(|e| VolumeError::io("create symlink", &tmp_link, e))?;
    std::fs::rename(&tmp_link, &data_link).map_err(|e| VolumeError::io("rename", &data_link, e))?;

    let visible: BTreeSet<String> = payload
        .keys()
        .filter_map(|p| Path::new(p).components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    for name in &visible {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new(DATA).join(name), &link)
                .map_err(|e| VolumeError::io("create symlink", &link, e))?;
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|e| VolumeError::io("read directory", dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") || visible.contains(&name) {
            continue;
        }
        let path = entry.path();
        let ours = std::fs::read_link(&path).is_ok_and(|t| t.starts_with(DATA));
        if ours {
            std::fs::remove_file(&path).map_err(|e| VolumeError::io("remove", &path, e))?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts_name.as_str()) {
        let old_dir = dir.join(old);
        if old_dir.parent() == Some(dir) {
            std::fs::remove_dir_all(&old_dir).map_err(|e| VolumeError::io("remove", &old_dir, e))?;
        }
    }
    Ok(())
}

fn new_timestamp_dir(dir: &Path) -> Result<String, VolumeError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    for attempt in 0u32..100 {
        let name = format!("..{}_{:09}_{attempt}", now.as_secs(), now.subsec_nanos());
        let path = dir.join(&name);
        match std::fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(VolumeError::io("create directory", &path, e)),
        }
    }
    Err(VolumeError::io(
        "create a timestamped directory in",
        dir,
        std::io::ErrorKind::AlreadyExists.into(),
    ))
}

fn write_tree(root: &Path, payload: &Payload) -> Result<(), VolumeError> {
    // Modes are set after creation: the process umask must not change what the spec says.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| VolumeError::io("chmod", root, e))?;
    for (rel, file) in payload {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| VolumeError::io("create directory", parent, e))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| VolumeError::io("create", &path, e))?;
        f.write_all(&file.bytes)
            .map_err(|e| VolumeError::io("write", &path, e))?;
        f.set_permissions(std::fs::Permissions::from_mode(file.mode))
            .map_err(|e| VolumeError::io("chmod", &path, e))?;
        f.sync_all().map_err(|e| VolumeError::io("fsync", &path, e))?;
    }
    Ok(())
}
