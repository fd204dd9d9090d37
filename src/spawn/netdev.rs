//! `linux.netDevices` (runtime-spec 1.3): host network devices moved into the container's
//! network namespace by the parent, renamed as asked, with their permanent global addresses
//! kept and the link set up. As the spec requires, moor never moves a device back: when the
//! namespace goes away the kernel returns physical devices to the host and destroys virtual
//! ones; a namespace joined by path keeps its devices.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::OwnedFd;

use oci_spec::runtime::{LinuxNamespaceType, LinuxNetDevice};

use crate::error::{Error, Result};
use crate::spawn::namespaces::Plan;
use crate::spawn::netlink::{Address, Socket};

/// One device to move: its host name and index, its name in the container.
pub struct Move {
    host_name: String,
    index: i32,
    name: String,
}

fn field(host_name: &str) -> String {
    format!("linux.netDevices.{host_name}")
}

/// The kernel's dev_valid_name, plus IFNAMSIZ.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
}

fn host_index(name: &str) -> Option<i32> {
    let c = CString::new(name).ok()?;
    // SAFETY: NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    i32::try_from(index).ok().filter(|&i| i > 0)
}

/// Checks every entry before anything is made: the device exists on the host, the names are
/// valid, and the container has a network namespace of its own to receive it.
pub fn plan(devices: Option<&HashMap<String, LinuxNetDevice>>, ns: &Plan) -> Result<Vec<Move>> {
    let Some(devices) = devices.filter(|d| !d.is_empty()) else {
        return Ok(Vec::new());
    };
    if !ns.new_ns(LinuxNamespaceType::Network) && !ns.joins(LinuxNamespaceType::Network) {
        return Err(Error::config(
            "linux.netDevices",
            "needs a network namespace (linux.namespaces has no \"network\" entry)",
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::config(
            "linux.netDevices",
            "moving host network devices needs root",
        ));
    }
    let mut moves: Vec<Move> = devices
        .iter()
        .map(|(host_name, dev)| {
            if !valid_name(host_name) {
                return Err(Error::config(field(host_name), "not a valid interface name"));
            }
            let name = dev.name().as_deref().filter(|n| !n.is_empty()).unwrap_or(host_name);
            if !valid_name(name) {
                return Err(Error::config(
                    format!("{}.name", field(host_name)),
                    format!("{name:?} is not a valid interface name"),
                ));
            }
            let index = host_index(host_name)
                .ok_or_else(|| Error::config(field(host_name), "no such network device on the host"))?;
            Ok(Move {
                host_name: host_name.clone(),
                index,
                name: name.to_string(),
            })
        })
        .collect::<Result<_>>()?;
    moves.sort_by(|a, b| a.host_name.cmp(&b.host_name));
    Ok(moves)
}

/// Moves the devices into the network namespace of `pid` (init, already in it).
pub fn move_into(moves: &[Move], pid: i32) -> Result<()> {
    if moves.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/ns/net");
    let netns = OwnedFd::from(std::fs::File::open(&path).map_err(|e| Error::path("open", &path, e))?);
    let mut host = Socket::open().map_err(|e| Error::sys("open a netlink socket", e))?;
    let mut moved = Vec::new();
    for m in moves {
        let fail = |what: &str, e: std::io::Error| Error::config(field(&m.host_name), format!("{what}: {e}"));
        let kept: Vec<Address> = host
            .addresses(m.index)
            .map_err(|e| fail("list its addresses", e))?
            .into_iter()
            .filter(|a| a.permanent && a.scope == libc::RT_SCOPE_UNIVERSE)
            .collect();
        host.move_link(m.index, &netns, &m.name)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EEXIST) => Error::config(
                    format!("{}.name", field(&m.host_name)),
                    format!("a device named {:?} already exists in the container", m.name),
                ),
                _ => fail("move it into the container's network namespace", e),
            })?;
        moved.push((m, kept));
    }
    configure_inside(&netns, &moved)
}

/// Adds the kept addresses and sets the links up, from a thread that enters the container's
/// network namespace (setns of a network namespace changes only the calling thread, and the
/// thread ends with it).
fn configure_inside(netns: &OwnedFd, moved: &[(&Move, Vec<Address>)]) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // This thread only, with an fd we own for the scope's duration.
            nix::sched::setns(netns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| Error::sys("enter the container's network namespace", e))?;
            let mut inside = Socket::open().map_err(|e| Error::sys("open a netlink socket", e))?;
            for (m, addrs) in moved {
                let fail = |what: &str, e: std::io::Error| Error::config(field(&m.host_name), format!("{what}: {e}"));
                // A template name ("eth%d") is chosen by the kernel; the index survives the
                // move unless the namespace already used it.
                let index = if m.name.contains('%') {
                    Some(m.index)
                } else {
                    host_index(&m.name)
                }
                .ok_or_else(|| {
                    fail(
                        "find it in the container",
                        std::io::Error::from_raw_os_error(libc::ENODEV),
                    )
                })?;
                for a in addrs {
                    inside
                        .add_address(index, a)
                        .map_err(|e| fail("restore an address", e))?;
                }
                inside.set_up(index).map_err(|e| fail("set it up", e))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(Error::config("linux.netDevices", "configuring the devices failed")))
    })
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn interface_names() {
        for ok in ["eth0", "container_eth0", "a", "eth%d", "abcdefghijklmno"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "abcdefghijklmnop"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
