//! Handing the seccomp notify fd to the agent at `listenerPath` (runtime-spec "Seccomp" section:
//! a `ContainerProcessState` JSON message with the fd attached as SCM_RIGHTS).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;

use nix::sys::socket::{
    connect, sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
};

use crate::Error;

/// Builds the runtime-spec `ContainerProcessState` message:
/// `{"ociVersion": …, "fds": ["seccompFd"], "pid": …, "metadata": …, "state": <state_json>}`.
///
/// `state_json` is the container's already-serialized `State` object and is embedded verbatim;
/// `metadata` is `listenerMetadata` (empty string when unset, as runc sends).
pub fn process_state_json(oci_version: &str, pid: i32, metadata: Option<&str>, state_json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(state_json.len() + 128);
    out.extend_from_slice(b"{\"ociVersion\":");
    json_string(&mut out, oci_version);
    out.extend_from_slice(b",\"fds\":[\"seccompFd\"],\"pid\":");
    out.extend_from_slice(pid.to_string().as_bytes());
    out.extend_from_slice(b",\"metadata\":");
    json_string(&mut out, metadata.unwrap_or(""));
    out.extend_from_slice(b",\"state\":");
    out.extend_from_slice(state_json);
    out.push(b'}');
    out
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Sends the seccomp notify `fd` to the agent listening on the unix stream socket at
/// `listener_path`, with the runtime-spec `ContainerProcessState` JSON message, the fd attached
/// as SCM_RIGHTS on the first byte (as runc and crun do). The fd stays open in the caller.
///
/// `process_state_json` is either
/// - the container's runtime-spec `State` JSON (as given to hooks): it becomes the message's
///   `state`, and `ociVersion` and `pid` are taken from it; `metadata` is empty (use
///   [`Compiled::send_notify_fd`](crate::Compiled::send_notify_fd) to send `listenerMetadata`); or
/// - a complete `ContainerProcessState` (an object with an `fds` member, e.g. built with
///   [`process_state_json`]): sent unchanged.
pub fn send_notify_fd(listener_path: &Path, fd: BorrowedFd<'_>, process_state_json: &[u8]) -> Result<(), Error> {
    let err = |source: std::io::Error| Error::Notify {
        path: listener_path.to_path_buf(),
        source,
    };
    if process_state_json.is_empty() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty ContainerProcessState message",
        )));
    }
    let message = container_process_state(process_state_json, None).map_err(err)?;
    send_message(listener_path, fd, &message)
}

/// Wraps a `State` JSON into a `ContainerProcessState` message, or passes a complete one through.
pub(crate) fn container_process_state(json: &[u8], metadata: Option<&str>) -> Result<Vec<u8>, std::io::Error> {
    let invalid = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|e| invalid(&format!("state is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| invalid("state is not a JSON object"))?;
    if obj.contains_key("fds") {
        return Ok(json.to_vec());
    }
    let version = obj.get("ociVersion").and_then(|x| x.as_str()).unwrap_or("1.0.0");
    let pid = obj
        .get("pid")
        .and_then(|x| x.as_i64())
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| invalid("state has no valid pid"))?;
    Ok(process_state_json(version, pid, metadata, json))
}

/// Connects to `listener_path` and sends `message` with `fd` attached.
pub(crate) fn send_message(listener_path: &Path, fd: BorrowedFd<'_>, process_state_json: &[u8]) -> Result<(), Error> {
    let err = |source: std::io::Error| Error::Notify {
        path: listener_path.to_path_buf(),
        source,
    };
    let errno = |e: nix::errno::Errno| err(std::io::Error::from(e));
    let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).map_err(errno)?;
    let addr = UnixAddr::new(listener_path).map_err(errno)?;
    connect(sock.as_raw_fd(), &addr).map_err(errno)?;
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let mut sent = loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(process_state_json)],
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.map_err(errno)?,
        }
    };
    // A stream socket may take the message in pieces; the fd went with the first one.
    while sent < process_state_json.len() {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(&process_state_json[sent..])],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(errno(e)),
            Ok(0) => return Err(err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => sent += n,
        }
    }
    Ok(())
}
