//! Mounts: containerd's defaults (proc, dev, devpts, shm, mqueue, sysfs, cgroup), the pod's
//! /dev/shm, volumeMounts (subPath confined to the volume), the pod's /etc/hosts,
//! /etc/hostname and /etc/resolv.conf, and the termination log.

use super::env::PodEnv;
use super::{Ctx, SpecError};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Value};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

fn bind(destination: &str, source: &Path, read_only: bool, propagation: &str) -> Value {
    let mut options = vec!["rbind", propagation];
    options.push(if read_only { "ro" } else { "rw" });
    json!({"destination": destination, "type": "bind", "source": source, "options": options})
}

pub(crate) fn mounts(cx: &Ctx, env: &PodEnv) -> Result<Vec<Value>, SpecError> {
    let privileged = cx.privileged();
    let ro_root = cx.sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false);
    let sys_ro = if privileged { "rw" } else { "ro" };
    let shm = match (cx.input.shm, cx.input.ipcns) {
        (Some(dir), _) => bind("/dev/shm", dir, false, "rprivate"),
        (None, None) => bind("/dev/shm", Path::new("/dev/shm"), false, "rprivate"),
        (None, Some(_)) => json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    };
    let mut out = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        shm,
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys_ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", sys_ro]}),
    ];
    let files = [
        ("/etc/hosts", cx.input.etc_hosts),
        ("/etc/hostname", cx.input.etc_hostname),
        ("/etc/resolv.conf", cx.input.resolv_conf),
    ];
    for (dest, source) in files {
        if let Some(source) = source {
            out.push(bind(dest, source, ro_root, "rprivate"));
        }
    }
    if let Some(log) = cx.input.termination_log {
        let dest = cx
            .container
            .termination_message_path
            .as_deref()
            .filter(|p| !p.is_empty())
            .unwrap_or("/dev/termination-log");
        if !dest.starts_with('/') {
            return Err(SpecError::invalid(
                cx.field("terminationMessagePath"),
                format!("{dest:?} is not an absolute path"),
            ));
        }
        out.push(bind(dest, log, false, "rprivate"));
    }
    for (i, m) in cx.container.volume_mounts.iter().flatten().enumerate() {
        let field = cx.field(&format!("volumeMounts[{i}]"));
        if !m.mount_path.starts_with('/') || m.mount_path.contains('\0') {
            return Err(SpecError::invalid(
                format!("{field}.mountPath"),
                format!("{:?} is not an absolute path", m.mount_path),
            ));
        }
        let (_, source, volume_ro) = cx
            .input
            .volumes
            .iter()
            .find(|(name, _, _)| *name == m.name)
            .ok_or_else(|| SpecError::invalid(format!("{field}.name"), format!("no volume {:?} in the pod", m.name)))?;
        let sub = match (
            m.sub_path.as_deref().filter(|s| !s.is_empty()),
            m.sub_path_expr.as_deref().filter(|s| !s.is_empty()),
        ) {
            (Some(_), Some(_)) => {
                return Err(SpecError::invalid(
                    format!("{field}.subPathExpr"),
                    "subPath and subPathExpr are mutually exclusive",
                ))
            }
            (Some(s), None) => Some((s.to_string(), format!("{field}.subPath"))),
            (None, Some(e)) => Some((env.expand(e), format!("{field}.subPathExpr"))),
            (None, None) => None,
        };
        let source = match sub {
            Some((sub, f)) => sub_path(source, &sub, &f)?,
            None => source.clone(),
        };
        let propagation = match m.mount_propagation.as_deref().unwrap_or("None") {
            "None" => "rprivate",
            "HostToContainer" => "rslave",
            "Bidirectional" if privileged => "rshared",
            "Bidirectional" => {
                return Err(SpecError::invalid(
                    format!("{field}.mountPropagation"),
                    "Bidirectional needs a privileged container",
                ))
            }
            other => {
                return Err(SpecError::invalid(
                    format!("{field}.mountPropagation"),
                    format!("unknown propagation {other:?}"),
                ))
            }
        };
        let read_only = m.read_only.unwrap_or(false) || *volume_ro;
        // A volume mounted where a default mount is replaces it (as containerd does).
        out.retain(|d| d["destination"] != m.mount_path.as_str());
        out.push(bind(&m.mount_path, &source, read_only, propagation));
    }
    Ok(out)
}

/// A subPath inside its volume: relative, no `..`, and (created if missing, as the kubelet
/// does) reached without following a symlink, so that a container that wrote the volume cannot
/// point it elsewhere on the host.
fn sub_path(volume: &Path, sub: &str, field: &str) -> Result<PathBuf, SpecError> {
    let rel = Path::new(sub);
    if sub.contains('\0')
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(SpecError::invalid(
            field,
            format!("{sub:?} must be a relative path without '..'"),
        ));
    }
    let io = |path: &Path, e: nix::errno::Errno| SpecError::Io {
        field: field.to_string(),
        path: path.to_path_buf(),
        source: e.into(),
    };
    let root = nix::fcntl::open(
        volume,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(volume, e))?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    let mut dir = unsafe { OwnedFd::from_raw_fd(root) };
    let names: Vec<_> = rel.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    let mut path = volume.to_path_buf();
    for name in &names {
        path.push(name);
        let how = || {
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
                .mode(Mode::empty())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
        };
        let fd = match nix::fcntl::openat2(dir.as_raw_fd(), name.as_os_str(), how()) {
            Err(nix::errno::Errno::ENOENT) => {
                match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name.as_os_str(), Mode::from_bits_truncate(0o755))
                {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(io(&path, e)),
                }
                nix::fcntl::openat2(dir.as_raw_fd(), name.as_os_str(), how()).map_err(|e| io(&path, e))?
            }
            r => r.map_err(|e| io(&path, e))?,
        };
        // SAFETY: openat2 just returned this descriptor and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        dir = fd;
    }
    Ok(path)
}

/// The host's devices, for privileged containers (as containerd gives them).
pub(crate) fn host_devices() -> Vec<Value> {
    let mut out = Vec::new();
    walk_devices(Path::new("/dev"), 0, &mut out);
    out
}

fn walk_devices(dir: &Path, depth: usize, out: &mut Vec<Value>) {
    const SKIP: &[&str] = &[
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/dev/console",
        "/dev/ptmx",
        "/dev/.lxc",
        "/dev/.udev",
    ];
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if SKIP.iter().any(|s| path == Path::new(s)) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = meta.file_type();
        if ft.is_dir() && depth < 4 {
            walk_devices(&path, depth + 1, out);
            continue;
        }
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        let rdev = meta.rdev();
        out.push(json!({
            "type": kind, "path": path, "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
            "fileMode": meta.mode() & 0o7777, "uid": meta.uid(), "gid": meta.gid(),
        }));
    }
}
