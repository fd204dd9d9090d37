//! One CNI plugin run: its environment, its config on stdin, its result or error on stdout, and
//! a time limit; no thread is started (the per-pod monitor must stay single-threaded).

use super::cni::Cni;
use super::{NetError, PodRef};
use serde_json::Value;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PLUGIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Cni {
    /// Runs one plugin; its JSON output (None when it printed nothing, as DEL does).
    pub(crate) fn exec(
        &self,
        command: &'static str,
        pod: &PodRef,
        netns: Option<&Path>,
        ifname: &str,
        conf: &Value,
    ) -> Result<Option<Value>, NetError> {
        self.spawn(command, pod, netns, ifname, conf)?.finish()
    }

    /// Starts one plugin with its config written to stdin (a few KiB: within the pipe's buffer).
    pub(crate) fn spawn(
        &self,
        command: &'static str,
        pod: &PodRef,
        netns: Option<&Path>,
        ifname: &str,
        conf: &Value,
    ) -> Result<Running, NetError> {
        let kind = conf.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let binary = self.plugin_dir().join(&kind);
        let mut child = Command::new(&binary)
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &pod.uid)
            .env("CNI_NETNS", netns.map(Path::as_os_str).unwrap_or_default())
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", self.plugin_dir())
            .env("CNI_ARGS", cni_args(pod))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::io("run CNI plugin", &binary, e))?;
        let input = serde_json::to_vec(conf).unwrap_or_default();
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(&input),
            None => Ok(()),
        };
        let running = Running {
            child,
            binary,
            kind,
            command,
        };
        match written {
            Ok(()) => Ok(running),
            Err(e) => {
                let binary = running.binary.clone();
                running.kill();
                Err(NetError::io("write the config to", binary, e))
            }
        }
    }
}

/// A plugin started by `spawn`.
pub(crate) struct Running {
    child: std::process::Child,
    binary: PathBuf,
    kind: String,
    command: &'static str,
}

impl Running {
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its output and exit status: the JSON result, or its error as NetError::Plugin.
    pub(crate) fn finish(self) -> Result<Option<Value>, NetError> {
        let (kind, command) = (self.kind.clone(), self.command);
        let out = wait_with_timeout(self.child, &self.binary)?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if out.status.success() {
            return Ok(parsed);
        }
        let code = parsed.as_ref().and_then(|v| v.get("code")).and_then(Value::as_u64);
        let text = |key| {
            parsed
                .as_ref()
                .and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut msg = text("msg");
        let details = text("details");
        if !details.is_empty() {
            msg = format!("{msg}: {details}");
        }
        if msg.is_empty() {
            msg = format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
        }
        Err(NetError::Plugin {
            plugin: kind,
            command,
            code: code.unwrap_or(999),
            msg,
        })
    }
}

/// A plugin that hangs (a stuck iptables lock, a dead DHCP server) must not hang the agent: it
/// is killed after PLUGIN_TIMEOUT. Its stdout and stderr are read as they come (poll), so a
/// large output cannot block it; no thread is started (the per-pod monitor must stay
/// single-threaded).
fn wait_with_timeout(mut child: std::process::Child, binary: &Path) -> Result<std::process::Output, NetError> {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::io::Read as _;
    let deadline = std::time::Instant::now() + PLUGIN_TIMEOUT;
    let timed_out = |child: &mut std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
        NetError::io("run CNI plugin", binary, std::io::ErrorKind::TimedOut.into())
    };
    let mut pipes: [(Option<Pipe>, Vec<u8>); 2] = [
        (child.stdout.take().map(|p| Box::new(p) as Box<dyn ReadFd>), Vec::new()),
        (child.stderr.take().map(|p| Box::new(p) as Box<dyn ReadFd>), Vec::new()),
    ];
    while pipes.iter().any(|(p, _)| p.is_some()) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(timed_out(&mut child));
        }
        let ms = u16::try_from(left.as_millis().min(1000)).unwrap_or(1000);
        let ready: Vec<bool> = {
            let mut fds: Vec<PollFd> = pipes
                .iter()
                .filter_map(|(p, _)| p.as_ref().map(|p| PollFd::new(p.fd(), PollFlags::POLLIN)))
                .collect();
            match poll(&mut fds, ms) {
                Ok(_) => fds.iter().map(|f| f.any().unwrap_or(true)).collect(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(NetError::os("poll the output of", binary, e)),
            }
        };
        let mut ready = ready.into_iter();
        for (pipe, buf) in pipes.iter_mut() {
            let Some(p) = pipe.as_mut() else { continue };
            if !ready.next().unwrap_or(false) {
                continue;
            }
            let mut chunk = [0u8; 16384];
            match p.read(&mut chunk) {
                Ok(0) => *pipe = None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NetError::io("read the output of", binary, e)),
            }
        }
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if std::time::Instant::now() >= deadline => return Err(timed_out(&mut child)),
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => return Err(NetError::io("wait for CNI plugin", binary, e)),
        }
    };
    let [(_, stdout), (_, stderr)] = pipes;
    Ok(std::process::Output { status, stdout, stderr })
}

type Pipe = Box<dyn ReadFd>;

/// A child's stdout or stderr: readable, and pollable through its fd.
trait ReadFd: std::io::Read {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_>;
}

impl<T: std::io::Read + std::os::fd::AsFd> ReadFd for T {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.as_fd()
    }
}

fn cni_args(pod: &PodRef) -> String {
    let safe = |s: &str| !s.contains([';', '=', '\0']);
    let mut args = String::from("IgnoreUnknown=1");
    if safe(&pod.namespace) && safe(&pod.name) {
        args.push_str(&format!(
            ";K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.uid, pod.uid
        ));
    }
    args
}
