//! containerd 2.3's bootstrap protocol (api/runtime/bootstrap/v1/bootstrap.proto): `start` reads
//! a protobuf `BootstrapParams` on stdin and answers a protobuf `BootstrapResult` (version 3:
//! the task v3 API) on stdout. Older containerds put nothing on stdin, or the runtime's
//! options as a protobuf `Any`, and read a plain address back.
//!
//! Both are told apart as containerd's own shims do: the stdin is a bootstrap request only if it
//! decodes and names the container and namespace the command line names (an `Any`'s
//! type_url and value would decode as fields 1 and 2 too). A containerd that stops passing
//! the flags is recognised by the flags being empty.
//!
//! The two messages are small and fixed: decoded and encoded here by hand rather than with
//! generated code for two messages.

use crate::flags::Flags;

/// What `start` uses of a `BootstrapParams`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Params {
    pub instance_id: String,
    pub namespace: String,
    pub log_level: i64,
    pub grpc_address: String,
    pub binary: String,
}

/// The task API version a `BootstrapResult` announces: containerd then calls
/// containerd.task.v3.Task, which the server serves beside v2.
pub const TASK_API_VERSION: u64 = 3;

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let x = *b.get(*i)?;
        *i += 1;
        n |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Decodes a `BootstrapParams`; None if the bytes are no well-formed protobuf message.
pub fn decode(b: &[u8]) -> Option<Params> {
    let mut p = Params::default();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i)?;
        let (num, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                let v = varint(b, &mut i)?;
                if num == 3 {
                    // An int32 enum: negative values come sign-extended to 64 bits.
                    p.log_level = i64::from_ne_bytes(v.to_ne_bytes());
                }
            }
            1 => i = i.checked_add(8)?,
            5 => i = i.checked_add(4)?,
            2 => {
                let len = usize::try_from(varint(b, &mut i)?).ok()?;
                let end = i.checked_add(len)?;
                let data = b.get(i..end)?;
                i = end;
                let text = || String::from_utf8(data.to_vec()).ok();
                match num {
                    1 => p.instance_id = text()?,
                    2 => p.namespace = text()?,
                    6 => p.grpc_address = text()?,
                    7 => p.binary = text()?,
                    // 4 containerd's version, 5 its ttrpc address, 8 extensions: not needed.
                    _ => {}
                }
            }
            _ => return None,
        }
        if i > b.len() {
            return None;
        }
    }
    Some(p)
}

/// The bootstrap request in `stdin`, if it is one for this command line; fills the flags a
/// containerd that no longer passes them left empty.
pub fn recognise(stdin: &[u8], flags: &mut Flags) -> Option<Params> {
    if stdin.is_empty() {
        return None;
    }
    let p = decode(stdin)?;
    if p.instance_id.is_empty() || p.namespace.is_empty() {
        return None;
    }
    let fits = |flag: &str, value: &str| flag.is_empty() || flag == value;
    if !fits(&flags.id, &p.instance_id) || !fits(&flags.namespace, &p.namespace) {
        return None;
    }
    if flags.id.is_empty() {
        flags.id.clone_from(&p.instance_id);
    }
    if flags.namespace.is_empty() {
        flags.namespace.clone_from(&p.namespace);
    }
    if flags.address.is_empty() {
        flags.address = p.grpc_address.trim_start_matches("unix://").to_string();
    }
    if flags.publish_binary.is_empty() {
        flags.publish_binary.clone_from(&p.binary);
    }
    // LOG_LEVEL_DEBUG is -4; TRACE -8.
    if p.log_level <= -4 {
        flags.debug = true;
    }
    Some(p)
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = u8::try_from(n & 0x7f).unwrap_or(0);
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_string(out: &mut Vec<u8>, num: u64, s: &str) {
    put_varint(out, num << 3 | 2);
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A `BootstrapResult`: version 3, the address, protocol ttrpc.
pub fn result(address: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, 1 << 3);
    put_varint(&mut out, TASK_API_VERSION);
    put_string(&mut out, 2, address);
    put_string(&mut out, 3, "ttrpc");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BootstrapParams as containerd 2.3 encodes it (fields in number order), built from
    /// bootstrap.proto: instance_id, namespace, log_level DEBUG (-4), version, ttrpc and grpc
    /// addresses, binary, one extension (an Any).
    fn params_bytes() -> Vec<u8> {
        let mut b = Vec::new();
        put_string(&mut b, 1, "c1");
        put_string(&mut b, 2, "k8s.io");
        put_varint(&mut b, 3 << 3);
        put_varint(&mut b, u64::from_ne_bytes((-4i64).to_ne_bytes()));
        put_string(&mut b, 4, "v2.3.0");
        put_string(&mut b, 5, "unix:///run/containerd/containerd.sock.ttrpc");
        put_string(&mut b, 6, "unix:///run/containerd/containerd.sock");
        put_string(&mut b, 7, "/usr/bin/containerd");
        let mut any = Vec::new();
        put_string(&mut any, 1, "containerd.runc.v1.Options");
        put_string(&mut any, 2, "\u{8}\u{1}");
        let mut ext = Vec::new();
        put_varint(&mut ext, 1 << 3 | 2);
        put_varint(&mut ext, any.len() as u64);
        ext.extend_from_slice(&any);
        put_varint(&mut b, 8 << 3 | 2);
        put_varint(&mut b, ext.len() as u64);
        b.extend_from_slice(&ext);
        b
    }

    #[test]
    fn a_bootstrap_request_is_decoded_and_fills_missing_flags() {
        let p = decode(&params_bytes()).unwrap();
        assert_eq!(p.instance_id, "c1");
        assert_eq!(p.namespace, "k8s.io");
        assert_eq!(p.log_level, -4);
        assert_eq!(p.binary, "/usr/bin/containerd");
        let mut flags = Flags::default();
        assert!(recognise(&params_bytes(), &mut flags).is_some());
        assert_eq!(flags.id, "c1");
        assert_eq!(flags.namespace, "k8s.io");
        assert_eq!(flags.address, "/run/containerd/containerd.sock");
        assert_eq!(flags.publish_binary, "/usr/bin/containerd");
        assert!(flags.debug);
    }

    #[test]
    fn legacy_stdin_is_no_bootstrap_request() {
        let mut flags = Flags {
            id: "c1".into(),
            namespace: "k8s.io".into(),
            ..Default::default()
        };
        assert!(recognise(b"", &mut flags).is_none());
        // containerd <= 2.2: the runtime options as an Any; its type_url and value decode as
        // fields 1 and 2, which do not name this container.
        let mut any = Vec::new();
        put_string(&mut any, 1, "containerd.runc.v1.Options");
        put_string(&mut any, 2, "\u{12}\u{4}runc");
        assert!(recognise(&any, &mut flags).is_none());
        assert!(recognise(b"\xff\xff", &mut flags).is_none());
        // A request for another container is not ours either.
        flags.id = "c2".into();
        assert!(recognise(&params_bytes(), &mut flags).is_none());
    }

    #[test]
    fn the_result_is_version_3_ttrpc() {
        let r = result("unix:///run/containerd/s/abc");
        // The first bytes of a BootstrapResult as containerd issue 13763 quotes one from a 2.3
        // shim ("\b\x03\x12Yunix" for a 89-byte address).
        assert_eq!(&r[..3], b"\x08\x03\x12");
        assert_eq!(usize::from(r[3]), "unix:///run/containerd/s/abc".len());
        assert!(r.ends_with(b"\x1a\x05ttrpc"));
        let long = format!("unix:///run/containerd/s/{}", "a".repeat(64));
        assert_eq!(&result(&long)[..4], b"\x08\x03\x12\x59");
    }
}
