//! Running CRIU through its command line. runc drives CRIU over its RPC socket (`criu swrk`);
//! moor runs `criu dump|pre-dump|restore` with options instead: every option moor uses has a
//! command-line form in CRIU 3.17, each run can be repeated by hand from the debug log, and no
//! protobuf schema has to be kept in step with CRIU's. What only the RPC offers is its
//! notifications (hooks between restore steps, the console's master fd of a terminal
//! container), which moor's restore does not use (see the README).

use std::ffi::OsString;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::image::ImageDir;
use crate::error::{Error, Result};

pub const DUMP_LOG: &str = "dump.log";
pub const RESTORE_LOG: &str = "restore.log";
/// How much of the end of CRIU's log is searched for its errors.
const LOG_TAIL: u64 = 64 * 1024;

pub struct Criu {
    cmd: Command,
    action: &'static str,
    log: PathBuf,
    /// The caller's fds CRIU inherits (close-on-exec cleared in the child only).
    keep: Vec<RawFd>,
    /// cgroup.procs files CRIU joins before it runs, so what it restores starts there.
    join: Vec<OwnedFd>,
}

impl Criu {
    /// `criu ACTION -D IMAGES [-W WORK] -o LOG -v4`; the log goes to the work directory, else
    /// beside the images, as with runc.
    pub fn new(bin: &Path, action: &'static str, images: &ImageDir, work: Option<&ImageDir>) -> Criu {
        let log_name = if action == "restore" { RESTORE_LOG } else { DUMP_LOG };
        let mut cmd = Command::new(bin);
        cmd.arg(action).arg("--images-dir").arg(&images.path);
        if let Some(w) = work {
            cmd.arg("--work-dir").arg(&w.path);
        }
        cmd.args(["--log-file", log_name, "-v4"]);
        let log = work.unwrap_or(images).path.join(log_name);
        Criu {
            cmd,
            action,
            log,
            keep: Vec::new(),
            join: Vec::new(),
        }
    }

    pub fn arg(&mut self, a: impl Into<OsString>) -> &mut Self {
        self.cmd.arg(a.into());
        self
    }

    pub fn flag(&mut self, on: bool, a: &str) -> &mut Self {
        if on {
            self.cmd.arg(a);
        }
        self
    }

    /// Hands the caller's open fd `fd` to CRIU under the same number.
    pub fn keep_fd(&mut self, fd: RawFd) -> &mut Self {
        self.keep.push(fd);
        self
    }

    /// Makes CRIU join the cgroups whose cgroup.procs files these are before it restores.
    pub fn join_cgroups(&mut self, procs: Vec<OwnedFd>) -> &mut Self {
        self.join = procs;
        self
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Runs CRIU to its end. A failure says CRIU's exit status, where its log is, and the
    /// errors at the end of the log.
    pub fn run(mut self) -> Result<()> {
        crate::debug(&format!("running {:?}", self.cmd));
        let keep = std::mem::take(&mut self.keep);
        let join: Vec<RawFd> = self.join.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: the closure runs in the forked child before exec and only makes system calls
        // (fcntl, write) on fds that are open in it; it allocates nothing.
        unsafe {
            self.cmd.pre_exec(move || {
                for &fd in &keep {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                for &fd in &join {
                    // "0" is the writer itself.
                    if libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let program = PathBuf::from(self.cmd.get_program());
        let status = match self.cmd.status() {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Flag {
                    flag: "--criu",
                    reason: format!("{}: not found (install CRIU or name its binary)", program.display()),
                })
            }
            Err(e) => return Err(Error::path("cannot run CRIU", program, e)),
        };
        if status.success() {
            return Ok(());
        }
        let code = match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
            (Some(c), _) => format!("exit status {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "no exit status".into(),
        };
        let errors = log_errors(&self.log);
        let detail = if errors.is_empty() {
            format!("{code}; see {}", self.log.display())
        } else {
            format!("{code}; {}: {}", self.log.display(), errors.join(" | "))
        };
        Err(Error::Criu {
            action: self.action,
            detail,
        })
    }
}

/// The last error lines of a CRIU log (read from its end, not through a symlink).
fn log_errors(log: &Path) -> Vec<String> {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(log)
    else {
        return Vec::new();
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Vec::new();
    }
    let len = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL)));
    let mut data = Vec::new();
    let _ = f.take(LOG_TAIL).read_to_end(&mut data);
    let text = String::from_utf8_lossy(&data);
    let lines: Vec<String> = text
        .lines()
        .filter(|l| l.contains("Error") || l.contains("error"))
        .map(|l| l.trim().chars().take(300).collect())
        .collect();
    lines[lines.len().saturating_sub(4)..].to_vec()
}
