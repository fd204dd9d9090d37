//! The bpf(2) calls that load a device program and attach it to a cgroup (no libbpf).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::ebpf::Insn;
use crate::error::{Error, Result};

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;

const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// `union bpf_attr`, large enough for every command used here (trailing bytes stay zero).
#[repr(C, align(8))]
struct Attr([u8; 128]);

/// The size bpf(2) is told: the 128 bytes of [`Attr`].
const ATTR_SIZE: libc::c_uint = 128;

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn put_u32(&mut self, off: usize, v: u32) {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    }
    fn put_u64(&mut self, off: usize, v: u64) {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
    }
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: libc::c_long, attr: &mut Attr) -> io::Result<libc::c_long> {
    // SAFETY: `attr` points to 128 writable, initialised bytes that outlive the call; every
    // pointer stored inside it refers to memory the caller keeps alive for the call.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut Attr as *mut libc::c_void, ATTR_SIZE) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

// The kernel returns an fd, an int, in a long.
#[allow(clippy::cast_possible_truncation)]
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// An open fd as a u32 attribute: an open fd is never negative; should one be, u32::MAX is
/// no fd and the kernel refuses it (EBADF).
fn fd_attr(fd: &impl AsRawFd) -> u32 {
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// Loads a device program, returning its fd. On failure the verifier log is part of the error.
pub fn load_device_program(prog: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let attempt = |log: Option<&mut Vec<u8>>| {
        let mut a = Attr::new();
        a.put_u32(0, BPF_PROG_TYPE_CGROUP_DEVICE);
        a.put_u32(
            4,
            u32::try_from(prog.len()).map_err(|_| io::Error::from_raw_os_error(libc::E2BIG))?,
        );
        a.put_u64(8, prog.as_ptr() as u64);
        a.put_u64(16, license.as_ptr() as u64);
        if let Some(buf) = log {
            a.put_u32(24, 1);
            // Saturating understates the buffer, never overstates it.
            a.put_u32(28, u32::try_from(buf.len()).unwrap_or(u32::MAX));
            a.put_u64(32, buf.as_mut_ptr() as u64);
        }
        a.0[48..52].copy_from_slice(b"moor");
        bpf(BPF_PROG_LOAD, &mut a)
    };
    match attempt(None) {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            let mut buf = vec![0u8; 64 * 1024];
            let log = match attempt(Some(&mut buf)) {
                Ok(fd) => return Ok(owned(fd)),
                Err(_) => {
                    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                    String::from_utf8_lossy(&buf[..end]).trim().to_string()
                }
            };
            Err(Error::Bpf {
                op: "BPF_PROG_LOAD (BPF_PROG_TYPE_CGROUP_DEVICE)",
                source: first,
                log: if log.is_empty() {
                    String::new()
                } else {
                    format!("; verifier: {log}")
                },
            })
        }
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let c = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::io("open", dir, io::Error::from_raw_os_error(libc::EINVAL)))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::io("open", dir, io::Error::last_os_error()));
    }
    Ok(owned(libc::c_long::from(fd)))
}

/// Ids of the device programs attached directly to a cgroup.
pub fn query_device_programs(cgroup_dir: &Path) -> Result<Vec<u32>> {
    let cg = open_dir(cgroup_dir)?;
    let mut ids = vec![0u32; 64];
    let mut a = Attr::new();
    a.put_u32(0, fd_attr(&cg));
    a.put_u32(4, BPF_CGROUP_DEVICE);
    a.put_u64(16, ids.as_mut_ptr() as u64);
    a.put_u32(24, u32::try_from(ids.len()).unwrap_or(u32::MAX));
    bpf(BPF_PROG_QUERY, &mut a).map_err(|source| Error::Bpf {
        op: "BPF_PROG_QUERY",
        source,
        log: String::new(),
    })?;
    let n = (a.get_u32(24) as usize).min(ids.len());
    ids.truncate(n);
    Ok(ids)
}

/// Attaches `prog` to the cgroup (BPF_F_ALLOW_MULTI) and then detaches the device programs that
/// were attached before, so the new rules replace the old ones without a window with no filter.
pub fn replace_device_program(cgroup_dir: &Path, prog: &OwnedFd) -> Result<()> {
    let old = query_device_programs(cgroup_dir)?;
    let cg = open_dir(cgroup_dir)?;
    let mut a = Attr::new();
    a.put_u32(0, fd_attr(&cg));
    a.put_u32(4, fd_attr(prog));
    a.put_u32(8, BPF_CGROUP_DEVICE);
    a.put_u32(12, BPF_F_ALLOW_MULTI);
    bpf(BPF_PROG_ATTACH, &mut a).map_err(|source| Error::Bpf {
        op: "BPF_PROG_ATTACH (BPF_CGROUP_DEVICE)",
        source,
        log: format!(" (cgroup {})", cgroup_dir.display()),
    })?;
    for id in old {
        let mut g = Attr::new();
        g.put_u32(0, id);
        let old_fd = owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut g).map_err(|source| Error::Bpf {
            op: "BPF_PROG_GET_FD_BY_ID",
            source,
            log: String::new(),
        })?);
        let mut d = Attr::new();
        d.put_u32(0, fd_attr(&cg));
        d.put_u32(4, fd_attr(&old_fd));
        d.put_u32(8, BPF_CGROUP_DEVICE);
        bpf(BPF_PROG_DETACH, &mut d).map_err(|source| Error::Bpf {
            op: "BPF_PROG_DETACH (old device program)",
            source,
            log: String::new(),
        })?;
    }
    Ok(())
}
