//! Rootless containers, as runc runs them: an unprivileged caller gets a user namespace that
//! maps its own uid/gid (or, through the setuid helpers newuidmap/newgidmap, the ranges
//! /etc/subuid and /etc/subgid grant it), its state under `$XDG_RUNTIME_DIR/moor`, and a cgroup
//! only where it may write one.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxResources, Spec};

use crate::error::{Error, Result};

/// The global `--rootless` flag: `auto` decides from the caller (see `runtime::rootless::cgroups_rootless`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mode {
    #[default]
    Auto,
    True,
    False,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "true" => Ok(Mode::True),
            "false" => Ok(Mode::False),
            _ => Err(format!("--rootless {s:?}: expected auto, true or false")),
        }
    }
}

/// True when the effective uid is not 0: such a caller needs a user namespace for anything.
pub fn euid_rootless() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// True when this process runs in a user namespace other than the initial one (its uid map is
/// not the identity over the whole range).
pub fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
        .unwrap_or(false)
}

/// Whether cgroups are handled the rootless way (a cgroup the caller may not write is skipped,
/// with a warning, unless resources were asked for): runc's rule for `--rootless`. `auto` is
/// true for a non-root caller and for root inside a user namespace, whose "root" is usually
/// nobody on the host's cgroup hierarchy.
pub fn cgroups_rootless(mode: Mode) -> bool {
    match mode {
        Mode::True => true,
        Mode::False => false,
        Mode::Auto => euid_rootless() || in_user_namespace(),
    }
}

/// The default `--root`: `$XDG_RUNTIME_DIR/moor` for a rootless caller that has one (runc uses
/// `$XDG_RUNTIME_DIR/runc` the same way), else `/run/moor`. Root in the initial user namespace
/// always gets /run/moor, whatever its environment says. Like runc, the per-user directory is
/// made private and sticky, so that the runtime dir's cleanup of old files leaves it alone.
pub fn default_root() -> Result<PathBuf> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let Some(dir) = xdg.filter(|_| honour_xdg_runtime_dir()) else {
        return Ok(PathBuf::from("/run/moor"));
    };
    let root = PathBuf::from(dir).join("moor");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(|e| Error::path("cannot create state root", &root, e))?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700))
        .map_err(|e| Error::path("cannot chmod state root", &root, e))?;
    Ok(root)
}

fn honour_xdg_runtime_dir() -> bool {
    if euid_rootless() {
        return true;
    }
    if !in_user_namespace() {
        return false;
    }
    // root in a user namespace: a login shell of the real root keeps USER=root.
    std::env::var("USER").map_or(true, |u| u != "root")
}

/// What a rootless caller's config must have (runc checks the same): a user namespace, and
/// mappings when it is new.
pub fn check_config(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let namespaces = linux.namespaces().clone().unwrap_or_default();
    let Some(userns) = namespaces.iter().find(|n| n.typ() == LinuxNamespaceType::User) else {
        return Err(Error::config(
            "linux.namespaces",
            "a rootless container needs a user namespace (see moor spec --rootless)",
        ));
    };
    if userns.path().is_none() {
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(Error::config(
                "linux.uidMappings",
                "a rootless container needs at least one uid mapping",
            ));
        }
        if linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
            return Err(Error::config(
                "linux.gidMappings",
                "a rootless container needs at least one gid mapping",
            ));
        }
    }
    Ok(())
}

/// The first cgroup limit `resources` asks for, as its config.json field. Device rules are not
/// one: every default config has them, and runc ignores them when rootless (an unprivileged
/// user cannot create device nodes in the first place).
pub fn requested_limit(r: &LinuxResources) -> Option<String> {
    let mut v = serde_json::to_value(r).ok()?;
    v.as_object_mut()?.remove("devices");
    first_set(&v, "linux.resources")
}

/// The path of the first leaf of `v` that holds a value (not null, not an empty list or map).
fn first_set(v: &serde_json::Value, path: &str) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| first_set(v, &format!("{path}.{k}"))),
        serde_json::Value::Array(a) if a.is_empty() => None,
        _ => Some(path.to_string()),
    }
}

/// Runs newuidmap or newgidmap (`tool`) for `pid` with `maps`: the setuid helpers that write the
/// ranges /etc/subuid and /etc/subgid grant the caller. `field` names the mappings in errors.
pub fn map_with_tool(tool: &str, pid: i32, maps: &[LinuxIdMapping], field: &str) -> Result<()> {
    let path = find_in_path(tool).ok_or_else(|| {
        Error::config(
            field,
            format!(
                "these mappings need privilege or the setuid helper {tool}, which is not installed \
                 (Debian package uidmap); without it only the caller's own id can be mapped"
            ),
        )
    })?;
    let mut cmd = Command::new(&path);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([m.container_id(), m.host_id(), m.size()].map(|n| n.to_string()));
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::config(field, format!("run {}: {e}", path.display())))?;
    if !out.status.success() {
        return Err(Error::config(
            field,
            format!(
                "{} failed ({}): {} (are the host ids granted in /etc/sub{}id?)",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                if tool == "newuidmap" { "u" } else { "g" }
            ),
        ));
    }
    Ok(())
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(v: serde_json::Value) -> LinuxResources {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn device_rules_are_not_a_limit() {
        let r = resources(serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]}));
        assert_eq!(requested_limit(&r), None);
        assert_eq!(
            requested_limit(&resources(serde_json::json!({"hugepageLimits": []}))),
            None
        );
    }

    #[test]
    fn a_limit_is_named_by_its_field() {
        let r = resources(serde_json::json!({"devices": [], "memory": {"limit": 1048576}}));
        assert_eq!(requested_limit(&r).as_deref(), Some("linux.resources.memory.limit"));
        let r = resources(serde_json::json!({"pids": {"limit": 10}}));
        assert_eq!(requested_limit(&r).as_deref(), Some("linux.resources.pids.limit"));
    }
}
