//! A process's stdio as containerd describes it (CreateTaskRequest / ExecProcessRequest):
//!
//! - fifos: stdout and stderr are handed to the container as they are (no copy, nothing to
//!   lose: the reader sees EOF when the container's last copy closes); stdin goes through a
//!   pipe the shim feeds from the fifo, so that CloseIO can end it while the client keeps
//!   its fifo open;
//! - `file:///path`: stdout and stderr appended to the file;
//! - `binary:///path?k=v`: the logging binary started with the container's output pipes on
//!   fds 3 and 4 and a pipe on fd 5 it closes once ready (containerd's contract);
//! - a terminal: the library sends the pty master over a console socket; the shim copies
//!   the stdin fifo into it and its output to stdout.
//!
//! The copies run in the reaper's poll loop ([`Copy::step`]), never on threads of their own.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_shim_protos::ttrpc::Code;

use crate::rpc::{status, RpcResult};
use crate::table::ProcKey;

/// How long the logging binary and the console socket get.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

fn sys_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> containerd_shim_protos::ttrpc::Error {
    status(Code::UNKNOWN, format!("{what}: {e}"))
}

fn set_nonblocking(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on an fd we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into a live array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: two fresh fds nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Opens a fifo whose other end containerd's client holds, or will open: a non-blocking open
/// for reading never waits; one for writing fails (ENXIO) while the client has not opened its
/// reading end yet (it does so in the background), and is then opened read-write, which never
/// waits: what the process writes meanwhile stays in the fifo for the reader.
fn open_fifo(path: &str, write: bool) -> RpcResult<OwnedFd> {
    let open = |read: bool, write: bool| {
        std::fs::OpenOptions::new()
            .read(read)
            .write(write)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
    };
    let f = match open(!write, write) {
        Err(e) if write && e.raw_os_error() == Some(libc::ENXIO) => open(true, true),
        other => other,
    };
    Ok(OwnedFd::from(f.map_err(|e| sys_err(format!("open stdio {path}"), e))?))
}

fn blocking(fd: OwnedFd, path: &str) -> RpcResult<OwnedFd> {
    set_nonblocking(&fd, false).map_err(|e| sys_err(format!("make stdio {path} blocking"), e))?;
    Ok(fd)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Step {
    More,
    Done,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdin,
    Output,
}

/// One direction of a process's stdio the shim copies: non-blocking on both ends, the bytes
/// a full destination did not take kept until it can.
pub struct Copy {
    owner: ProcKey,
    kind: Kind,
    src: OwnedFd,
    /// None once the reader is gone: the rest is read and dropped, the writer never blocks.
    dst: Option<OwnedFd>,
    pending: Vec<u8>,
    /// CloseIO: what the source holds now is still copied, then the copy ends.
    closing: bool,
}

impl Copy {
    fn new(owner: ProcKey, kind: Kind, src: OwnedFd, dst: OwnedFd) -> std::io::Result<Copy> {
        set_nonblocking(&src, true)?;
        set_nonblocking(&dst, true)?;
        Ok(Copy {
            owner,
            kind,
            src,
            dst: Some(dst),
            pending: Vec::new(),
            closing: false,
        })
    }

    pub fn owner(&self) -> &ProcKey {
        &self.owner
    }

    pub fn is_stdin(&self) -> bool {
        self.kind == Kind::Stdin
    }

    pub fn is_output(&self) -> bool {
        self.kind == Kind::Output
    }

    /// CloseIO: ends once what the source holds now is copied (the client may keep its end).
    pub fn close_when_drained(&mut self) {
        self.closing = true;
    }

    /// What to poll: the destination while bytes wait for it, else the source.
    pub fn interest(&self) -> (RawFd, i16) {
        match &self.dst {
            Some(dst) if !self.pending.is_empty() => (dst.as_raw_fd(), libc::POLLOUT),
            _ => (self.src.as_raw_fd(), libc::POLLIN),
        }
    }

    /// Moves what can move now without blocking.
    pub fn step(&mut self) -> Step {
        if !self.flush() {
            return Step::More;
        }
        let mut buf = [0u8; 16 * 1024];
        // A bound, so that one busy stream does not starve the others.
        for _ in 0..16 {
            // SAFETY: reads into a live buffer of the given length.
            let n = unsafe { libc::read(self.src.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let n = match usize::try_from(n) {
                Ok(0) => return Step::Done,
                Ok(n) => n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    return match e.raw_os_error() {
                        Some(libc::EINTR) => Step::More,
                        Some(libc::EAGAIN) if !self.closing => Step::More,
                        Some(libc::EAGAIN) => Step::Done,
                        // EIO: the pty's last slave closed; anything else ends the copy too.
                        _ => Step::Done,
                    };
                }
            };
            self.pending.extend_from_slice(&buf[..n]);
            if !self.flush() {
                return Step::More;
            }
        }
        Step::More
    }

    /// Writes the pending bytes; false if some still wait for the destination.
    fn flush(&mut self) -> bool {
        let Some(dst) = &self.dst else {
            self.pending.clear();
            return true;
        };
        let mut done = 0;
        while done < self.pending.len() {
            let rest = &self.pending[done..];
            // SAFETY: writes from a live buffer of the given length.
            let n = unsafe { libc::write(dst.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
            match usize::try_from(n) {
                Ok(n) => done += n,
                Err(_) => {
                    let e = std::io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EINTR) => continue,
                        Some(libc::EAGAIN) => {
                            self.pending.drain(..done);
                            return false;
                        }
                        // EPIPE and the rest: the reader is gone.
                        _ => {
                            self.dst = None;
                            self.pending.clear();
                            return true;
                        }
                    }
                }
            }
        }
        self.pending.clear();
        // Give back what a burst grew.
        if self.pending.capacity() > 64 * 1024 {
            self.pending = Vec::new();
        }
        true
    }
}

/// Where a process's output goes.
enum Output {
    Null,
    Fifo(String),
    File(PathBuf),
    Binary(String),
}

fn output_of(uri: &str) -> RpcResult<Output> {
    if uri.is_empty() {
        return Ok(Output::Null);
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Ok(Output::Fifo(uri.to_string()));
    };
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    if !path.starts_with('/') {
        return Err(status(
            Code::INVALID_ARGUMENT,
            format!("log URI {uri}: the path must be absolute"),
        ));
    }
    match scheme {
        "fifo" => Ok(Output::Fifo(path.to_string())),
        "file" => Ok(Output::File(PathBuf::from(path))),
        "binary" => Ok(Output::Binary(rest.to_string())),
        _ => Err(status(
            Code::INVALID_ARGUMENT,
            format!("log URI {uri}: unsupported scheme {scheme:?} (fifo, file, binary)"),
        )),
    }
}

/// The stdio of one process, set up before create or exec.
pub struct ProcIo {
    /// What the container process gets (None with a terminal: the pty is its stdio).
    pub stdio: Option<moor::Stdio>,
    /// With a terminal: where the library sends the pty master.
    pub console: Option<ConsoleSocket>,
    /// The stdin copy, handed to the reaper once the process exists.
    pub stdin_copy: Option<Copy>,
    /// A logging binary to reap.
    pub logger: Option<moor::Child>,
    /// With a terminal: the stdin fifo and the output's destination, for the copies.
    tty_in: Option<OwnedFd>,
    tty_out: Option<OwnedFd>,
}

pub struct Request<'a> {
    pub key: &'a ProcKey,
    pub namespace: &'a str,
    pub stdin: &'a str,
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub terminal: bool,
    /// The shim's state directory: console sockets are made there.
    pub root: &'a Path,
}

impl ProcIo {
    pub fn open(r: &Request) -> RpcResult<ProcIo> {
        let (out, err, logger) = outputs(r)?;
        let stdin_fifo = if r.stdin.is_empty() {
            None
        } else {
            Some(open_fifo(r.stdin, false)?)
        };
        if r.terminal {
            return Ok(ProcIo {
                stdio: None,
                console: Some(ConsoleSocket::new(r.root)?),
                stdin_copy: None,
                logger,
                tty_in: stdin_fifo,
                tty_out: Some(out),
            });
        }
        let (stdin, stdin_copy) = match stdin_fifo {
            None => (null(false)?, None),
            Some(fifo) => {
                let (rd, wr) = pipe().map_err(|e| sys_err("stdin pipe", e))?;
                let copy = Copy::new(r.key.clone(), Kind::Stdin, fifo, wr).map_err(|e| sys_err("stdin pipe", e))?;
                (rd, Some(copy))
            }
        };
        Ok(ProcIo {
            stdio: Some(moor::Stdio {
                stdin,
                stdout: blocking(out, r.stdout)?,
                stderr: blocking(err, r.stderr)?,
            }),
            console: None,
            stdin_copy,
            logger,
            tty_in: None,
            tty_out: None,
        })
    }

    /// With a terminal, once the process exists: the pty master, and the copies between it
    /// and the fifos.
    pub fn terminal(&mut self, key: &ProcKey) -> RpcResult<Option<(OwnedFd, Vec<Copy>)>> {
        let Some(console) = self.console.take() else {
            return Ok(None);
        };
        let master = console.receive()?;
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| sys_err("dup the pty master", e));
        let mut copies = Vec::new();
        if let Some(out) = self.tty_out.take() {
            copies
                .push(Copy::new(key.clone(), Kind::Output, dup(&master)?, out).map_err(|e| sys_err("pty output", e))?);
        }
        if let Some(fifo) = self.tty_in.take() {
            copies.push(Copy::new(key.clone(), Kind::Stdin, fifo, dup(&master)?).map_err(|e| sys_err("pty input", e))?);
        }
        Ok(Some((master, copies)))
    }
}

fn null(write: bool) -> RpcResult<OwnedFd> {
    std::fs::OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| sys_err("open /dev/null", e))
}

/// The write ends for stdout and stderr, and the logging binary if one was started.
fn outputs(r: &Request) -> RpcResult<(OwnedFd, OwnedFd, Option<moor::Child>)> {
    let out = output_of(r.stdout)?;
    let err = output_of(r.stderr)?;
    let one = |o: &Output, path: &str| -> RpcResult<OwnedFd> {
        match o {
            Output::Null => null(true),
            Output::Fifo(p) => open_fifo(p, true),
            Output::File(p) => open_log_file(p),
            Output::Binary(_) => Err(status(
                Code::INVALID_ARGUMENT,
                format!("log URI {path}: binary:// must be given for stdout and stderr alike"),
            )),
        }
    };
    match (&out, &err) {
        (Output::Binary(cmd), _) => {
            let (o, e, child) = start_logger(cmd, r)?;
            Ok((o, e, Some(child)))
        }
        (Output::File(p), Output::File(q)) if p == q => {
            let fd = open_log_file(p)?;
            let dup = fd.try_clone().map_err(|e| sys_err("dup the log file", e))?;
            Ok((fd, dup, None))
        }
        _ => Ok((one(&out, r.stdout)?, one(&err, r.stderr)?, None)),
    }
}

fn open_log_file(path: &Path) -> RpcResult<OwnedFd> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| sys_err(format!("create {}", dir.display()), e))?;
    }
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map(OwnedFd::from)
        .map_err(|e| sys_err(format!("open log file {}", path.display()), e))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let decoded = match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => Some(h * 16 + l),
            _ => None,
        };
        match decoded {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(if b[i] == b'+' { b' ' } else { b[i] });
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `binary:///path?k=v&flag`: the path and its arguments, `k v flag` as containerd passes the
/// query (a key, then its first value).
fn logger_command(rest: &str) -> (String, Vec<String>) {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').map_or((pair, None), |(k, v)| (k, Some(v)));
        args.push(percent_decode(k));
        if let Some(v) = v {
            args.push(percent_decode(v));
        }
    }
    (percent_decode(path), args)
}

/// Starts the logging binary with the read ends of the output pipes on fds 3 and 4 and a
/// pipe on fd 5, and waits until it closes fd 5 (it is ready) or exits.
fn start_logger(rest: &str, r: &Request) -> RpcResult<(OwnedFd, OwnedFd, moor::Child)> {
    let (path, args) = logger_command(rest);
    let e = |what: &str, err: std::io::Error| sys_err(format!("logging binary {path}: {what}"), err);
    let (out_r, out_w) = pipe().map_err(|x| e("pipe", x))?;
    let (err_r, err_w) = pipe().map_err(|x| e("pipe", x))?;
    let (ready_r, ready_w) = pipe().map_err(|x| e("pipe", x))?;
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    let mut cmd = std::process::Command::new(&path);
    cmd.args(&args)
        .env("CONTAINER_ID", &r.key.0)
        .env("CONTAINER_NAMESPACE", r.namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Out of the way first, so that dup2 onto 3..5 never overwrites a source.
            let mut high = [0; 3];
            for (i, fd) in fds.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate() {
                let target = 3 + i32::try_from(i).unwrap_or(0);
                if libc::dup2(*fd, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|x| e("start", x))?;
    drop((out_r, err_r, ready_w));
    let pid = i32::try_from(child.id()).unwrap_or(0);
    let pidfd = pidfd_open(pid).map_err(|x| e("pidfd_open", x))?;
    // Ready: EOF on fd 5 (closed, or the binary exited).
    let mut pfd = libc::pollfd {
        fd: ready_r.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(READY_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one live pollfd.
    let n = unsafe { libc::poll(&mut pfd, 1, ms) };
    let logger = moor::Child { pid, pidfd };
    if n <= 0 {
        let _ = logger.signal(libc::SIGKILL);
        let _ = logger.wait();
        return Err(status(
            Code::DEADLINE_EXCEEDED,
            format!("logging binary {path}: not ready (fd 5 still open) after {READY_TIMEOUT:?}"),
        ));
    }
    Ok((out_w, err_w, logger))
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes no pointers; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

static CONSOLE_SEQ: AtomicU64 = AtomicU64::new(0);

/// A console socket for one create or exec: the library connects to it and sends the pty
/// master. The connection waits in the listen backlog until the call returns.
pub struct ConsoleSocket {
    listener: UnixListener,
    pub path: PathBuf,
}

impl ConsoleSocket {
    fn new(root: &Path) -> RpcResult<ConsoleSocket> {
        let n = CONSOLE_SEQ.fetch_add(1, Ordering::Relaxed);
        // Short, in the shim's state directory (a socket path has 107 bytes).
        let path = root.join(format!("console-{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).map_err(|e| sys_err(format!("console socket {}", path.display()), e))?;
        Ok(ConsoleSocket { listener, path })
    }

    fn receive(self) -> RpcResult<OwnedFd> {
        let e = |err: &dyn std::fmt::Display| sys_err(format!("console socket {}", self.path.display()), err);
        self.listener.set_nonblocking(true).map_err(|x| e(&x))?;
        let mut pfd = libc::pollfd {
            fd: self.listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(READY_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: one live pollfd.
        if unsafe { libc::poll(&mut pfd, 1, ms) } <= 0 {
            return Err(e(&"no connection from the container"));
        }
        let (stream, _) = self.listener.accept().map_err(|x| e(&x))?;
        stream.set_nonblocking(false).map_err(|x| e(&x))?;
        stream.set_read_timeout(Some(READY_TIMEOUT)).map_err(|x| e(&x))?;
        recv_fd(stream.as_fd().as_raw_fd()).map_err(|x| e(&x))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 512];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut got = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these fds for us; the first is kept, the rest closed.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    got.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no fd came over the console socket"))
}

/// ResizePty: the terminal's size, as the process sees it (SIGWINCH follows).
pub fn resize(master: &OwnedFd, width: u32, height: u32) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: u16::try_from(height).unwrap_or(u16::MAX),
        ws_col: u16::try_from(width).unwrap_or(u16::MAX),
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a live winsize.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uris() {
        assert!(matches!(output_of("").unwrap(), Output::Null));
        assert!(matches!(output_of("/run/x/stdout").unwrap(), Output::Fifo(p) if p == "/run/x/stdout"));
        assert!(
            matches!(output_of("file:///var/log/c.log").unwrap(), Output::File(p) if p == Path::new("/var/log/c.log"))
        );
        assert!(matches!(output_of("binary:///bin/log?a=b").unwrap(), Output::Binary(_)));
        assert!(output_of("file://relative").is_err());
        assert!(output_of("http:///x").is_err());
        let (path, args) = logger_command("/usr/bin/my%20logger?id=x%2Fy&debug");
        assert_eq!(path, "/usr/bin/my logger");
        assert_eq!(args, ["id", "x/y", "debug"]);
    }

    #[test]
    fn a_copy_moves_everything_and_ends_at_eof() {
        let (src_r, src_w) = pipe().unwrap();
        let (dst_r, dst_w) = pipe().unwrap();
        let mut c = Copy::new((String::new(), String::new()), Kind::Output, src_r, dst_w).unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let writer = {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut f = std::fs::File::from(src_w);
                std::io::Write::write_all(&mut f, &data).unwrap();
            })
        };
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut std::fs::File::from(dst_r), &mut out).unwrap();
            out
        });
        loop {
            let (fd, events) = c.interest();
            let mut p = libc::pollfd { fd, events, revents: 0 };
            // SAFETY: one live pollfd.
            unsafe { libc::poll(&mut p, 1, 1000) };
            if c.step() == Step::Done {
                break;
            }
        }
        drop(c);
        writer.join().unwrap();
        assert_eq!(reader.join().unwrap(), data);
    }

    #[test]
    fn close_io_delivers_what_was_written_then_ends_while_the_writer_stays() {
        let (src_r, src_w) = pipe().unwrap();
        let (dst_r, dst_w) = pipe().unwrap();
        let mut c = Copy::new((String::new(), String::new()), Kind::Stdin, src_r, dst_w).unwrap();
        let mut w = std::fs::File::from(src_w);
        std::io::Write::write_all(&mut w, b"typed").unwrap();
        c.close_when_drained();
        assert_eq!(c.step(), Step::Done, "nothing more to read: the copy ends");
        drop(c);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(dst_r), &mut out).unwrap();
        assert_eq!(
            out, b"typed",
            "the bytes before CloseIO, then EOF while the writer is open"
        );
        drop(w);
    }
}
