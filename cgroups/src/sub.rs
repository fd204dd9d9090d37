//! `exec --cgroup`: a process joins existing cgroups below the container's own, as runc 1.1's
//! `--cgroup [controller[,controller]:]path` does. Nothing is created: the sub-cgroup must
//! exist (its owner made it, inside the container or from the host).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};

const FIELD: &str = "--cgroup";

/// Sub-cgroup paths (relative to the container's cgroup) by v1 controller name; the key ""
/// puts the process in the same sub-cgroup in every hierarchy (the only form on cgroup v2).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubCgroups(BTreeMap<String, PathBuf>);

impl SubCgroups {
    /// Parses the `--cgroup` arguments. A path without a controller prefix may only be given
    /// once; a controller may be named only once.
    pub fn parse(args: &[String]) -> Result<SubCgroups> {
        let mut out = BTreeMap::new();
        for arg in args {
            let parts: Vec<&str> = arg.splitn(3, ':').collect();
            let bad = |why: &str| Error::invalid(FIELD, format!("{arg:?}: {why}"));
            match parts[..] {
                [path] => {
                    if args.len() != 1 {
                        return Err(bad("a path without <controller>: prefix must be the only --cgroup"));
                    }
                    out.insert(String::new(), below(arg, path)?);
                }
                [ctrls, path] => {
                    for ctrl in ctrls.split(',') {
                        if ctrl.is_empty() {
                            return Err(bad("empty controller name"));
                        }
                        if out.insert(ctrl.to_string(), below(arg, path)?).is_some() {
                            return Err(bad(&format!("controller {ctrl} given more than once")));
                        }
                    }
                }
                _ => return Err(bad("expected [controller[,controller]:]path")),
            }
        }
        Ok(SubCgroups(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The cleaned relative form of `path`, which must not leave the container's cgroup.
fn below(arg: &str, path: &str) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir if out.pop() => {}
            Component::ParentDir => {
                return Err(Error::invalid(
                    FIELD,
                    // runc's wording, which callers match.
                    format!("{arg:?}: {path} is not a sub cgroup path (it leaves the container's cgroup)"),
                ));
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(out)
}

impl Cgroup {
    /// Moves a process into the container's cgroup, or into the given sub-cgroups of it
    /// (hierarchies not named keep the container's own directory).
    pub fn add_task_in(&self, pid: i32, sub: &SubCgroups) -> Result<()> {
        if sub.is_empty() {
            return self.add_task(pid);
        }
        let mut targets: BTreeMap<PathBuf, PathBuf> = self.dirs().into_iter().map(|d| (d.clone(), d)).collect();
        if let Some(all) = sub.0.get("") {
            for (dir, target) in targets.iter_mut() {
                *target = dir.join(all);
            }
        } else {
            // Controllers mounted together (cpu,cpuacct) share a directory, so one process
            // can only be in one sub-cgroup there.
            let mut chosen: BTreeMap<&Path, &Path> = BTreeMap::new();
            for (ctrl, rel) in &sub.0 {
                let Some(dir) = self.v1.get(ctrl) else {
                    let known: BTreeSet<&str> = self.v1.keys().map(String::as_str).collect();
                    return Err(Error::invalid(
                        FIELD,
                        format!("unknown controller {ctrl:?}: the container's cgroup v1 controllers are {known:?}"),
                    ));
                };
                if chosen.insert(dir, rel).is_some_and(|prev| prev != rel.as_path()) {
                    return Err(Error::invalid(
                        FIELD,
                        format!(
                            "{ctrl} shares {} with another controller given another path",
                            dir.display()
                        ),
                    ));
                }
            }
            for (dir, rel) in chosen {
                targets.insert(dir.to_path_buf(), dir.join(rel));
            }
        }
        if pid <= 0 {
            return Err(Error::Setup(format!("add_task: invalid pid {pid}")));
        }
        for target in targets.values() {
            let path = target.join("cgroup.procs");
            std::fs::write(&path, pid.to_string()).map_err(|e| {
                // runc's (Go's) wording, lower-case errno text, which callers match.
                let text = e.to_string();
                let mut chars = text.chars();
                let lower: String = chars
                    .next()
                    .map(|c| c.to_lowercase().chain(chars).collect())
                    .unwrap_or_default();
                Error::invalid(FIELD, format!("adding pid {pid} to {}: {lower}", path.display()))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<SubCgroups> {
        SubCgroups::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse(&["a/b"]).unwrap().0,
            BTreeMap::from([(String::new(), PathBuf::from("a/b"))])
        );
        let m = parse(&["memory,pids:x", "cpu:/y/../z"]).unwrap().0;
        assert_eq!(m["memory"], PathBuf::from("x"));
        assert_eq!(m["pids"], PathBuf::from("x"));
        assert_eq!(m["cpu"], PathBuf::from("z"));
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn refused() {
        for bad in [
            &["a:b:c"][..],
            &["x", "y"],
            &["../x"],
            &["memory:a/../../b"],
            &[":x"],
            &["memory:x", "memory:y"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
