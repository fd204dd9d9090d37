//! The last steps before a workload runs, shared by init and `exec`: process attributes,
//! credentials, capabilities and seccomp in a fixed order, the working directory and the
//! program, then execve.
//!
//! Order: oom_score_adj, I/O priority, scheduler, personality, memory policy, LSM labels, rlimits (all while
//! privileged) → bounding set → chdir (with the runtime's privileges) → stdio to the user →
//! umask, execve's arguments, fds close-on-exec → [seccomp when !no_new_privs, which needs
//! CAP_SYS_ADMIN] → user and groups → no_new_privs → capability sets → [chdir as the user when
//! root was refused] → program lookup → [seccomp when no_new_privs, as late as possible] →
//! (caller: created, start barrier) → execve.
//!
//! Once the filter is in, moor may only make the syscalls a profile must allow for execve to
//! work (or that runc makes there too): everything else is done before it. Without
//! no_new_privs the credential switch has to follow the filter, as in runc.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use oci_spec::runtime::{LinuxPersonality, Process};

use crate::error::{Error, Result};
use crate::init::capabilities::{self, Sets};
use crate::init::{process as attrs, user};
use crate::sys::procfs::Procfs;

pub struct Workload<'a> {
    pub process: &'a Process,
    pub personality: Option<&'a LinuxPersonality>,
    pub memory_policy: Option<&'a crate::init::mempolicy::MemPolicy>,
    pub caps: Option<Sets>,
    pub last_cap: u32,
    pub seccomp: Option<&'a moor_seccomp::Compiled>,
    /// The environment the workload gets.
    pub env: &'a [String],
    /// How many fds from 3 up the workload keeps (preserved and socket-activation fds).
    pub keep_fds: u32,
    /// The workload's pty slave, already its stdio: given to its user like other stdio.
    pub pty: Option<&'a OwnedFd>,
    /// Init waits at the start barrier after this: it drops its code pages (see `sys::pages`)
    /// right before a filter goes in, since madvise may be filtered (else at the barrier).
    pub release_code: Option<&'a crate::sys::pages::CodeRanges>,
}

pub struct Ready {
    pub exec: Exec,
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
    // The working directory with the runtime's privileges first, as runc: the user may not be
    // allowed to reach it but may work in it. Only where root is refused (root_squash on NFS)
    // is it entered again as the user.
    let cwd = process.cwd();
    let cwd_as_user = match nix::unistd::chdir(cwd) {
        Ok(()) => {
            verify_cwd()?;
            false
        }
        Err(Errno::EACCES | Errno::EPERM) => true,
        Err(e) => return Err(cwd_error(cwd, e)),
    };
    user::chown_stdio(process.user().uid(), w.pty)?;
    user::set_umask(process.user());
    let setgroups = user::setgroups_allowed();
    let args = process.args().as_deref().unwrap_or_default();
    let arg0 = args.first().ok_or_else(|| Error::config("process.args", "empty"))?;
    let mut exec = Exec::new(args, w.env)?;
    crate::sys::fds::cloexec_from(w.keep_fds.saturating_add(3));
    crate::sys::fds::keep(w.keep_fds);

    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    let mut notify_fd = None;
    if let (Some(filter), false) = (w.seccomp, no_new_privs) {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN, which a non-root user loses at
        // the switch below: load the filter while we are still root.
        if let Some(code) = w.release_code {
            code.release();
        }
        notify_fd = filter.install()?;
    }
    user::switch(process.user(), setgroups)?;
    if no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(|e| Error::sys("process.noNewPrivileges", e))?;
    }
    if let Some(caps) = &w.caps {
        capabilities::apply(caps, w.last_cap)?;
    }
    if cwd_as_user {
        nix::unistd::chdir(cwd).map_err(|e| cwd_error(cwd, e))?;
        verify_cwd()?;
    }
    // As the user: the lookup answers for the ids the program will run with.
    exec.program = find_program(arg0, w.env)?;
    if let (Some(filter), true) = (w.seccomp, no_new_privs) {
        if let Some(code) = w.release_code {
            code.release();
        }
        notify_fd = filter.install()?;
    }
    Ok(Ready { exec, notify_fd })
}

fn cwd_error(cwd: &Path, e: Errno) -> Error {
    Error::config("process.cwd", format!("{}: {e}", cwd.display()))
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

/// Whether `path` is a file the current effective ids may execute. faccessat2 (what AT_EACCESS
/// needs) may be denied by a seccomp profile that predates it: as runc, EPERM or ENOSYS there
/// means "ask faccessat", which after setresuid (real ids == effective ids) answers the same.
/// Where that is denied too, the mode bits answer and execve has the last word.
fn executable(path: &CStr) -> std::io::Result<()> {
    let st = nix::sys::stat::fstatat(None, path, nix::fcntl::AtFlags::empty())?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR || st.st_mode & 0o111 == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EACCES));
    }
    let filtered = |r: libc::c_long| {
        r != 0
            && matches!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EPERM | libc::ENOSYS)
            )
    };
    // SAFETY: NUL-terminated path, integer mode and flags.
    let mut r = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::X_OK,
            libc::AT_EACCESS,
        )
    };
    if filtered(r) {
        // SAFETY: as above; the faccessat syscall has no flags argument.
        r = unsafe { libc::syscall(libc::SYS_faccessat, libc::AT_FDCWD, path.as_ptr(), libc::X_OK) };
        if filtered(r) {
            return Ok(());
        }
    }
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// args[0] as execve needs it: a path as given, or the first executable match in $PATH.
pub fn find_program(arg0: &str, env: &[String]) -> Result<CString> {
    let cpath = |p: &str| CString::new(p).map_err(|_| Error::config("process.args", format!("{p:?} contains NUL")));
    if arg0.contains('/') {
        let p = cpath(arg0)?;
        return match executable(&p) {
            Ok(()) => Ok(p),
            Err(e) => Err(Error::config("process.args", format!("exec: {arg0:?}: {e}"))),
        };
    }
    let path = env.iter().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = cpath(&format!("{}/{arg0}", dir.trim_end_matches('/')))?;
        if executable(&candidate).is_ok() {
            return Ok(candidate);
        }
    }
    Err(Error::config(
        "process.args",
        format!("exec: {arg0:?}: executable file not found in $PATH"),
    ))
}

/// execve's arguments, built before the seccomp filter goes in: after it, only execve runs
/// (no allocation either).
pub struct Exec {
    pub program: CString,
    /// The strings the pointer arrays point into (their heap buffers never move).
    _argv: Vec<CString>,
    _envp: Vec<CString>,
    /// NULL-terminated pointer arrays for execve.
    argv_ptrs: Vec<*const libc::c_char>,
    envp_ptrs: Vec<*const libc::c_char>,
}

impl Exec {
    pub fn new(args: &[String], env: &[String]) -> Result<Exec> {
        let cstr =
            |field: &str, s: &str| CString::new(s).map_err(|_| Error::config(field, format!("{s:?} contains NUL")));
        let argv: Vec<CString> = args.iter().map(|a| cstr("process.args", a)).collect::<Result<_>>()?;
        let envp: Vec<CString> = env.iter().map(|e| cstr("process.env", e)).collect::<Result<_>>()?;
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|c| c.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect()
        };
        Ok(Exec {
            program: CString::default(),
            argv_ptrs: ptrs(&argv),
            envp_ptrs: ptrs(&envp),
            _argv: argv,
            _envp: envp,
        })
    }

    /// execve; returns only its error.
    pub fn run(&self) -> Error {
        // SAFETY: program is NUL-terminated; the pointer arrays are NULL-terminated and point into
        // CStrings that self owns for the duration of the call.
        unsafe { libc::execve(self.program.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr()) };
        Error::config(
            "process.args",
            format!(
                "exec {}: {}",
                self.program.to_string_lossy(),
                std::io::Error::last_os_error()
            ),
        )
    }
}
