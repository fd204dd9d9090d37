//! The process's user and groups: runAsUser/runAsGroup (the container's over the pod's), else
//! the image's User; names and primary groups from the rootfs's /etc/passwd and /etc/group;
//! supplementalGroups and fsGroup added; runAsNonRoot checked as the kubelet checks it.
//!
//! The rootfs is hostile: both files are opened with openat2(RESOLVE_IN_ROOT), so a symlink
//! cannot leave it, must be regular files, and are read up to a bound.

use super::{Ctx, SpecError};
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// The most of /etc/passwd or /etc/group read.
const MAX_DB_BYTES: u64 = 4 << 20;

#[derive(Debug, PartialEq)]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

pub(crate) fn resolve(cx: &Ctx) -> Result<User, SpecError> {
    let sc_user = cx
        .sc
        .and_then(|s| s.run_as_user)
        .map(|u| (u, "securityContext.runAsUser"));
    let pod_user = cx
        .pod_sc
        .and_then(|s| s.run_as_user)
        .map(|u| (u, "spec.securityContext.runAsUser"));
    let sc_group = cx
        .sc
        .and_then(|s| s.run_as_group)
        .map(|g| (g, "securityContext.runAsGroup"));
    let pod_group = cx
        .pod_sc
        .and_then(|s| s.run_as_group)
        .map(|g| (g, "spec.securityContext.runAsGroup"));
    let field = |f: &str| {
        if f.starts_with("spec.") {
            f.to_string()
        } else {
            cx.field(f)
        }
    };
    let id =
        |(v, f): (i64, &str)| u32::try_from(v).map_err(|_| SpecError::invalid(field(f), format!("{v} is no valid id")));
    let run_as_user = sc_user.or(pod_user).map(id).transpose()?;
    let run_as_group = sc_group.or(pod_group).map(id).transpose()?;
    check_non_root(cx, run_as_user)?;

    let passwd = || read_db(cx.input.rootfs, "etc/passwd");
    let (uid, mut gid, name) = match run_as_user {
        Some(uid) => {
            let entry = passwd()?.and_then(|p| passwd_by_uid(&p, uid));
            (uid, entry.as_ref().map_or(0, |e| e.1), entry.map(|e| e.0))
        }
        None => image_user(cx, &passwd)?,
    };
    if let Some(g) = run_as_group {
        gid = g;
    }
    let mut additional = vec![gid];
    if let Some(name) = name {
        if let Some(groups) = read_db(cx.input.rootfs, "etc/group")? {
            additional.extend(member_of(&groups, &name));
        }
    }
    let pod_sc = cx.pod_sc;
    let supplemental = pod_sc.and_then(|s| s.supplemental_groups.clone()).unwrap_or_default();
    for (i, g) in supplemental.iter().enumerate() {
        let g = u32::try_from(*g).map_err(|_| {
            SpecError::invalid(
                format!("spec.securityContext.supplementalGroups[{i}]"),
                format!("{g} is no valid id"),
            )
        })?;
        additional.push(g);
    }
    if let Some(g) = pod_sc.and_then(|s| s.fs_group) {
        additional.push(
            u32::try_from(g)
                .map_err(|_| SpecError::invalid("spec.securityContext.fsGroup", format!("{g} is no valid id")))?,
        );
    }
    let mut seen = std::collections::HashSet::new();
    additional.retain(|g| seen.insert(*g));
    Ok(User {
        uid,
        gid,
        additional_gids: additional,
    })
}

/// The kubelet's verifyRunAsNonRoot, with its wording.
fn check_non_root(cx: &Ctx, run_as_user: Option<u32>) -> Result<(), SpecError> {
    let non_root = cx
        .sc
        .and_then(|s| s.run_as_non_root)
        .or(cx.pod_sc.and_then(|s| s.run_as_non_root));
    if non_root != Some(true) {
        return Ok(());
    }
    let field = if cx.sc.and_then(|s| s.run_as_non_root).is_some() {
        cx.field("securityContext.runAsNonRoot")
    } else {
        "spec.securityContext.runAsNonRoot".to_string()
    };
    let pod = format!(
        "{}_{}({})",
        cx.pod_name(),
        cx.namespace(),
        cx.input.pod.metadata.uid.as_deref().unwrap_or("")
    );
    let container = &cx.container.name;
    let message = match run_as_user {
        Some(0) => format!("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})"),
        Some(_) => return Ok(()),
        None => {
            let user = cx.input.image.user.as_deref().unwrap_or("");
            let user_part = user.split(':').next().unwrap_or("");
            match user_part.parse::<u32>() {
                Ok(0) => format!("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})"),
                Ok(_) => return Ok(()),
                Err(_) if user_part.is_empty() => {
                    format!("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")
                }
                Err(_) => format!(
                    "container has runAsNonRoot and image has non-numeric user ({user_part}), cannot verify user is non-root (pod: {pod:?}, container: {container})"
                ),
            }
        }
    };
    Err(SpecError::NonRoot { field, message })
}

/// The image's User: `uid`, `uid:gid`, `name`, `name:group`, `uid:group` (as Docker and
/// containerd read it); a numeric uid absent from /etc/passwd gets gid 0.
fn image_user(
    cx: &Ctx,
    passwd: &dyn Fn() -> Result<Option<String>, SpecError>,
) -> Result<(u32, u32, Option<String>), SpecError> {
    let spec = cx.input.image.user.as_deref().unwrap_or("").trim();
    if spec.is_empty() {
        let name = passwd()?.and_then(|p| passwd_by_uid(&p, 0)).map(|e| e.0);
        return Ok((0, 0, name));
    }
    let field = "image config User";
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let db = passwd()?;
    let (uid, mut gid, name) = match user.parse::<u32>() {
        Ok(uid) => {
            let entry = db.as_deref().and_then(|p| passwd_by_uid(p, uid));
            (uid, entry.as_ref().map_or(0, |e| e.1), entry.map(|e| e.0))
        }
        Err(_) => {
            let (uid, gid) = db.as_deref().and_then(|p| passwd_by_name(p, user)).ok_or_else(|| {
                SpecError::invalid(
                    field,
                    format!("unable to find user {user}: no matching entries in passwd file"),
                )
            })?;
            (uid, gid, Some(user.to_string()))
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => read_db(cx.input.rootfs, "etc/group")?
                .as_deref()
                .and_then(|db| group_by_name(db, g))
                .ok_or_else(|| {
                    SpecError::invalid(
                        field,
                        format!("unable to find group {g}: no matching entries in group file"),
                    )
                })?,
        };
    }
    Ok((uid, gid, name))
}

/// (name, gid) of the passwd entry with this uid.
fn passwd_by_uid(db: &str, uid: u32) -> Option<(String, u32)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[2].parse() == Ok(uid)).then(|| f[3].parse().ok().map(|g| (f[0].to_string(), g)))?
    })
}

/// (uid, gid) of the passwd entry with this name.
fn passwd_by_name(db: &str, name: &str) -> Option<(u32, u32)> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

fn group_by_name(db: &str, name: &str) -> Option<u32> {
    db.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 3 && f[0] == name {
            f[2].parse().ok()
        } else {
            None
        }
    })
}

/// The gids of the groups that list `user` as a member (containerd's supplementary groups).
fn member_of(db: &str, user: &str) -> Vec<u32> {
    db.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[0] != user && f[3].split(',').any(|m| m.trim() == user) {
                f[2].parse().ok()
            } else {
                None
            }
        })
        .collect()
}

/// A file of the rootfs, resolved inside it; None when it does not exist.
fn read_db(rootfs: &Path, rel: &str) -> Result<Option<String>, SpecError> {
    let path = rootfs.join(rel);
    let io = |source: std::io::Error| SpecError::Io {
        field: "image rootfs".into(),
        path: path.clone(),
        source,
    };
    let root = std::fs::File::open(rootfs).map_err(|e| SpecError::Io {
        field: "image rootfs".into(),
        path: rootfs.to_path_buf(),
        source: e,
    })?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match nix::fcntl::openat2(root.as_raw_fd(), rel, how) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT) => return Ok(None),
        Err(e) => return Err(io(e.into())),
    };
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|e| io(e.into()))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    // Reopened from the verified O_PATH descriptor: no second lookup in the rootfs, and no
    // open of a device or fifo that the rootfs could put there.
    let file = std::fs::File::open(format!("/proc/self/fd/{}", fd.as_raw_fd())).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_DB_BYTES).read_to_end(&mut bytes).map_err(io)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}
