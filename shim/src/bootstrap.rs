//! The short-lived commands containerd runs: `start` (find or fork the serving shim of the
//! container's group and print its address) and `delete` (clean up after a shim that died).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use containerd_shim_protos::api::DeleteResponse;
use protobuf::Message;

use crate::error::{Error, Result};
use crate::flags::Flags;

/// containerd's fixed directory for shim sockets.
const SOCKET_DIR: &str = "/run/containerd/s";
/// The fd on which the serving shim finds its listening socket (as containerd's own shims).
pub const LISTENER_FD: i32 = 3;
/// The annotation that groups a pod's containers into one shim.
const SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";

/// The bundle: `-bundle`, else the working directory containerd starts the shim in.
pub fn bundle(flags: &Flags) -> Result<PathBuf> {
    match &flags.bundle {
        Some(b) => Ok(b.clone()),
        None => std::env::current_dir().map_err(|e| Error::sys("the working directory (the bundle)", e)),
    }
}

/// The key of the group whose containers share one shim: the CRI sandbox id, else the id.
pub fn grouping_key(bundle: &Path, id: &str) -> Result<String> {
    let path = bundle.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::path("cannot read", &path, e))?;
    let spec: serde_json::Value = serde_json::from_slice(&data).map_err(|e| Error::Bundle {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    match spec.get("annotations").and_then(|a| a.get(SANDBOX_ID)) {
        None => Ok(id.to_string()),
        Some(serde_json::Value::String(key)) if !key.is_empty() => Ok(key.clone()),
        Some(_) => Err(Error::Bundle {
            path,
            reason: format!("annotations.{SANDBOX_ID}: not a non-empty string"),
        }),
    }
}

/// The socket path of a group, as containerd's shims derive it: a digest of containerd's
/// address, the namespace and the group, so one containerd never mixes two groups.
pub fn socket_path(address: &str, namespace: &str, group: &str) -> PathBuf {
    let key = Path::new(address).join(namespace).join(group);
    Path::new(SOCKET_DIR).join(moor::sha256_hex(key.as_os_str().as_encoded_bytes()))
}

fn address_of(path: &Path) -> String {
    format!("unix://{}", path.display())
}

/// `start`: prints the address of the group's shim, forking it first if none serves: a
/// `BootstrapResult` to a containerd that sent a bootstrap request (2.3+), else the plain address.
pub fn start(mut flags: Flags) -> Result<()> {
    let request = read_stdin()?;
    let bootstrap = crate::bootproto::recognise(&request, &mut flags).is_some();
    let flags = &flags;
    let ns = flags.checked_namespace()?;
    if flags.id.is_empty() {
        return Err(Error::flag("id", "needed by start"));
    }
    let bundle = bundle(flags)?;
    let group = grouping_key(&bundle, &flags.id)?;
    let path = socket_path(&flags.address, ns, &group);
    let address = address_of(&path);
    std::fs::create_dir_all(SOCKET_DIR).map_err(|e| Error::path("cannot create", SOCKET_DIR, e))?;
    let listener = match UnixListener::bind(&path) {
        Ok(l) => Some(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                None
            } else {
                // A socket file without a server: a shim that died without cleaning up.
                std::fs::remove_file(&path).map_err(|e| Error::path("cannot remove stale socket", &path, e))?;
                Some(UnixListener::bind(&path).map_err(|e| Error::path("cannot listen on", &path, e))?)
            }
        }
        Err(e) => return Err(Error::path("cannot listen on", &path, e)),
    };
    if let Some(listener) = listener {
        if let Err(e) = spawn_server(flags, &bundle, &listener) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    }
    write_address(&bundle, &address)?;
    // containerd reads stdout and stderr together as the answer: nothing else may be printed.
    let answer = if bootstrap {
        crate::bootproto::result(&address)
    } else {
        address.into_bytes()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(&answer)
        .and_then(|()| out.flush())
        .map_err(|e| Error::sys("write the address to stdout", e))
}

/// `-info`: the RuntimeInfo protobuf containerd 2.x asks for: the runtime type, the version,
/// the options it gave on stdin (an `Any`) echoed, the runtime-spec features document.
pub fn info() -> Result<()> {
    use containerd_shim_protos::types::introspection::{RuntimeInfo, RuntimeVersion};
    let stdin = read_stdin()?;
    let mut r = RuntimeInfo::new();
    r.name = "io.containerd.moor.v2".to_string();
    let mut v = RuntimeVersion::new();
    v.version = env!("CARGO_PKG_VERSION").to_string();
    r.version = protobuf::MessageField::some(v);
    if !stdin.is_empty() {
        r.options = protobuf::MessageField::some(protobuf::well_known_types::any::Any::parse_from_bytes(&stdin)?);
    }
    let mut features = protobuf::well_known_types::any::Any::new();
    features.type_url = "types.containerd.io/opencontainers/runtime-spec/1/features/Features".to_string();
    features.value = serde_json::to_vec(&moor::spec::features())
        .map_err(|e| Error::sys("encode the features", std::io::Error::other(e)))?;
    r.features = protobuf::MessageField::some(features);
    let bytes = r.write_to_bytes()?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::sys("write the RuntimeInfo to stdout", e))
}

/// What containerd wrote on `start`'s stdin (nothing, runtime options, or a 2.3+ bootstrap
/// request); nothing is read from a terminal (a person running `start` by hand).
fn read_stdin() -> Result<Vec<u8>> {
    use std::io::Read;
    // SAFETY: isatty on fd 0 takes no pointers.
    if unsafe { libc::isatty(0) } == 1 {
        return Ok(Vec::new());
    }
    let mut data = Vec::new();
    // Bounded: the requests are small.
    match std::io::stdin().lock().take(1 << 20).read_to_end(&mut data) {
        Ok(_) => Ok(data),
        // No stdin at all (closed fd 0).
        Err(e) if e.raw_os_error() == Some(libc::EBADF) => Ok(Vec::new()),
        Err(e) => Err(Error::sys("read start's stdin", e)),
    }
}

/// Forks the serving shim: this binary again, without an action, in a session of its own,
/// its listening socket on fd 3, no stdio of `start` (containerd waits for their EOF).
fn spawn_server(flags: &Flags, bundle: &Path, listener: &UnixListener) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::sys("find the shim's own binary", e))?;
    let mut cmd = Command::new(&exe);
    cmd.args([
        "-namespace",
        &flags.namespace,
        "-id",
        &flags.id,
        "-address",
        &flags.address,
    ]);
    cmd.args(["-publish-binary", &flags.publish_binary]);
    if flags.debug {
        cmd.arg("-debug");
    }
    cmd.current_dir(bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let fd = listener.as_raw_fd();
    // SAFETY: only async-signal-safe calls (setsid, dup2, fcntl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            if fd == LISTENER_FD {
                // dup2 onto itself would keep close-on-exec.
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, LISTENER_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Not waited for: the server outlives `start` and is reparented when `start` exits.
    cmd.spawn()
        .map(drop)
        .map_err(|e| Error::path("cannot start the shim server", exe, e))
}

/// The `address` file in the bundle: how containerd finds the shim again after a restart.
fn write_address(bundle: &Path, address: &str) -> Result<()> {
    let tmp = bundle.join(".address");
    let path = bundle.join("address");
    std::fs::write(&tmp, address).map_err(|e| Error::path("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::path("cannot write", &path, e))
}

/// `delete`: the shim of this container died; remove what it left (the container, killed if
/// still running, and the rootfs mount) and print the protobuf DeleteResponse containerd expects.
pub fn delete(flags: &Flags) -> Result<()> {
    let root = flags.state_root()?;
    let bundle = bundle(flags)?;
    let rt = moor::Runtime::new(root);
    let pid = match rt.load(&flags.id) {
        Ok((state, _)) => u32::try_from(state.pid).unwrap_or(0),
        Err(moor::Error::DoesNotExist(_)) => 0,
        Err(e) => return Err(e.into()),
    };
    rt.delete(&flags.id, true)?;
    crate::mount::unmount_all(&bundle.join("rootfs"))?;
    remove_dead_socket(flags, &bundle);
    let mut response = DeleteResponse::new();
    response.pid = pid;
    // As containerd's runc shim: the process is taken to have been killed.
    response.exit_status = 128 + 9;
    response.exited_at = protobuf::MessageField::some(crate::rpc::timestamp(std::time::SystemTime::now()));
    let bytes = response.write_to_bytes()?;
    let mut out = std::io::stdout().lock();
    out.write_all(&bytes)
        .and_then(|()| out.flush())
        .map_err(|e| Error::sys("write the DeleteResponse to stdout", e))
}

/// The group's socket, if no shim answers on it any more (a killed shim leaves it behind);
/// while a shim of the group still serves others, it stays.
fn remove_dead_socket(flags: &Flags, bundle: &Path) {
    let Ok(group) = grouping_key(bundle, &flags.id) else {
        return;
    };
    let path = socket_path(&flags.address, &flags.namespace, &group);
    if path.exists() && UnixStream::connect(&path).is_err() {
        let _ = std::fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_path_is_containerd_style_and_stable() {
        let a = socket_path("/run/containerd/containerd.sock", "default", "c1");
        let hex = moor::sha256_hex(b"/run/containerd/containerd.sock/default/c1");
        assert_eq!(a, Path::new(SOCKET_DIR).join(hex));
        assert_ne!(a, socket_path("/run/containerd/containerd.sock", "other", "c1"));
    }

    #[test]
    fn grouping_key_prefers_the_sandbox_id() {
        let dir = std::env::temp_dir().join(format!("moor-shim-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(grouping_key(&dir, "c1").unwrap(), "pod1");
        std::fs::write(dir.join("config.json"), r#"{"annotations":{}}"#).unwrap();
        assert_eq!(grouping_key(&dir, "c1").unwrap(), "c1");
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":7}}"#,
        )
        .unwrap();
        assert!(grouping_key(&dir, "c1").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
