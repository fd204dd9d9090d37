//! Volumes backed by host directories: emptyDir (disk or tmpfs), hostPath, PVC claims.

use super::quantity::parse_quantity;
use super::VolumeError;
use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, HostPathVolumeSource};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A directory every container user may write, as the kubelet makes emptyDirs.
pub(crate) fn make_dir(path: &Path, mode: u32) -> Result<(), VolumeError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| VolumeError::io("create directory", path, e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| VolumeError::io("chmod", path, e))
}

pub(crate) fn is_mount_point(path: &Path) -> bool {
    let (Ok(me), Some(Ok(parent))) = (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    me.dev() != parent.dev()
}

/// A tmpfs on `path` (once: a prepared volume keeps its data); `size` 0 is never passed, as
/// tmpfs would read it as "no limit".
pub(crate) fn mount_tmpfs(path: &Path, size: Option<u64>, mode: u32) -> Result<(), VolumeError> {
    make_dir(path, mode)?;
    if is_mount_point(path) {
        return Ok(());
    }
    let mut data = format!("mode={mode:o}");
    if let Some(size) = size {
        data.push_str(&format!(",size={size}"));
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some(data.as_str()))
        .map_err(|e| VolumeError::os("mount tmpfs on", path, e))
}

/// Unmounts everything stacked on `path`.
pub(crate) fn unmount_all(path: &Path) -> Result<(), VolumeError> {
    loop {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(VolumeError::os("unmount", path, e)),
        }
    }
}

pub(crate) fn empty_dir(src: &EmptyDirVolumeSource, field: &str, path: &Path) -> Result<(), VolumeError> {
    match src.medium.as_deref().unwrap_or("") {
        "" => make_dir(path, 0o777),
        "Memory" => {
            let size = match &src.size_limit {
                None => None,
                Some(q) => {
                    let f = format!("{field}.emptyDir.sizeLimit");
                    let bytes = parse_quantity(&q.0).ok_or_else(|| VolumeError::invalid(&f, &q.0, "not a quantity"))?;
                    if bytes < 1.0 {
                        return Err(VolumeError::invalid(
                            f,
                            &q.0,
                            "a memory emptyDir needs at least one byte",
                        ));
                    }
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    // ceil of a finite, positive f64; `as` saturates
                    let b = bytes.ceil() as u64;
                    Some(b)
                }
            };
            mount_tmpfs(path, size, 0o777)
        }
        other => Err(VolumeError::invalid(
            format!("{field}.emptyDir.medium"),
            other,
            "must be \"\" or Memory",
        )),
    }
}

/// Checks (and for the *OrCreate types makes) a hostPath as the kubelet does; symlinks are followed.
pub(crate) fn host_path(src: &HostPathVolumeSource, field: &str) -> Result<PathBuf, VolumeError> {
    let f = format!("{field}.hostPath");
    let path = PathBuf::from(&src.path);
    if !path.is_absolute() || src.path.contains('\0') {
        return Err(VolumeError::invalid(
            format!("{f}.path"),
            &src.path,
            "must be an absolute path",
        ));
    }
    let kind = src.type_.as_deref().unwrap_or("");
    let fail = |reason: String| VolumeError::HostPath {
        field: f.clone(),
        path: path.clone(),
        reason,
    };
    let meta = std::fs::metadata(&path);
    let exists = |what: &str| match &meta {
        Ok(m) => Ok(m.clone()),
        Err(e) => Err(fail(format!("type {kind}: no {what} there ({e})"))),
    };
    match kind {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_err() {
                make_dir(&path, 0o755)?;
            }
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                return Err(fail("type DirectoryOrCreate: exists and is not a directory".into()));
            }
        }
        "FileOrCreate" => {
            if meta.is_err() {
                // The kubelet does not make the parent directory either.
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&path)
                    .map_err(|e| fail(format!("type FileOrCreate: cannot create the file ({e})")))?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
                    .map_err(|e| VolumeError::io("chmod", &path, e))?;
            }
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(fail("type FileOrCreate: exists and is not a regular file".into()));
            }
        }
        "Directory" => check(exists("directory")?.file_type().is_dir(), "directory", kind, &fail)?,
        "File" => check(exists("file")?.file_type().is_file(), "regular file", kind, &fail)?,
        "Socket" => check(exists("socket")?.file_type().is_socket(), "socket", kind, &fail)?,
        "CharDevice" => check(
            exists("character device")?.file_type().is_char_device(),
            "character device",
            kind,
            &fail,
        )?,
        "BlockDevice" => check(
            exists("block device")?.file_type().is_block_device(),
            "block device",
            kind,
            &fail,
        )?,
        other => {
            return Err(VolumeError::invalid(
                format!("{f}.type"),
                other,
                "must be \"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice or BlockDevice",
            ))
        }
    }
    Ok(path)
}

fn check(ok: bool, what: &str, kind: &str, fail: &dyn Fn(String) -> VolumeError) -> Result<(), VolumeError> {
    if ok {
        Ok(())
    } else {
        Err(fail(format!("type {kind}: not a {what}")))
    }
}

/// A claim's directory, `<claims_dir>/<namespace>/<claimName>`: it outlives the pod.
pub(crate) fn claim(claims_dir: &Path, namespace: &str, claim: &str, field: &str) -> Result<PathBuf, VolumeError> {
    super::check_name(&format!("{field}.persistentVolumeClaim.claimName"), claim, 253)?;
    super::check_name("metadata.namespace", namespace, 63)?;
    let dir = claims_dir.join(namespace).join(claim);
    if !dir.is_dir() {
        make_dir(&dir, 0o777)?;
    }
    Ok(dir)
}
