//! Reading /proc/PID/mountinfo lines, and host mounts a test makes and must undo.

use std::path::{Path, PathBuf};

/// Optional fields (between field 6 and the "-" separator) of a mountinfo line: the
/// propagation tags such as `shared:N` and `master:N`.
pub fn optional_fields(line: &str) -> Vec<&str> {
    line.split_whitespace().skip(6).take_while(|f| *f != "-").collect()
}

/// Whether a propagation tag of the line starts with `prefix` ("shared:", "master:").
pub fn has_tag(line: &str, prefix: &str) -> bool {
    optional_fields(line).iter().any(|t| t.starts_with(prefix))
}

/// Super-block options (last field) of a mountinfo line.
pub fn super_opts(line: &str) -> Vec<&str> {
    line.split_whitespace().last().unwrap_or("").split(',').collect()
}

/// Fs type (after the "-") of a mountinfo line.
pub fn fs_type(line: &str) -> &str {
    let mut it = line.split_whitespace().skip_while(|f| *f != "-");
    it.next();
    it.next().unwrap_or("")
}

/// A host mount made by a test, lazily unmounted on drop. Declare it after the `Ctx`, so that
/// it is dropped first.
pub struct HostMount(PathBuf);

impl HostMount {
    /// A 1 MiB tmpfs on `at`.
    pub fn tmpfs(at: &Path) -> HostMount {
        nix::mount::mount(
            Some("moor-it-sub"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", at.display()));
        HostMount(at.to_path_buf())
    }

    /// `d` bound onto itself and made shared, so that propagation is observable.
    pub fn shared_self_bind(d: &Path) -> HostMount {
        nix::mount::mount(Some(d), d, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .unwrap_or_else(|e| panic!("bind {}: {e}", d.display()));
        let m = HostMount(d.to_path_buf());
        nix::mount::mount(
            None::<&str>,
            d,
            None::<&str>,
            nix::mount::MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap_or_else(|e| panic!("make-shared {}: {e}", d.display()));
        m
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}
