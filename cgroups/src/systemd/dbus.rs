//! Just enough of the D-Bus wire protocol to talk to systemd's manager: EXTERNAL
//! authentication on a unix socket, method calls with typed arguments, their replies and
//! errors, and signals. No D-Bus library is used: libdbus is C (not static-friendly) and zbus
//! brings an async runtime into the create path; a runtime needs a dozen calls, synchronously.
//!
//! Marshalling follows the specification's rules: every value is aligned to its type's
//! alignment counted from the start of the message; the body starts 8-aligned, so aligning
//! within the body alone is the same.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The system bus's well-known socket, used when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// systemd's peer-to-peer socket (no bus daemon, root only): the fallback without dbus-daemon.
pub const SYSTEMD_PRIVATE_SOCKET: &str = "/run/systemd/private";

/// Messages above this size are refused (the specification's limit is 128 MiB; systemd's
/// replies to us are a few hundred bytes).
const MAX_MESSAGE: usize = 16 << 20;
/// The specification caps nesting at 32 arrays plus 32 structs.
const MAX_DEPTH: usize = 64;

#[derive(thiserror::Error, Debug)]
pub enum DbusError {
    #[error("connect to {path}: {source}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("D-Bus I/O: {0}")]
    Io(#[from] io::Error),
    #[error("D-Bus authentication refused: {0:?}")]
    Auth(String),
    #[error("D-Bus protocol: {0}")]
    Protocol(String),
    /// The peer answered with an error message.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("no answer from the bus within {0:?}")]
    Timeout(Duration),
}

type Result<T> = std::result::Result<T, DbusError>;

fn protocol(msg: impl Into<String>) -> DbusError {
    DbusError::Protocol(msg.into())
}

/// A D-Bus value. Arrays carry their element signature so empty arrays marshal correctly.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    /// The value's type signature.
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::ObjectPath(_) => "o".into(),
            Value::Signature(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => format!("({})", fields.iter().map(Value::signature).collect::<String>()),
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }
}

/// Alignment of the first character of a signature.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 4,
    }
}

fn pad_to(buf: &mut Vec<u8>, align: usize) {
    buf.resize(buf.len().next_multiple_of(align), 0);
}

/// Marshals values in one byte order; `buf` starts at an 8-aligned message offset.
struct Writer {
    buf: Vec<u8>,
    big_endian: bool,
}

impl Writer {
    fn new(big_endian: bool) -> Writer {
        Writer {
            buf: Vec::new(),
            big_endian,
        }
    }

    fn u32(&mut self, v: u32) {
        pad_to(&mut self.buf, 4);
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    fn u64(&mut self, v: u64) {
        pad_to(&mut self.buf, 8);
        let b = if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.buf.extend_from_slice(&b);
    }

    fn string(&mut self, s: &str) -> Result<()> {
        if s.contains('\0') {
            return Err(protocol(format!("string {s:?} contains NUL")));
        }
        self.u32(u32::try_from(s.len()).map_err(|_| protocol("string too long"))?);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn signature(&mut self, s: &str) -> Result<()> {
        self.buf
            .push(u8::try_from(s.len()).map_err(|_| protocol("signature longer than 255"))?);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    fn value(&mut self, v: &Value) -> Result<()> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(i) => self.u32(u32::from_ne_bytes(i.to_ne_bytes())),
            Value::U32(u) => self.u32(*u),
            Value::I64(i) => self.u64(u64::from_ne_bytes(i.to_ne_bytes())),
            Value::U64(u) => self.u64(*u),
            Value::Str(s) | Value::ObjectPath(s) => self.string(s)?,
            Value::Signature(s) => self.signature(s)?,
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                let first = *elem
                    .as_bytes()
                    .first()
                    .ok_or_else(|| protocol("array without element type"))?;
                pad_to(&mut self.buf, alignment(first));
                let start = self.buf.len();
                for item in items {
                    if item.signature() != *elem {
                        return Err(protocol(format!("array of {elem} holds a {} value", item.signature())));
                    }
                    self.value(item)?;
                }
                let len = u32::try_from(self.buf.len() - start).map_err(|_| protocol("array too long"))?;
                let b = if self.big_endian {
                    len.to_be_bytes()
                } else {
                    len.to_le_bytes()
                };
                self.buf[len_at..len_at + 4].copy_from_slice(&b);
            }
            Value::Struct(fields) => {
                pad_to(&mut self.buf, 8);
                for f in fields {
                    self.value(f)?;
                }
            }
            Value::Variant(inner) => {
                self.signature(&inner.signature())?;
                self.value(inner)?;
            }
        }
        Ok(())
    }
}

/// Splits the first complete type off a signature: "a(sv)s" → ("a(sv)", "s").
fn split_type(sig: &str) -> Result<(&str, &str)> {
    let bytes = sig.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    loop {
        let c = *bytes
            .get(i)
            .ok_or_else(|| protocol(format!("incomplete signature {sig:?}")))?;
        i += 1;
        match c {
            b'a' => continue,
            b'(' | b'{' => depth += 1,
            b')' | b'}' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| protocol(format!("unbalanced signature {sig:?}")))?
            }
            b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g' | b'v' | b'h' => {}
            _ => return Err(protocol(format!("unknown type {:?} in signature {sig:?}", c as char))),
        }
        if depth == 0 {
            return Ok(sig.split_at(i));
        }
    }
}

/// Reads values out of a message (either byte order), offsets counted from the message start.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    big_endian: bool,
    depth: usize,
}

impl<'a> Reader<'a> {
    fn align(&mut self, a: usize) -> Result<()> {
        let next = self.pos.next_multiple_of(a);
        if next > self.data.len() {
            return Err(protocol("message truncated"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| protocol("message truncated"))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().map_err(|_| protocol("short u32"))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&mut self) -> Result<u64> {
        self.align(8)?;
        let b: [u8; 8] = self.take(8)?.try_into().map_err(|_| protocol("short u64"))?;
        Ok(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    fn text(&mut self, len: usize) -> Result<String> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(protocol("string not NUL-terminated"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| protocol("string is not UTF-8"))
    }

    fn value(&mut self, sig: &str) -> Result<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(protocol("values nested too deeply"));
        }
        let v = self.value_inner(sig);
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self, sig: &str) -> Result<Value> {
        let code = *sig.as_bytes().first().ok_or_else(|| protocol("empty signature"))?;
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(protocol(format!("boolean {n}"))),
            },
            b'i' => Value::I32(i32::from_ne_bytes(self.u32()?.to_ne_bytes())),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'n' | b'q' => {
                self.align(2)?;
                let b: [u8; 2] = self.take(2)?.try_into().map_err(|_| protocol("short u16"))?;
                let v = if self.big_endian {
                    u16::from_be_bytes(b)
                } else {
                    u16::from_le_bytes(b)
                };
                Value::U32(u32::from(v))
            }
            b'x' => Value::I64(i64::from_ne_bytes(self.u64()?.to_ne_bytes())),
            b't' | b'd' => Value::U64(self.u64()?),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::ObjectPath(s)
                }
            }
            b'g' => Value::Signature(self.signature()?),
            b'v' => {
                let inner = self.signature()?;
                let (one, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return Err(protocol(format!("variant signature {inner:?} is not one type")));
                }
                Value::Variant(Box::new(self.value(one)?))
            }
            b'a' => {
                let elem = &sig[1..];
                let len = self.u32()? as usize;
                let first = *elem
                    .as_bytes()
                    .first()
                    .ok_or_else(|| protocol("array without element type"))?;
                self.align(alignment(first))?;
                let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
                let end = end.ok_or_else(|| protocol("array runs past the message"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    return Err(protocol("array length does not match its elements"));
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let mut fields = Vec::new();
                let mut rest = &sig[1..sig.len() - 1];
                while !rest.is_empty() {
                    let (one, tail) = split_type(rest)?;
                    fields.push(self.value(one)?);
                    rest = tail;
                }
                Value::Struct(fields)
            }
            c => return Err(protocol(format!("unsupported type {:?}", c as char))),
        })
    }

    fn signature(&mut self) -> Result<String> {
        let len = usize::from(self.take(1)?[0]);
        self.text(len)
    }

    /// Every value of a (possibly multi-type) signature.
    fn values(&mut self, mut sig: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (one, rest) = split_type(sig)?;
            out.push(self.value(one)?);
            sig = rest;
        }
        Ok(out)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// A decoded message: the header fields we use and the body.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub kind: MessageType,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub body: Vec<Value>,
}

const FIELD_PATH: u8 = 1;
const FIELD_INTERFACE: u8 = 2;
const FIELD_MEMBER: u8 = 3;
const FIELD_ERROR_NAME: u8 = 4;
const FIELD_REPLY_SERIAL: u8 = 5;
const FIELD_DESTINATION: u8 = 6;
const FIELD_SIGNATURE: u8 = 8;

/// Encodes a method call (little-endian, as every bus peer accepts).
pub fn encode_call(serial: u32, dest: &str, path: &str, iface: &str, member: &str, args: &[Value]) -> Result<Vec<u8>> {
    let fields = vec![
        header_field(FIELD_PATH, Value::ObjectPath(path.into())),
        header_field(FIELD_INTERFACE, Value::str(iface)),
        header_field(FIELD_MEMBER, Value::str(member)),
        header_field(FIELD_DESTINATION, Value::str(dest)),
    ];
    encode(MessageType::MethodCall, serial, fields, args, false)
}

fn header_field(code: u8, v: Value) -> Value {
    Value::Struct(vec![Value::Byte(code), Value::variant(v)])
}

fn encode(kind: MessageType, serial: u32, mut fields: Vec<Value>, args: &[Value], big_endian: bool) -> Result<Vec<u8>> {
    let mut body = Writer::new(big_endian);
    for a in args {
        body.value(a)?;
    }
    let sig: String = args.iter().map(Value::signature).collect();
    if !sig.is_empty() {
        fields.push(header_field(FIELD_SIGNATURE, Value::Signature(sig)));
    }
    let mut msg = Writer::new(big_endian);
    msg.buf
        .extend_from_slice(&[if big_endian { b'B' } else { b'l' }, kind as u8, 0, 1]);
    msg.u32(u32::try_from(body.buf.len()).map_err(|_| protocol("body too long"))?);
    msg.u32(serial);
    msg.value(&Value::Array("(yv)".into(), fields))?;
    pad_to(&mut msg.buf, 8);
    msg.buf.extend_from_slice(&body.buf);
    Ok(msg.buf)
}

/// The total length of the message whose first 16 bytes are `head`.
fn message_len(head: &[u8; 16]) -> Result<usize> {
    let big = match head[0] {
        b'l' => false,
        b'B' => true,
        c => return Err(protocol(format!("bad byte-order mark {c:#x}"))),
    };
    let word = |at: usize| {
        let b = [head[at], head[at + 1], head[at + 2], head[at + 3]];
        (if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }) as usize
    };
    let (body, fields) = (word(4), word(12));
    let total = (16 + fields).next_multiple_of(8) + body;
    if total > MAX_MESSAGE {
        return Err(protocol(format!("message of {total} bytes is too large")));
    }
    Ok(total)
}

/// Decodes one complete message.
pub fn decode(data: &[u8]) -> Result<Message> {
    let head: &[u8; 16] = data
        .get(..16)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| protocol("short message"))?;
    if message_len(head)? != data.len() {
        return Err(protocol("message length does not match its header"));
    }
    let kind = match data[1] {
        1 => MessageType::MethodCall,
        2 => MessageType::MethodReturn,
        3 => MessageType::Error,
        4 => MessageType::Signal,
        t => return Err(protocol(format!("unknown message type {t}"))),
    };
    let mut r = Reader {
        data,
        pos: 8,
        big_endian: data[0] == b'B',
        depth: 0,
    };
    let serial = r.u32()?;
    let Value::Array(_, fields) = r.value("a(yv)")? else {
        return Err(protocol("header fields"));
    };
    let mut msg = Message {
        kind,
        serial,
        reply_serial: None,
        path: None,
        interface: None,
        member: None,
        error_name: None,
        body: Vec::new(),
    };
    let mut signature = String::new();
    for f in fields {
        let Value::Struct(mut pair) = f else { continue };
        let (Some(Value::Variant(v)), Some(Value::Byte(code))) = (pair.pop(), pair.pop()) else {
            continue;
        };
        match (code, *v) {
            (FIELD_PATH, Value::ObjectPath(s)) => msg.path = Some(s),
            (FIELD_INTERFACE, Value::Str(s)) => msg.interface = Some(s),
            (FIELD_MEMBER, Value::Str(s)) => msg.member = Some(s),
            (FIELD_ERROR_NAME, Value::Str(s)) => msg.error_name = Some(s),
            (FIELD_REPLY_SERIAL, Value::U32(n)) => msg.reply_serial = Some(n),
            (FIELD_SIGNATURE, Value::Signature(s)) => signature = s,
            _ => {}
        }
    }
    r.align(8)?;
    msg.body = r.values(&signature)?;
    if r.pos != data.len() {
        return Err(protocol("body longer than its signature"));
    }
    Ok(msg)
}

/// A connection to a bus (or to systemd's private socket).
pub struct Connection {
    sock: UnixStream,
    serial: u32,
    /// Registered with a bus daemon (as opposed to a peer-to-peer socket).
    bus_daemon: bool,
    /// Signals that arrived while waiting for a reply.
    queued: Vec<Message>,
}

impl Connection {
    /// The system bus (`DBUS_SYSTEM_BUS_ADDRESS` or its standard socket); if no bus daemon
    /// listens and we are root, systemd's private socket.
    pub fn system() -> Result<Connection> {
        let bus = match std::env::var("DBUS_SYSTEM_BUS_ADDRESS") {
            Ok(addr) => unix_path(&addr).ok_or_else(|| {
                protocol(format!(
                    "DBUS_SYSTEM_BUS_ADDRESS {addr:?}: only unix:path= addresses are supported"
                ))
            })?,
            Err(_) => PathBuf::from(SYSTEM_BUS_SOCKET),
        };
        match Connection::open(&bus, true) {
            Err(DbusError::Connect { .. }) if Path::new(SYSTEMD_PRIVATE_SOCKET).exists() => {
                Connection::open(Path::new(SYSTEMD_PRIVATE_SOCKET), false)
            }
            r => r,
        }
    }

    /// Connects and authenticates; `hello` registers with a bus daemon (not on peer sockets).
    pub fn open(path: &Path, hello: bool) -> Result<Connection> {
        let sock = UnixStream::connect(path).map_err(|source| DbusError::Connect {
            path: path.to_path_buf(),
            source,
        })?;
        let mut conn = Connection {
            sock,
            serial: 0,
            bus_daemon: hello,
            queued: Vec::new(),
        };
        conn.authenticate()?;
        if hello {
            conn.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "Hello",
                &[],
            )?;
        }
        Ok(conn)
    }

    fn authenticate(&mut self) -> Result<()> {
        self.sock.set_read_timeout(Some(CALL_TIMEOUT))?;
        // SAFETY: geteuid cannot fail.
        let uid = unsafe { libc::geteuid() }.to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let line = self.read_line()?;
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(line));
        }
        self.sock.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    /// One authentication line; read a byte at a time so nothing after it is consumed.
    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(DbusError::Auth("overlong reply".into()));
            }
            match self.sock.read(&mut byte) {
                Ok(0) => return Err(DbusError::Auth("connection closed".into())),
                Ok(_) => line.push(byte[0]),
                Err(e) if is_timeout(&e) => return Err(DbusError::Timeout(CALL_TIMEOUT)),
                Err(e) => return Err(e.into()),
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    pub fn via_bus_daemon(&self) -> bool {
        self.bus_daemon
    }

    /// Calls a method and waits for its reply's body; an error reply becomes `Remote`.
    pub fn call(&mut self, dest: &str, path: &str, iface: &str, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.serial = self.serial.wrapping_add(1).max(1);
        let serial = self.serial;
        let msg = encode_call(serial, dest, path, iface, member, args)?;
        self.sock.write_all(&msg)?;
        let deadline = Instant::now() + CALL_TIMEOUT;
        loop {
            let reply = self.receive(deadline, CALL_TIMEOUT)?;
            match reply.kind {
                MessageType::Signal => self.queued.push(reply),
                _ if reply.reply_serial != Some(serial) => {}
                MessageType::Error => {
                    let message = reply.body.first().and_then(Value::as_str).unwrap_or("").to_string();
                    return Err(DbusError::Remote {
                        name: reply.error_name.unwrap_or_else(|| "unknown error".into()),
                        message,
                    });
                }
                _ => return Ok(reply.body),
            }
        }
    }

    /// Waits for a signal that `wanted` accepts (signals queued during calls come first).
    pub fn wait_signal(&mut self, timeout: Duration, wanted: impl Fn(&Message) -> bool) -> Result<Message> {
        if let Some(i) = self.queued.iter().position(&wanted) {
            return Ok(self.queued.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let msg = self.receive(deadline, timeout)?;
            if msg.kind == MessageType::Signal && wanted(&msg) {
                return Ok(msg);
            }
        }
    }

    fn receive(&mut self, deadline: Instant, total: Duration) -> Result<Message> {
        let mut head = [0u8; 16];
        self.read_exact_by(&mut head, deadline, total)?;
        let len = message_len(&head)?;
        let mut data = vec![0u8; len];
        data[..16].copy_from_slice(&head);
        self.read_exact_by(&mut data[16..], deadline, total)?;
        decode(&data)
    }

    fn read_exact_by(&mut self, mut buf: &mut [u8], deadline: Instant, total: Duration) -> Result<()> {
        while !buf.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(total));
            }
            self.sock.set_read_timeout(Some(left))?;
            match self.sock.read(buf) {
                Ok(0) => return Err(protocol("the bus closed the connection")),
                Ok(n) => buf = &mut buf[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => return Err(DbusError::Timeout(total)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// How long one method call may take (runc waits as long for systemd).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

/// The socket of a `unix:path=...` address (the first such entry of a `;` list).
fn unix_path(address: &str) -> Option<PathBuf> {
    address.split(';').find_map(|entry| {
        let params = entry.strip_prefix("unix:")?;
        params
            .split(',')
            .find_map(|kv| kv.strip_prefix("path="))
            .map(|p| PathBuf::from(unescape(p)))
    })
}

/// Undoes D-Bus address %XX escaping.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        if let Some(b) = escaped {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_call_matches_the_reference_encoding() {
        // The bytes `dbus-send`/libdbus put on the wire for Hello (serial 1), checked by hand
        // against the specification: header, four fields, no body.
        let msg = encode_call(
            1,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            &[],
        )
        .unwrap();
        assert_eq!(&msg[..12], b"l\x01\x00\x01\x00\x00\x00\x00\x01\x00\x00\x00");
        assert_eq!(msg.len() % 8, 0);
        let fields_len = u32::from_le_bytes(msg[12..16].try_into().unwrap()) as usize;
        // path: 1+1+'o'+0 → 4, u32 len, 21 bytes + NUL = 30, pad 2 → 32
        // iface: 8-aligned struct, 4 + 4 + 20+1 = 29 → pad 3 → 32
        // member: 4 + 4 + 5+1 = 14 → pad 2 → 16; destination: 4 + 4 + 20+1 = 29
        assert_eq!(fields_len, 32 + 32 + 16 + 29);
        let decoded = decode(&msg).unwrap();
        assert_eq!(decoded.member.as_deref(), Some("Hello"));
        assert_eq!(decoded.path.as_deref(), Some("/org/freedesktop/DBus"));
        assert!(decoded.body.is_empty());
    }

    #[test]
    fn start_transient_unit_round_trips() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![Value::str("Description"), Value::variant(Value::str("moor"))]),
                Value::Struct(vec![Value::str("Delegate"), Value::variant(Value::Bool(true))]),
                Value::Struct(vec![
                    Value::str("PIDs"),
                    Value::variant(Value::Array("u".into(), vec![Value::U32(4242)])),
                ]),
                Value::Struct(vec![Value::str("MemoryMax"), Value::variant(Value::U64(1 << 30))]),
                Value::Struct(vec![
                    Value::str("AllowedCPUs"),
                    Value::variant(Value::Array("y".into(), vec![Value::Byte(3)])),
                ]),
            ],
        );
        let aux = Value::Array("(sa(sv))".into(), vec![]);
        let args = [Value::str("moor-x.scope"), Value::str("replace"), props, aux];
        let msg = encode_call(
            7,
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            &args,
        )
        .unwrap();
        let decoded = decode(&msg).unwrap();
        assert_eq!(decoded.serial, 7);
        assert_eq!(decoded.body, args.to_vec());
    }

    #[test]
    fn error_reply_in_big_endian_order_is_decoded() {
        let fields = vec![
            header_field(FIELD_ERROR_NAME, Value::str("org.freedesktop.systemd1.UnitExists")),
            header_field(FIELD_REPLY_SERIAL, Value::U32(3)),
        ];
        let body = [
            Value::str("taken"),
            Value::U64(1 << 40),
            Value::Array("u".into(), vec![Value::U32(7)]),
        ];
        let msg = encode(MessageType::Error, 9, fields, &body, true).unwrap();
        assert_eq!(&msg[..2], b"B\x03");
        assert_eq!(&msg[8..12], &9u32.to_be_bytes());
        let m = decode(&msg).unwrap();
        assert_eq!(m.kind, MessageType::Error);
        assert_eq!(m.reply_serial, Some(3));
        assert_eq!(m.error_name.as_deref(), Some("org.freedesktop.systemd1.UnitExists"));
        assert_eq!(m.body, body.to_vec());
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        let good = encode_call(
            1,
            "a.b",
            "/",
            "a.b",
            "M",
            &[Value::Array("s".into(), vec![Value::str("x")])],
        )
        .unwrap();
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "truncated at {cut}");
        }
        let mut huge_array = good.clone();
        let body_at = good.len() - 12;
        huge_array[body_at..body_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&huge_array).is_err());
        assert!(split_type("a").is_err());
        assert!(split_type("(s").is_err());
        assert!(split_type("s)").is_ok(), "takes only the first type");
        assert!(split_type("z").is_err());
    }

    #[test]
    fn bus_addresses() {
        assert_eq!(
            unix_path("unix:path=/run/dbus/system_bus_socket"),
            Some(PathBuf::from("/run/dbus/system_bus_socket"))
        );
        assert_eq!(
            unix_path("tcp:host=x;unix:guid=1,path=/tmp/a%20b"),
            Some(PathBuf::from("/tmp/a b"))
        );
        assert_eq!(unix_path("unix:abstract=/tmp/x"), None);
    }
}
