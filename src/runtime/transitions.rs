//! Which lifecycle operation a container's status allows: one table that every operation checks,
//! so that the rules are read and tested in one place. The refusals keep runc's wording, which
//! callers match.

use crate::error::{Error, Result};
use crate::runtime::state::Status;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Start,
    Kill,
    /// `kill --all`: also a stopped container, whose cgroup may still hold processes.
    KillAll,
    Delete,
    /// `delete --force`: kills whatever still runs.
    ForceDelete,
    Exec,
    /// `exec --ignore-paused`.
    ExecIgnorePaused,
    Pause,
    Resume,
    Update,
    Stats,
}

/// The columns of [`TABLE`], in order.
const COLUMNS: [Status; 5] = [
    Status::Creating,
    Status::Created,
    Status::Running,
    Status::Paused,
    Status::Stopped,
];

const NO: bool = false;
const OK: bool = true;

#[rustfmt::skip]
const TABLE: [(Op, [bool; 5]); 11] = [
    //                        creating created running paused stopped
    (Op::Start,              [NO,      OK,     NO,     NO,    NO]),
    (Op::Kill,               [OK,      OK,     OK,     OK,    NO]),
    (Op::KillAll,            [OK,      OK,     OK,     OK,    OK]),
    (Op::Delete,             [NO,      OK,     NO,     NO,    OK]),
    (Op::ForceDelete,        [OK,      OK,     OK,     OK,    OK]),
    (Op::Exec,               [NO,      OK,     OK,     NO,    NO]),
    (Op::ExecIgnorePaused,   [NO,      OK,     OK,     OK,    NO]),
    (Op::Pause,              [NO,      OK,     OK,     NO,    NO]),
    (Op::Resume,             [NO,      NO,     NO,     OK,    NO]),
    (Op::Update,             [OK,      OK,     OK,     OK,    NO]),
    (Op::Stats,              [OK,      OK,     OK,     OK,    NO]),
];

pub fn allowed(op: Op, status: Status) -> bool {
    let column = COLUMNS.iter().position(|s| *s == status);
    TABLE
        .iter()
        .find(|(o, _)| *o == op)
        .zip(column)
        .is_some_and(|((_, row), c)| row[c])
}

/// Ok when `op` is allowed on container `id` in `status`: else [`Error::NotRunning`] for an
/// operation on a stopped container that only needs it alive, as runc says it, and
/// [`Error::NotAllowed`] for the others.
pub fn check(op: Op, status: Status, id: &str) -> Result<()> {
    if allowed(op, status) {
        return Ok(());
    }
    Err(match (op, status) {
        (Op::Kill | Op::KillAll | Op::ForceDelete | Op::Pause | Op::Update | Op::Stats, Status::Stopped) => {
            Error::NotRunning(id.to_string())
        }
        _ => Error::NotAllowed {
            op,
            status,
            id: id.to_string(),
        },
    })
}

/// What [`Error::NotAllowed`] says: runc's words, which callers match.
pub(crate) fn refusal(op: Op, status: Status, id: &str) -> String {
    match (op, status) {
        (Op::Start, _) => format!("cannot start a container that is {status}: {id} is not in created state"),
        (Op::Delete, _) => format!("cannot delete container {id} that is not stopped: {status}"),
        (Op::Exec | Op::ExecIgnorePaused, Status::Paused) => format!("cannot exec in a paused container {id}"),
        (Op::Exec | Op::ExecIgnorePaused, _) => format!("cannot exec in a stopped container {id}"),
        (Op::Pause, _) => format!("container {id} is {status}: cannot pause it"),
        (Op::Resume, _) => format!("container {id} is not paused"),
        (Op::Kill | Op::KillAll | Op::ForceDelete | Op::Update | Op::Stats, _) => {
            format!("container {id} is {status}: cannot {op:?} it")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Op; 11] = [
        Op::Start,
        Op::Kill,
        Op::KillAll,
        Op::Delete,
        Op::ForceDelete,
        Op::Exec,
        Op::ExecIgnorePaused,
        Op::Pause,
        Op::Resume,
        Op::Update,
        Op::Stats,
    ];

    fn allowed_in(op: Op) -> Vec<Status> {
        COLUMNS.into_iter().filter(|s| allowed(op, *s)).collect()
    }

    #[test]
    fn every_operation_has_exactly_one_row() {
        for op in ALL {
            assert_eq!(TABLE.iter().filter(|(o, _)| *o == op).count(), 1, "{op:?}");
        }
    }

    #[test]
    fn the_lifecycle_follows_runc() {
        use Status::*;
        assert_eq!(allowed_in(Op::Start), [Created]);
        assert_eq!(allowed_in(Op::Kill), [Creating, Created, Running, Paused]);
        assert_eq!(allowed_in(Op::KillAll), COLUMNS);
        assert_eq!(allowed_in(Op::Delete), [Created, Stopped]);
        assert_eq!(allowed_in(Op::ForceDelete), COLUMNS);
        assert_eq!(allowed_in(Op::Exec), [Created, Running]);
        assert_eq!(allowed_in(Op::ExecIgnorePaused), [Created, Running, Paused]);
        assert_eq!(allowed_in(Op::Pause), [Created, Running]);
        assert_eq!(allowed_in(Op::Resume), [Paused]);
        assert_eq!(allowed_in(Op::Update), [Creating, Created, Running, Paused]);
        assert_eq!(allowed_in(Op::Stats), [Creating, Created, Running, Paused]);
    }

    #[test]
    fn refusals_keep_runcs_words() {
        let text = |op, status| check(op, status, "c1").unwrap_err().to_string();
        assert_eq!(
            text(Op::Start, Status::Running),
            "cannot start a container that is running: c1 is not in created state"
        );
        assert_eq!(
            text(Op::Delete, Status::Running),
            "cannot delete container c1 that is not stopped: running"
        );
        assert_eq!(text(Op::Exec, Status::Paused), "cannot exec in a paused container c1");
        assert_eq!(text(Op::Exec, Status::Stopped), "cannot exec in a stopped container c1");
        assert_eq!(text(Op::Kill, Status::Stopped), "container not running: c1");
        assert_eq!(text(Op::Pause, Status::Stopped), "container not running: c1");
        assert_eq!(
            text(Op::Pause, Status::Paused),
            "container c1 is paused: cannot pause it"
        );
        assert_eq!(text(Op::Resume, Status::Running), "container c1 is not paused");
        assert!(check(Op::ForceDelete, Status::Running, "c1").is_ok());
        assert!(matches!(
            check(Op::Start, Status::Stopped, "c1"),
            Err(Error::NotAllowed {
                op: Op::Start,
                status: Status::Stopped,
                ..
            })
        ));
    }
}
