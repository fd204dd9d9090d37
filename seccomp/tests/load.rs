//! Real loads with seccomp(2), each in a forked child so the test process stays unfiltered.
//! The children only make async-signal-safe calls (no allocation) between fork and _exit.

mod common;

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

use common::*;
use moor_seccomp::{compile, send_notify_fd, Compiled};
use oci_spec::runtime::{LinuxSeccompAction as A, LinuxSeccompOperator as O};

/// Forks; the child runs `child` (which must not allocate) and `_exit`s with its result.
/// Returns the raw wait status.
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child`, which the callers keep to async-signal-safe calls,
    // then _exit()s without unwinding or running destructors.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = child();
        // SAFETY: terminates the child immediately, as required after fork in a threaded process.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid);
    status
}

/// Child-side preparation: no core dumps (KILL_PROCESS), no_new_privs (works without root).
fn child_prepare() {
    let rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &rl);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

const PATH: &[u8] = b"/proc/self/no-such-dir-for-seccomp-test\0";

fn mkdir_errno() -> i32 {
    // SAFETY: PATH is NUL-terminated.
    let r = unsafe { libc::mkdir(PATH.as_ptr().cast(), 0o755) };
    if r == 0 {
        0
    } else {
        errno()
    }
}

fn deny_mkdir(errno_ret: Option<u32>) -> Compiled {
    let p = profile(
        A::ScmpActAllow,
        None,
        &[],
        vec![rule(&["mkdir", "mkdirat"], A::ScmpActErrno, errno_ret, vec![])],
    );
    compile(&p).unwrap()
}

#[test]
fn errno_rule_denies_mkdir_and_getpid_still_works() {
    for (errno_ret, want) in [(None, libc::EPERM), (Some(libc::EXDEV as u32), libc::EXDEV)] {
        let c = deny_mkdir(errno_ret);
        let status = in_child(|| {
            child_prepare();
            match c.install() {
                Ok(None) => {}
                _ => return 100,
            }
            // SAFETY: getpid has no preconditions.
            if unsafe { libc::getpid() } <= 0 {
                return 101;
            }
            let e = mkdir_errno();
            if e == want {
                0
            } else {
                e.clamp(1, 99)
            }
        });
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "wanted errno {want}");
    }
    // Unfiltered, the same mkdir fails differently (ENOENT under /proc/self), so the errno above
    // really came from the filter.
    assert_ne!(mkdir_errno(), libc::EPERM);
}

#[test]
fn argument_conditions_in_the_kernel() {
    // ERRNO(EXDEV) for mkdir when mode (arg 1) has the 64-bit pattern 0o700 or is 0o555 (two
    // conditions on one argument are ORed, as runc 1.1 splits them); otherwise allowed.
    let p = profile(
        A::ScmpActAllow,
        None,
        &[],
        vec![rule(
            &["mkdir"],
            A::ScmpActErrno,
            Some(libc::EXDEV as u32),
            vec![
                arg(1, O::ScmpCmpMaskedEq, 0o700, Some(0o700)),
                arg(1, O::ScmpCmpEq, 0o555, None),
            ],
        )],
    );
    let c = compile(&p).unwrap();
    let status = in_child(|| {
        child_prepare();
        if c.install().is_err() {
            return 100;
        }
        let mut got = Vec::new();
        for mode in [0o755, 0o555, 0o444] {
            // SAFETY: PATH is NUL-terminated.
            let r = unsafe { libc::mkdir(PATH.as_ptr().cast(), mode) };
            got.push(r == -1 && errno() == libc::EXDEV);
        }
        if got == [true, true, false] {
            0
        } else {
            1
        }
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status:#x}"
    );
}

#[test]
fn kill_actions_kill_the_child() {
    for action in [A::ScmpActKill, A::ScmpActKillThread, A::ScmpActKillProcess] {
        let p = profile(
            A::ScmpActAllow,
            None,
            &[],
            vec![rule(&["getppid"], action, None, vec![])],
        );
        let c = compile(&p).unwrap();
        let status = in_child(|| {
            child_prepare();
            if c.install().is_err() {
                return 100;
            }
            // SAFETY: getppid has no preconditions.
            unsafe { libc::getppid() };
            0
        });
        assert!(libc::WIFSIGNALED(status), "{action:?}: status {status:#x}");
        assert_eq!(libc::WTERMSIG(status), libc::SIGSYS, "{action:?}");
    }
}

#[test]
fn default_kill_with_docker_profile_and_enosys() {
    let p: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(include_str!("data/docker-default.json")).unwrap();
    let c = compile(&p).unwrap();
    let status = in_child(|| {
        child_prepare();
        if c.install().is_err() {
            return 100;
        }
        // clone3 is named with ERRNO(ENOSYS); syscall 1000 is above every named one.
        // SAFETY: raw syscalls with no arguments used; both are refused by the filter.
        let r = unsafe { libc::syscall(1000) };
        if r != -1 || errno() != libc::ENOSYS {
            return 1;
        }
        // SAFETY: as above.
        let r = unsafe { libc::syscall(libc::SYS_unshare, 0) };
        if r != -1 || errno() != libc::EPERM {
            return 2;
        }
        // SAFETY: getpid has no preconditions.
        if unsafe { libc::getpid() } <= 0 {
            return 3;
        }
        0
    });
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0);
}

/// Receives one message with one fd over a unix stream.
fn recv_with_fd(sock: &impl AsRawFd) -> (Vec<u8>, OwnedFd) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = vec![0u8; 65536];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed these fds in our table; we own them now.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    buf.truncate(n);
    (buf, fd.expect("an fd was passed"))
}

#[test]
fn notify_returns_a_listener_that_answers_and_is_handed_off() {
    let dir = std::env::temp_dir().join(format!("moor-seccomp-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).unwrap();

    let mut p = profile(
        A::ScmpActAllow,
        None,
        &[],
        vec![rule(&["getppid"], A::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some(sock_path.clone()));
    p.set_listener_metadata(Some("meta \"data\"".to_string()));
    let c = compile(&p).unwrap();
    assert!(c.needs_notify_fd());

    // The child passes its listener fd back over a socketpair, then calls getppid, which the
    // parent answers with 4242 through the agent side.
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair().unwrap();
    // SAFETY: see in_child; the child only uses raw syscalls on pre-allocated data.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        child_prepare();
        let code = (|| {
            let Ok(Some(fd)) = c.install() else {
                return 100;
            };
            let raw = fd.as_raw_fd();
            // Build an SCM_RIGHTS message by hand (no allocation).
            let mut cbuf = [0u64; 8];
            let mut byte = [0u8; 1];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            // SAFETY: msghdr is plain data; all pointers below point into this stack frame and
            // the buffer sizes come from CMSG_SPACE/CMSG_LEN for one int.
            unsafe {
                let mut msg: libc::msghdr = std::mem::zeroed();
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = cbuf.as_mut_ptr().cast();
                msg.msg_controllen = libc::CMSG_SPACE(4) as _;
                let cm = libc::CMSG_FIRSTHDR(&msg);
                (*cm).cmsg_level = libc::SOL_SOCKET;
                (*cm).cmsg_type = libc::SCM_RIGHTS;
                (*cm).cmsg_len = libc::CMSG_LEN(4) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<i32>(), raw);
                if libc::sendmsg(child_end.as_raw_fd(), &msg, 0) != 1 {
                    return 101;
                }
                if libc::getppid() != 4242 {
                    return 102;
                }
            }
            0
        })();
        // SAFETY: see in_child.
        unsafe { libc::_exit(code) };
    }
    drop(child_end);
    let (_, notify_fd) = recv_with_fd(&parent_end);

    // Hand the fd to the "agent" with send_notify_fd, as the runtime would.
    let state = br#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":1,"bundle":"/b"}"#;
    let msg = moor_seccomp::process_state_json("1.2.0", pid, c.listener_metadata(), state);
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_with_fd(&conn)
    });
    send_notify_fd(&sock_path, notify_fd.as_fd(), &msg).unwrap();
    drop(notify_fd);
    let (json, agent_fd) = agent.join().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["ociVersion"], "1.2.0");
    assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
    assert_eq!(v["pid"], pid);
    assert_eq!(v["metadata"], "meta \"data\"");
    assert_eq!(v["state"]["id"], "c1");

    // Answer the child's getppid through the agent's copy of the fd.
    // SAFETY: zeroed seccomp_notif/resp are valid; the ioctls get pointers to them.
    unsafe {
        let mut req: libc::seccomp_notif = std::mem::zeroed();
        let r = libc::ioctl(agent_fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV as _, &mut req);
        assert_eq!(r, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
        assert_eq!(i64::from(req.data.nr), libc::SYS_getppid);
        assert_eq!(i32::try_from(req.pid).unwrap(), pid);
        let mut resp: libc::seccomp_notif_resp = std::mem::zeroed();
        resp.id = req.id;
        resp.val = 4242;
        let r = libc::ioctl(agent_fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND as _, &mut resp);
        assert_eq!(r, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "status {status:#x}");
    assert_eq!(libc::WEXITSTATUS(status), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn notify_message_wraps_a_plain_state() {
    let dir = std::env::temp_dir().join(format!("moor-seccomp-test-wrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock_path = dir.join("agent.sock");
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).unwrap();
    let mut p = profile(
        A::ScmpActAllow,
        None,
        &[],
        vec![rule(&["getppid"], A::ScmpActNotify, None, vec![])],
    );
    p.set_listener_path(Some(sock_path.clone()));
    p.set_listener_metadata(Some("m1".to_string()));
    let c = compile(&p).unwrap();
    let state = br#"{"ociVersion":"1.1.0","id":"c2","status":"created","pid":4321,"bundle":"/b"}"#;
    // Any fd stands in for the listener here.
    let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
    for with_metadata in [true, false] {
        let agent = {
            let l = listener.try_clone().unwrap();
            std::thread::spawn(move || {
                let (conn, _) = l.accept().unwrap();
                recv_with_fd(&conn)
            })
        };
        if with_metadata {
            c.send_notify_fd(r.as_fd(), state).unwrap();
        } else {
            send_notify_fd(&sock_path, r.as_fd(), state).unwrap();
        }
        let (json, _fd) = agent.join().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["ociVersion"], "1.1.0");
        assert_eq!(v["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(v["pid"], 4321);
        assert_eq!(v["metadata"], if with_metadata { "m1" } else { "" });
        assert_eq!(v["state"]["id"], "c2");
    }
    let e = send_notify_fd(&sock_path, r.as_fd(), b"not json")
        .unwrap_err()
        .to_string();
    assert!(e.contains("listenerPath") && e.contains("JSON"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
