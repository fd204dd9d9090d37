//! What a container costs while it waits: the created, not yet started init's memory.

use moor_integration::{require_root, runtime_is, skip, Ctx};
use std::fs;
use std::os::unix::fs::MetadataExt;

/// Resident KiB of the file's own pages (not private copies: relocated data) in the read-only
/// mappings of the file `/proc/PID/exe` is.
fn resident_code_kib(pid: i64) -> u64 {
    let exe = fs::metadata(format!("/proc/{pid}/exe")).expect("stat the init's executable");
    let smaps = fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read the init's smaps");
    let (mut total, mut counting) = (0, false);
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5 && f[0].contains('-') && f[1].len() == 4 {
            // address perms offset dev inode [path]
            counting = !f[1].contains('w') && f[4].parse::<u64>().ok() == Some(exe.ino());
        } else if counting && f.first() == Some(&"Rss:") {
            total += f[1].parse::<u64>().unwrap_or(0);
        } else if counting && f.first() == Some(&"Anonymous:") {
            total = total.saturating_sub(f[1].parse::<u64>().unwrap_or(0));
        }
    }
    total
}

#[test]
fn a_waiting_init_keeps_little_of_the_runtime_binary_resident() {
    require_root!();
    if runtime_is("runc") {
        // runc's init waits as the Go runtime binary, its whole runtime touched: about 8 MiB.
        skip!("runc's waiting init keeps its Go binary resident (about 8 MiB); moor drops its code pages");
    }
    let ctx = Ctx::new("waiting_init_rss");
    let (id, b) = ctx.bundle(&["sleep", "1000"]);
    ctx.create(&b, &id, &[]).ok();
    let pid = ctx.state_ok(&id)["pid"].as_i64().expect("pid");
    let kib = resident_code_kib(pid);
    // Building the container touches 1-3 MiB of moor's code; what the wait itself needs is a
    // few pages (a debug build's fault-around windows included).
    assert!(
        kib <= 512,
        "the waiting init keeps {kib} KiB of the runtime's code resident"
    );
    ctx.start(&id).ok();
    ctx.delete_force(&id).ok();
}

/// `list` and `state` read each init's /proc/PID/stat; its command name is whatever the process
/// set, not necessarily UTF-8, and a process with such a name is still running.
#[test]
fn an_init_with_a_non_utf8_name_is_still_running() {
    require_root!();
    let ctx = Ctx::new("non_utf8_comm");
    let (id, mut b) = ctx.bundle(&["true"]);
    // echo is a shell builtin: the shell itself gets the name, then waits.
    b.set_sh("echo -ne 'x\\377\\376y' > /proc/self/comm; while :; do sleep 1; done");
    let pid_file = ctx.work_dir().join("init.pid");
    ctx.create(&b, &id, &["--pid-file", &pid_file.display().to_string()])
        .ok();
    ctx.start(&id).ok();
    let pid: i64 = fs::read_to_string(&pid_file).expect("pid file").parse().expect("pid");
    moor_integration::poll_until(moor_integration::TIMEOUT, "the init to rename itself", || {
        fs::read(format!("/proc/{pid}/comm"))
            .ok()
            .filter(|c| c.starts_with(b"x\xff"))
    });
    let st = ctx.state_ok(&id);
    assert_eq!(st["status"], "running", "{st}");
    let list = ctx.run(&["list", "-f", "json"]).ok();
    assert!(list.stdout_now().contains("\"running\""), "list: {}", list.stdout_now());
    ctx.delete_force(&id).ok();
}
