//! Terminals: `--console-socket` with process.terminal, and plain stdio pass-through.

use moor_integration::console::{pty_number, read_until};
use moor_integration::{require_root, ConsoleReceiver, Ctx, TIMEOUT};
use serde_json::json;
use std::io::Read;
use std::os::fd::AsRawFd;

#[test]
fn console_socket_receives_pty_master_with_size_and_dev_console() {
    require_root!();
    let ctx = Ctx::new("console");
    let recv = ConsoleReceiver::new(ctx.work_dir());
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/process/terminal", json!(true));
    b.set("/process/consoleSize", json!({"height": 37, "width": 111}));
    b.set_sh(
        "echo size=$(stty size); echo tty=$(tty); \
         echo console=$(stat -c %t:%T /dev/console); echo fd0=$(stat -L -c %t:%T /proc/self/fd/0); \
         echo END",
    );
    let sock = recv.path.display().to_string();
    let c = ctx.create(&b, &id, &["--console-socket", &sock]).ok();
    let master = recv.recv(TIMEOUT).unwrap_or_else(|e| panic!("{e}: {c}"));
    let ptn = pty_number(&master).expect("received fd is not a pty master (TIOCGPTN failed)");
    ctx.start(&id).ok();
    let out = read_until(&master, TIMEOUT, |s| s.contains("END"));
    assert!(out.contains("size=37 111"), "consoleSize not applied:\n{out}");
    assert!(
        out.contains(&format!("tty=/dev/pts/{ptn}")),
        "stdin is not the pty {ptn}:\n{out}"
    );
    // /dev/console must be the same pty (char major 136 = 0x88, minor = pty number).
    let dev = format!("88:{ptn:x}");
    assert!(
        out.contains(&format!("console={dev}")),
        "/dev/console is not the pty {dev}:\n{out}"
    );
    assert!(out.contains(&format!("fd0={dev}")), "fd 0 is not the pty {dev}:\n{out}");
    ctx.wait_status(&id, "stopped");
    drop(master);
}

#[test]
fn console_input_reaches_process() {
    require_root!();
    let ctx = Ctx::new("console_in");
    let recv = ConsoleReceiver::new(ctx.work_dir());
    let (id, mut b) = ctx.bundle(&[]);
    b.set("/process/terminal", json!(true));
    b.set_sh("read line; echo got=$line");
    let sock = recv.path.display().to_string();
    ctx.create(&b, &id, &["--console-socket", &sock]).ok();
    let master = recv.recv(TIMEOUT).unwrap();
    ctx.start(&id).ok();
    let msg = b"hello-pty\n";
    // SAFETY: writing a local buffer to a valid fd.
    let n = unsafe { libc::write(master.as_raw_fd(), msg.as_ptr().cast(), msg.len()) };
    assert_eq!(n, isize::try_from(msg.len()).unwrap());
    let out = read_until(&master, TIMEOUT, |s| s.contains("got=hello-pty"));
    assert!(out.contains("got=hello-pty"), "{out}");
    ctx.wait_status(&id, "stopped");
}

#[test]
fn terminal_without_console_socket_fails_create() {
    require_root!();
    let ctx = Ctx::new("console_missing");
    let (id, mut b) = ctx.bundle(&["true"]);
    b.set("/process/terminal", json!(true));
    let o = ctx.create(&b, &id, &[]).fails();
    assert!(o.stderr.contains("console"), "{o}");
    ctx.assert_no_residue(&id, &b);
}

#[test]
fn stdio_passes_through_without_terminal() {
    require_root!();
    let ctx = Ctx::new("stdio");
    let (id, mut b) = ctx.bundle(&[]);
    b.set_sh("read x; echo out:$x; echo err:$x >&2; ls -l /proc/self/fd/0 /proc/self/fd/1 >/dev/null");
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let (in_r, mut in_w) = std::io::pipe().unwrap();
    ctx.create_with(&b, &id, &[], |c| {
        c.stdin(in_r).stdout(out_w).stderr(err_w);
    });
    // Our copies of the write ends were moved into the Command (dropped after spawn).
    ctx.start(&id).ok();
    use std::io::Write;
    in_w.write_all(b"piped\n").unwrap();
    drop(in_w);
    // Read both pipes to EOF (the container exiting closes them) with a deadline, so a runtime
    // that keeps a copy of the caller's stdio open fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let mut err = String::new();
        let _ = out_r.read_to_string(&mut out);
        let _ = err_r.read_to_string(&mut err);
        let _ = tx.send((out, err));
    });
    let (out, err) = rx
        .recv_timeout(TIMEOUT)
        .expect("container stdout/stderr pipes never reached EOF");
    assert_eq!(out, "out:piped\n");
    assert!(err.ends_with("err:piped\n"), "{err}");
    ctx.wait_status(&id, "stopped");
}
