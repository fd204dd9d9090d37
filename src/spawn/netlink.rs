//! A minimal rtnetlink client: the few requests `linux.netDevices` needs (move a link into
//! another network namespace, list and add addresses, set a link up). A netlink socket works
//! in the network namespace of the thread that opened it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};

const HEADER: usize = 16;
const IFADDR: usize = 8;
const IFA_F_PERMANENT: u8 = 0x80;

pub struct Socket {
    fd: OwnedFd,
    seq: u32,
}

/// An address of a link, as RTM_NEWADDR carries it.
#[derive(Clone, Debug)]
pub struct Address {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub permanent: bool,
    /// (attribute type, payload) for IFA_ADDRESS, IFA_LOCAL and IFA_BROADCAST.
    pub attrs: Vec<(u16, Vec<u8>)>,
}

/// NLM_F_* flags (ints in libc) as the u16 of a netlink header: they are defined below bit 16.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
const fn nlm_flags(f: libc::c_int) -> u16 {
    f as u16
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn push_attr(msg: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    // Attributes are an interface name or an address: far below 64 KiB.
    #[allow(clippy::cast_possible_truncation)]
    let len = (4 + payload.len()) as u16;
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&kind.to_ne_bytes());
    msg.extend_from_slice(payload);
    msg.resize(align(msg.len()), 0);
}

fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut body = vec![0u8; 4]; // family, pad, type
    body.extend_from_slice(&index.to_ne_bytes());
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&change.to_ne_bytes());
    body
}

/// The attributes of a message body after its fixed header of `fixed` bytes.
fn attrs(body: &[u8], fixed: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut rest = body.get(fixed..).unwrap_or_default();
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            break;
        }
        out.push((kind, &rest[4..len]));
        rest = rest.get(align(len)..).unwrap_or_default();
    }
    out
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        Ok(Socket { fd, seq: 0 })
    }

    /// Sends one request and returns the bodies of the replies (with their types), up to the
    /// ack or NLMSG_DONE; an error ack becomes the io::Error it carries.
    fn request(&mut self, kind: u16, flags: u16, body: &[u8]) -> io::Result<Vec<(u16, Vec<u8>)>> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(HEADER + body.len());
        let len = u32::try_from(HEADER + body.len()).map_err(|_| io::Error::from_raw_os_error(libc::EMSGSIZE))?;
        msg.extend_from_slice(&len.to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | nlm_flags(libc::NLM_F_REQUEST)).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // Pid 0 and no groups address the kernel.
        sendto(self.fd.as_raw_fd(), &msg, &NetlinkAddr::new(0, 0), MsgFlags::empty())?;
        let mut replies = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            let mut rest = &buf[..n];
            while rest.len() >= HEADER {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let typ = u16::from_ne_bytes([rest[4], rest[5]]);
                let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
                if len < HEADER || len > rest.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "truncated netlink reply"));
                }
                let body = &rest[HEADER..len];
                rest = rest.get(align(len)..).unwrap_or_default();
                if seq != self.seq {
                    continue;
                }
                match i32::from(typ) {
                    libc::NLMSG_DONE => return Ok(replies),
                    libc::NLMSG_ERROR => {
                        let code = body
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return if code == 0 {
                            Ok(replies)
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    _ => replies.push((typ, body.to_vec())),
                }
            }
        }
    }

    /// Moves link `index` into the network namespace `netns`, named `name` there.
    pub fn move_link(&mut self, index: i32, netns: &OwnedFd, name: &str) -> io::Result<()> {
        let mut body = ifinfo(index, 0, 0);
        push_attr(&mut body, libc::IFLA_NET_NS_FD, &netns.as_raw_fd().to_ne_bytes());
        let mut ifname = name.as_bytes().to_vec();
        ifname.push(0);
        push_attr(&mut body, libc::IFLA_IFNAME, &ifname);
        self.request(libc::RTM_NEWLINK, nlm_flags(libc::NLM_F_ACK), &body)
            .map(drop)
    }

    pub fn set_up(&mut self, index: i32) -> io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.request(libc::RTM_NEWLINK, nlm_flags(libc::NLM_F_ACK), &ifinfo(index, up, up))
            .map(drop)
    }

    /// The addresses of link `index`.
    pub fn addresses(&mut self, index: i32) -> io::Result<Vec<Address>> {
        let body = [0u8; IFADDR]; // AF_UNSPEC: every family
        let replies = self.request(libc::RTM_GETADDR, nlm_flags(libc::NLM_F_DUMP), &body)?;
        let mut out = Vec::new();
        for (typ, body) in replies {
            if typ != libc::RTM_NEWADDR || body.len() < IFADDR {
                continue;
            }
            let link = u32::from_ne_bytes([body[4], body[5], body[6], body[7]]);
            if u32::try_from(index).ok() != Some(link) {
                continue;
            }
            let mut permanent = body[2] & IFA_F_PERMANENT != 0;
            let mut kept = Vec::new();
            for (kind, payload) in attrs(&body, IFADDR) {
                match kind {
                    libc::IFA_ADDRESS | libc::IFA_LOCAL | libc::IFA_BROADCAST => kept.push((kind, payload.to_vec())),
                    libc::IFA_FLAGS if payload.len() >= 4 => {
                        let flags = u32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                        permanent |= flags & u32::from(IFA_F_PERMANENT) != 0;
                    }
                    _ => {}
                }
            }
            out.push(Address {
                family: body[0],
                prefix_len: body[1],
                scope: body[3],
                permanent,
                attrs: kept,
            });
        }
        Ok(out)
    }

    pub fn add_address(&mut self, index: i32, addr: &Address) -> io::Result<()> {
        let mut body = vec![addr.family, addr.prefix_len, 0, addr.scope];
        body.extend_from_slice(&index.to_ne_bytes());
        for (kind, payload) in &addr.attrs {
            push_attr(&mut body, *kind, payload);
        }
        let flags = libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
        self.request(libc::RTM_NEWADDR, nlm_flags(flags), &body).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_round_trip_and_stop_at_garbage() {
        let mut body = vec![0u8; IFADDR];
        push_attr(&mut body, 1, &[10, 0, 0, 1]);
        push_attr(&mut body, 3, b"eth0\0");
        let got = attrs(&body, IFADDR);
        assert_eq!(got, vec![(1, &[10u8, 0, 0, 1][..]), (3, &b"eth0\0"[..])]);
        // A length past the end ends the walk instead of reading out of bounds.
        body.extend_from_slice(&[200, 0, 1, 0]);
        assert_eq!(attrs(&body, IFADDR).len(), 2);
        assert!(attrs(&body[..3], IFADDR).is_empty());
    }
}
