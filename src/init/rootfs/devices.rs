//! /dev: the default devices every container gets, the configured linux.devices, and the
//! conventional symlinks. Nodes are made with mknodat relative to the verified /dev fd; where
//! mknod is not allowed (a user namespace) the host's node is bind-mounted from its fd.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fchmodat, mknodat, FchmodatFlags, Mode, SFlag};
use nix::unistd::{unlinkat, Gid, Uid, UnlinkatFlags};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::mounts;
use super::paths::{self, Kind};
use crate::error::{Error, Result};

/// (name, major, minor) of the devices runc and crun always create.
const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const LINKS: [(&str, &str); 4] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
];

struct Node<'a> {
    path: &'a Path,
    kind: libc::mode_t,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
}

pub fn setup(root: BorrowedFd, devices: &[LinuxDevice], bind_only: bool) -> Result<()> {
    for (name, major, minor) in DEFAULT_DEVICES {
        if devices
            .iter()
            .any(|d| d.path() == Path::new("/dev").join(name).as_path())
        {
            continue;
        }
        let path = Path::new("/dev").join(name);
        create(
            root,
            &Node {
                path: &path,
                kind: libc::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            },
            bind_only,
        )?;
    }
    for (i, d) in devices.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        if !d.path().starts_with("/dev") {
            return Err(Error::config(format!("{field}.path"), "must be below /dev"));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => return Err(Error::config(format!("{field}.type"), "\"a\" is not a device type")),
        };
        let node = Node {
            path: d.path(),
            kind,
            // Loading the config refused numbers outside 12 and 20 bits.
            major: u32::try_from(d.major()).map_err(|_| Error::config(format!("{field}.major"), "out of range"))?,
            minor: u32::try_from(d.minor()).map_err(|_| Error::config(format!("{field}.minor"), "out of range"))?,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        create(root, &node, bind_only && kind != libc::S_IFIFO).map_err(|e| Error::field(field, e))?;
    }
    let dev = paths::ensure_in_root(root, Path::new("/dev"), Kind::Dir)?;
    for (name, target) in LINKS {
        symlink(dev.as_fd(), name, target)?;
    }
    if Path::new("/proc/kcore").exists() {
        symlink(dev.as_fd(), "core", "/proc/kcore")?;
    }
    // /dev/ptmx is the devpts instance's ptmx; the host's never reaches the container.
    // ENOENT is fine.
    let _ = unlinkat(Some(dev.as_raw_fd()), c"ptmx", UnlinkatFlags::NoRemoveDir);
    symlink(dev.as_fd(), "ptmx", "pts/ptmx")?;
    Ok(())
}

fn symlink(dir: BorrowedFd, name: &str, target: &str) -> Result<()> {
    let (n, t) = (cstr(name)?, cstr(target)?);
    match nix::unistd::symlinkat(t.as_c_str(), Some(dir.as_raw_fd()), n.as_c_str()) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => Err(Error::sys(format!("symlink /dev/{name}"), e)),
    }
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::config("linux.devices", format!("{s:?} contains NUL")))
}

fn create(root: BorrowedFd, node: &Node, bind_only: bool) -> Result<()> {
    let parent = node.path.parent().unwrap_or(Path::new("/dev"));
    let name = node
        .path
        .file_name()
        .ok_or_else(|| Error::config("linux.devices", "device path has no name"))?;
    let dir = paths::ensure_in_root(root, parent, Kind::Dir)?;
    let cname = cstr(&name.to_string_lossy())?;
    if bind_only {
        return bind_host_node(root, node);
    }
    // A stale entry (from the image) is replaced: the container gets exactly what was asked.
    // ENOENT is fine.
    let _ = unlinkat(Some(dir.as_raw_fd()), cname.as_c_str(), UnlinkatFlags::NoRemoveDir);
    let dev = libc::makedev(node.major, node.minor);
    let mode = Mode::from_bits_truncate(node.mode & 0o7777);
    // mknodat creates a node, never follows links.
    match mknodat(
        Some(dir.as_raw_fd()),
        cname.as_c_str(),
        SFlag::from_bits_truncate(node.kind),
        mode,
        dev,
    ) {
        Ok(()) => {}
        Err(Errno::EPERM) => return bind_host_node(root, node),
        Err(e) => return Err(Error::sys(format!("mknod {}", node.path.display()), e)),
    }
    // AT_SYMLINK_NOFOLLOW on the node we just made.
    nix::unistd::fchownat(
        Some(dir.as_raw_fd()),
        cname.as_c_str(),
        Some(Uid::from_raw(node.uid)),
        Some(Gid::from_raw(node.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| Error::sys(format!("chown {}", node.path.display()), e))?;
    // mknod is subject to the umask; the configured mode is exact.
    fchmodat(
        Some(dir.as_raw_fd()),
        cname.as_c_str(),
        mode,
        FchmodatFlags::FollowSymlink,
    )
    .map_err(|e| Error::sys(format!("chmod {}", node.path.display()), e))
}

/// Bind-mounts the host's node of the same path (user namespaces cannot mknod).
fn bind_host_node(root: BorrowedFd, node: &Node) -> Result<()> {
    let host = open_host_node(node)?;
    let target = paths::ensure_in_root(root, node.path, Kind::File)?;
    mounts::bind_fd(host.as_fd(), target.as_fd(), false)
        .map(drop)
        .map_err(|e| Error::sys(format!("bind host {} into the container", node.path.display()), e))
}

fn open_host_node(node: &Node) -> Result<OwnedFd> {
    let c = CString::new(node.path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::config("linux.devices", "NUL in path"))?;
    let fd = crate::sys::openat2(
        cwd(),
        &c,
        libc::O_PATH as u64,
        0,
        libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| Error::sys(format!("open host {}", node.path.display()), e))?;
    let st = paths::fstat(fd.as_fd()).map_err(|e| Error::sys("fstat", e))?;
    if st.st_mode & libc::S_IFMT != node.kind || st.st_rdev != libc::makedev(node.major, node.minor) {
        return Err(Error::refused(
            format!("host {}", node.path.display()),
            format!("is not the device {}:{}", node.major, node.minor),
        ));
    }
    Ok(fd)
}

/// A host /dev/null verified to be the real character device 1:3: the only thing masked
/// files are ever bound from (CVE-2025-31133).
pub fn verified_null() -> Result<OwnedFd> {
    open_host_node(&Node {
        path: Path::new("/dev/null"),
        kind: libc::S_IFCHR,
        major: 1,
        minor: 3,
        mode: 0,
        uid: 0,
        gid: 0,
    })
}

fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid for the life of the process.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}
