//! The last steps before a workload runs, shared by init and `exec`: process attributes,
//! credentials, capabilities and seccomp in a fixed order, the working directory and the
//! program, then execve.
//!
//! Order: oom_score_adj, I/O priority, scheduler, personality, memory policy, LSM labels, rlimits (all while
//! privileged) → bounding set → [seccomp when !no_new_privs, which needs CAP_SYS_ADMIN] → user
//! and groups → no_new_privs → capability sets → chdir (as the user) → program lookup →
//! [seccomp when no_new_privs, as late as possible] → (caller: console, fds) → execve.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxPersonality, Process};

use crate::capabilities::{self, Sets};
use crate::error::{Error, Result};
use crate::procfs::Procfs;
use crate::{process as attrs, user};

pub struct Workload<'a> {
    pub process: &'a Process,
    pub personality: Option<&'a LinuxPersonality>,
    pub memory_policy: Option<&'a crate::mempolicy::MemPolicy>,
    pub caps: Option<Sets>,
    pub last_cap: u32,
    pub seccomp: Option<&'a moor_seccomp::Compiled>,
}

pub struct Ready {
    pub program: PathBuf,
    /// The seccomp user-notification listener, when the profile uses SCMP_ACT_NOTIFY.
    pub notify_fd: Option<OwnedFd>,
}

pub fn become_workload(procfs: &Procfs, w: &Workload) -> Result<Ready> {
    let process = w.process;
    if let Some(adj) = process.oom_score_adj() {
        attrs::set_oom_score_adj(procfs, adj)?;
    }
    attrs::set_io_priority(process)?;
    if let Some(s) = process.scheduler() {
        attrs::set_scheduler(s)?;
    }
    if let Some(p) = w.personality {
        attrs::set_personality(p)?;
    }
    if let Some(policy) = w.memory_policy {
        policy.apply()?;
    }
    attrs::set_lsm_labels(procfs, process)?;
    attrs::set_rlimits(process.rlimits().as_deref().unwrap_or_default())?;

    if let Some(caps) = &w.caps {
        capabilities::drop_bounding(caps.bounding, w.last_cap)?;
    }
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let mut notify_fd = None;
    if let (Some(filter), false) = (w.seccomp, no_new_privs) {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN, which a non-root user loses at
        // the switch below: load the filter while we are still root.
        notify_fd = filter.install()?;
    }
    user::switch(process.user())?;
    if no_new_privs {
        crate::sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| Error::sys("process.noNewPrivileges", e))?;
    }
    if let Some(caps) = &w.caps {
        capabilities::apply(caps, w.last_cap)?;
    }

    let cwd = process.cwd();
    nix::unistd::chdir(cwd).map_err(|e| Error::config("process.cwd", format!("{}: {e}", cwd.display())))?;
    verify_cwd()?;
    let env = process.env().as_deref().unwrap_or_default();
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args.first().ok_or_else(|| Error::config("process.args", "empty"))?;
    let program = find_program(arg0, env)?;
    if let (Some(filter), true) = (w.seccomp, no_new_privs) {
        notify_fd = filter.install()?;
    }
    Ok(Ready { program, notify_fd })
}

/// After chdir the working directory must resolve inside the container (CVE-2024-21626:
/// a cwd reached through a leaked host fd reads as "(unreachable)").
fn verify_cwd() -> Result<()> {
    match nix::unistd::getcwd() {
        Ok(p) if p.is_absolute() => Ok(()),
        Ok(p) => Err(Error::config(
            "process.cwd",
            format!("{} is outside the container", p.display()),
        )),
        Err(e) => Err(Error::config(
            "process.cwd",
            format!("the working directory is outside the container: {e}"),
        )),
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// args[0] as execve needs it: a path as given, or the first executable match in $PATH.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    let executable = |p: &Path| {
        let Ok(c) = CString::new(p.as_os_str().as_encoded_bytes()) else {
            return false;
        };
        // SAFETY: NUL-terminated path; faccessat with the effective ids.
        let ok = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) } == 0;
        ok && std::fs::metadata(p).is_ok_and(|m| m.is_file())
    };
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if executable(&p) {
            return Ok(p);
        }
        return Err(Error::config(
            "process.args",
            format!("exec: {arg0:?}: {}", std::io::Error::last_os_error()),
        ));
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(arg0);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(Error::config(
        "process.args",
        format!("exec: {arg0:?}: executable file not found in $PATH"),
    ))
}

pub fn exec(program: &Path, args: &[String], env: &[String]) -> Result<Infallible> {
    let cstr = |s: &str| CString::new(s).map_err(|_| Error::config("process", format!("{s:?} contains NUL")));
    let prog =
        CString::new(program.as_os_str().as_encoded_bytes()).map_err(|_| Error::config("process.args", "NUL"))?;
    let argv: Vec<CString> = args.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(|e| cstr(e)).collect::<Result<_>>()?;
    let e = match nix::unistd::execve(&prog, &argv, &envp) {
        Err(e) => e,
        Ok(never) => match never {},
    };
    Err(Error::config(
        "process.args",
        format!("exec {}: {e}", program.display()),
    ))
}
