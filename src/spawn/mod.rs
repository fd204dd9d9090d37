//! The host side of making a process in a container: namespaces planned from the spec, the
//! clone, the id maps and network devices the parent sets up for the child, and the sync
//! protocol over which the parent drives init (`create`) or a process joining a running
//! container (`exec`) step by step.

pub mod create;
pub mod exec;
pub mod idmap;
pub mod namespaces;
pub mod netdev;
pub mod netlink;
pub mod sync;
