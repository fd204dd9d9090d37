//! ttrpc answers: status codes as containerd's errdefs read them back, and timestamps.

use std::time::SystemTime;

use containerd_shim_protos::ttrpc::{self, Code};
use protobuf::well_known_types::timestamp::Timestamp;

pub type RpcResult<T> = ttrpc::Result<T>;

pub fn status(code: Code, msg: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg))
}

pub fn not_found(id: &str, exec_id: &str) -> ttrpc::Error {
    if exec_id.is_empty() {
        status(Code::NOT_FOUND, format!("container {id} does not exist"))
    } else {
        status(
            Code::NOT_FOUND,
            format!("exec {exec_id} of container {id} does not exist"),
        )
    }
}

pub fn unimplemented(what: &str) -> ttrpc::Error {
    status(
        Code::UNIMPLEMENTED,
        format!("{what}: not implemented by containerd-shim-moor-v2 yet"),
    )
}

/// The library's error kinds as the gRPC codes containerd turns back into its errdefs.
pub fn moor_status(e: moor::Error) -> ttrpc::Error {
    let code = match &e {
        moor::Error::DoesNotExist(_) => Code::NOT_FOUND,
        moor::Error::AlreadyExists(_) => Code::ALREADY_EXISTS,
        moor::Error::NotRunning(_) | moor::Error::InvalidState(_) => Code::FAILED_PRECONDITION,
        moor::Error::Config { .. } | moor::Error::InvalidId { .. } => Code::INVALID_ARGUMENT,
        moor::Error::HelperGone(_) => Code::UNAVAILABLE,
        _ => Code::UNKNOWN,
    };
    status(code, e)
}

pub fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let mut ts = Timestamp::new();
    ts.seconds = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    ts.nanos = i32::try_from(d.subsec_nanos()).unwrap_or(0);
    ts
}
