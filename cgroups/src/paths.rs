//! Turning OCI `linux.cgroupsPath` into a cgroup path inside each hierarchy (pure logic).

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Where the container's cgroup goes, before a hierarchy is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupPath {
    /// Relative to each hierarchy's root, e.g. `/moor-test/x`.
    Absolute(PathBuf),
    /// Relative to the calling process's own cgroup in each hierarchy (runc's behaviour for ""
    /// and for relative paths).
    Relative(PathBuf),
}

fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id == "." || id == ".." || id.contains('/') || id.contains('\0') {
        return Err(Error::InvalidPath {
            path: String::new(),
            msg: format!("container id {id:?} cannot name a cgroup"),
        });
    }
    Ok(())
}

/// Cleans a path lexically, refusing `..` (it could leave the hierarchy or the caller's cgroup).
fn clean(raw: &str) -> Result<PathBuf> {
    if raw.contains('\0') {
        return Err(Error::InvalidPath {
            path: raw.to_string(),
            msg: "contains a NUL byte".into(),
        });
    }
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                return Err(Error::InvalidPath {
                    path: raw.to_string(),
                    msg: "\"..\" is not allowed".into(),
                })
            }
            Component::Prefix(_) => {
                return Err(Error::InvalidPath {
                    path: raw.to_string(),
                    msg: "unexpected path prefix".into(),
                })
            }
        }
    }
    Ok(out)
}

/// Resolves a cgroupfs-driver `cgroupsPath`: "" → `<own cgroup>/<id>`, "/a/b" → `/a/b` under each
/// hierarchy root, "a/b" → `<own cgroup>/a/b`.
pub fn resolve_cgroupfs(cgroups_path: &str, container_id: &str) -> Result<CgroupPath> {
    if cgroups_path.is_empty() {
        check_id(container_id)?;
        return Ok(CgroupPath::Relative(PathBuf::from(container_id)));
    }
    let cleaned = clean(cgroups_path)?;
    if cgroups_path.starts_with('/') {
        if cleaned.as_os_str().is_empty() {
            return Err(Error::InvalidPath {
                path: cgroups_path.to_string(),
                msg: "the hierarchy root itself cannot be a container's cgroup".into(),
            });
        }
        Ok(CgroupPath::Absolute(PathBuf::from("/").join(cleaned)))
    } else {
        if cleaned.as_os_str().is_empty() {
            return Err(Error::InvalidPath {
                path: cgroups_path.to_string(),
                msg: "empty relative path".into(),
            });
        }
        Ok(CgroupPath::Relative(cleaned))
    }
}

/// Expands a systemd slice name: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`.
pub fn expand_slice(slice: &str) -> Result<PathBuf> {
    let bad = |msg: &str| Error::InvalidPath {
        path: slice.to_string(),
        msg: msg.to_string(),
    };
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad("a slice name must end in \".slice\""));
    };
    if slice.contains('/') {
        return Err(bad("a slice name cannot contain '/'"));
    }
    if stem == "-" {
        return Ok(PathBuf::from("/"));
    }
    let mut out = PathBuf::from("/");
    let mut prefix = String::new();
    for part in stem.split('-') {
        if part.is_empty() {
            return Err(bad("empty component in slice name"));
        }
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push(format!("{prefix}.slice"));
    }
    Ok(out)
}

/// A systemd-driver `cgroupsPath` (`slice:prefix:name`) taken apart.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SystemdUnit {
    /// The parent slice, e.g. `system.slice`.
    pub slice: String,
    /// The unit systemd creates: `<prefix>-<name>.scope`, or `<name>` when it is a slice.
    pub unit: String,
}

impl SystemdUnit {
    /// Parses `slice:prefix:name` ("" → `system.slice:moor:<id>`; an empty slice is
    /// `system.slice`), as runc does.
    pub fn parse(cgroups_path: &str, container_id: &str) -> Result<SystemdUnit> {
        let bad = |msg: &str| Error::InvalidPath {
            path: cgroups_path.to_string(),
            msg: msg.to_string(),
        };
        let (slice, prefix, name) = if cgroups_path.is_empty() {
            check_id(container_id)?;
            ("system.slice", "moor", container_id)
        } else {
            let parts: Vec<&str> = cgroups_path.split(':').collect();
            let [slice, prefix, name] = parts[..] else {
                return Err(bad("expected \"slice:prefix:name\" with the systemd cgroup driver"));
            };
            (if slice.is_empty() { "system.slice" } else { slice }, prefix, name)
        };
        let unit_char = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
        if name.is_empty() || !name.chars().all(unit_char) || !prefix.chars().all(unit_char) {
            return Err(bad("a unit name takes only ASCII letters, digits and \":-_.\\@\""));
        }
        let unit = if name.ends_with(".slice") {
            name.to_string()
        } else if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        if unit.len() > 255 {
            return Err(bad("the unit name is longer than 255 bytes"));
        }
        expand_slice(slice)?;
        Ok(SystemdUnit {
            slice: slice.to_string(),
            unit,
        })
    }

    /// True when the container's cgroup is a slice unit of its own rather than a scope.
    pub fn is_slice(&self) -> bool {
        self.unit.ends_with(".slice")
    }

    /// The cgroup path systemd gives the unit, relative to systemd's root cgroup:
    /// `/<expanded slice>/<unit>`.
    pub fn cgroup_path(&self) -> Result<PathBuf> {
        if self.is_slice() {
            // A slice's own name already spells out its parents.
            return expand_slice(&self.unit);
        }
        Ok(expand_slice(&self.slice)?.join(&self.unit))
    }
}

/// True when systemd is the running init (the same test as sd_booted()).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Joins a hierarchy directory with a path that may start with '/'.
pub(crate) fn join_rel(base: &Path, rel: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for c in rel.components() {
        if let Component::Normal(n) = c {
            out.push(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_path_is_own_cgroup_plus_id() {
        assert_eq!(
            resolve_cgroupfs("", "ctr1").unwrap(),
            CgroupPath::Relative("ctr1".into())
        );
        assert!(resolve_cgroupfs("", "a/b").is_err());
        assert!(resolve_cgroupfs("", "..").is_err());
    }

    #[test]
    fn absolute_and_relative() {
        assert_eq!(
            resolve_cgroupfs("/moor-test/x/", "id").unwrap(),
            CgroupPath::Absolute("/moor-test/x".into())
        );
        assert_eq!(
            resolve_cgroupfs("//a/./b", "id").unwrap(),
            CgroupPath::Absolute("/a/b".into())
        );
        assert_eq!(
            resolve_cgroupfs("a/b", "id").unwrap(),
            CgroupPath::Relative("a/b".into())
        );
        assert!(resolve_cgroupfs("/a/../../etc", "id").is_err());
        assert!(resolve_cgroupfs("/", "id").is_err());
        assert!(resolve_cgroupfs("./", "id").is_err());
    }

    #[test]
    fn slices() {
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            PathBuf::from("/a.slice/a-b.slice/a-b-c.slice")
        );
        assert_eq!(expand_slice("-.slice").unwrap(), PathBuf::from("/"));
        assert!(expand_slice("a--b.slice").is_err());
        assert!(expand_slice("nope").is_err());
    }

    #[test]
    fn systemd_units() {
        let path = |p: &str, id: &str| SystemdUnit::parse(p, id).and_then(|u| u.cgroup_path());
        assert_eq!(
            path("machine.slice:moor:abc", "x").unwrap(),
            PathBuf::from("/machine.slice/moor-abc.scope")
        );
        assert_eq!(path("", "abc").unwrap(), PathBuf::from("/system.slice/moor-abc.scope"));
        assert_eq!(
            path(":cri:abc", "x").unwrap(),
            PathBuf::from("/system.slice/cri-abc.scope")
        );
        assert_eq!(
            path("kubepods-burstable.slice:cri-containerd:0123", "x").unwrap(),
            PathBuf::from("/kubepods.slice/kubepods-burstable.slice/cri-containerd-0123.scope")
        );
        assert_eq!(path("x.slice::abc", "x").unwrap(), PathBuf::from("/x.slice/abc.scope"));
        assert_eq!(
            path("system.slice:p:a-b.slice", "x").unwrap(),
            PathBuf::from("/a.slice/a-b.slice")
        );
        assert!(SystemdUnit::parse("system.slice:p:a-b.slice", "x").unwrap().is_slice());
        for bad in [
            "/abs/path",
            "a:b",
            "a.slice:b:c:d",
            "system.slice:moor:",
            "system.slice:moor:a/b",
            "system.slice:mo or:x",
            "system.slice:moor:x\n",
            "noslice:moor:x",
        ] {
            assert!(SystemdUnit::parse(bad, "x").is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn join() {
        assert_eq!(
            join_rel(Path::new("/sys/fs/cgroup/cpu"), Path::new("/a/b")),
            PathBuf::from("/sys/fs/cgroup/cpu/a/b")
        );
    }
}
