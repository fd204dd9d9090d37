//! Front end: validates an OCI `LinuxSeccomp` and lowers it to a per-architecture [`Plan`].
//!
//! Semantics (those of libseccomp as runc and crun drive it, made explicit):
//! - A rule whose action (with its errno/trace data) equals the default action is dropped:
//!   libseccomp refuses such rules and runc/crun skip them.
//! - For one syscall, the first remaining rule without `args` decides alone (libseccomp keeps the
//!   first unconditional rule and drops conditional chains when one is added).
//! - Otherwise rules with `args` are tried in profile order; the first whose conditions all hold
//!   decides; if none holds, the default action applies. Conditions of one rule are ANDed, unless
//!   two name the same argument index: then, as runc 1.1 does (libseccomp refuses such a rule),
//!   each condition becomes a rule of its own, so they are ORed (runc's seccomp.bats relies on it).
//! - Comparisons are unsigned on the full 64-bit argument as the kernel reports it, on every
//!   architecture (32-bit ABIs report zero-extended arguments).
//! - An architecture not in the filter gets `SECCOMP_RET_KILL_THREAD` (libseccomp's default
//!   bad-arch action). The native architecture is always in the filter.
//! - Unless the default action allows the call (`ALLOW` or `LOG`), syscall numbers above the
//!   largest one the profile names on an architecture return `ENOSYS`, so that libc falls back
//!   from syscalls newer than the profile (runc's patchbpf does the same).

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator};

use crate::arch::Arch;
use crate::Error;

/// Comparison operator on a 64-bit syscall argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `arg != value`
    Ne,
    /// `arg < value`
    Lt,
    /// `arg <= value`
    Le,
    /// `arg == value`
    Eq,
    /// `arg >= value`
    Ge,
    /// `arg > value`
    Gt,
    /// `(arg & value) == value_two`
    MaskedEq,
}

impl Op {
    fn from_oci(op: LinuxSeccompOperator) -> Op {
        match op {
            LinuxSeccompOperator::ScmpCmpNe => Op::Ne,
            LinuxSeccompOperator::ScmpCmpLt => Op::Lt,
            LinuxSeccompOperator::ScmpCmpLe => Op::Le,
            LinuxSeccompOperator::ScmpCmpEq => Op::Eq,
            LinuxSeccompOperator::ScmpCmpGe => Op::Ge,
            LinuxSeccompOperator::ScmpCmpGt => Op::Gt,
            LinuxSeccompOperator::ScmpCmpMaskedEq => Op::MaskedEq,
        }
    }

    /// The reference meaning of the operator.
    pub fn eval(self, arg: u64, value: u64, value_two: u64) -> bool {
        match self {
            Op::Ne => arg != value,
            Op::Lt => arg < value,
            Op::Le => arg <= value,
            Op::Eq => arg == value,
            Op::Ge => arg >= value,
            Op::Gt => arg > value,
            Op::MaskedEq => arg & value == value_two,
        }
    }
}

/// One argument condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cond {
    /// Argument index, 0..=5.
    pub index: u8,
    /// Operator.
    pub op: Op,
    /// `value`.
    pub value: u64,
    /// `valueTwo` (only used by `MaskedEq`), 0 when absent.
    pub value_two: u64,
}

/// A rule with conditions: if all hold, return `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CondRule {
    /// ANDed conditions (never empty).
    pub conds: Vec<Cond>,
    /// SECCOMP_RET_* value.
    pub action: u32,
}

/// What one syscall number does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Always this SECCOMP_RET_* value.
    Action(u32),
    /// First matching rule wins, else the default action.
    Rules(Vec<CondRule>),
}

/// The lowered filter for one ABI.
#[derive(Clone, Debug)]
pub struct ArchPlan {
    /// The ABI.
    pub arch: Arch,
    /// Syscall number -> decision, only for numbers that differ from the default.
    pub syscalls: BTreeMap<u32, Decision>,
    /// Numbers strictly greater than this return ENOSYS (`None`: no ENOSYS stub).
    pub enosys_above: Option<u32>,
}

/// The lowered filter.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Default SECCOMP_RET_* value.
    pub default: u32,
    /// Action for an architecture not in the filter.
    pub bad_arch: u32,
    /// One entry per ABI, native first, no duplicates.
    pub arches: Vec<ArchPlan>,
    /// seccomp(2) flags (`SECCOMP_FILTER_FLAG_*`).
    pub flags: u32,
    /// Whether a rule uses `SCMP_ACT_NOTIFY`.
    pub notify: bool,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// The `ENOSYS` return value.
pub const RET_ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

fn action_name(a: LinuxSeccompAction) -> String {
    a.to_string()
}

/// Resolves an OCI action plus its errnoRet to a SECCOMP_RET_* value. `what` names the field for
/// error messages; `errno_err` builds the error for data on a data-less action.
fn resolve_action(
    action: LinuxSeccompAction,
    errno: Option<u32>,
    what: &str,
    errno_err: impl FnOnce(u32) -> Error,
) -> Result<u32, Error> {
    let data = |default: u32| -> Result<u32, Error> {
        let v = errno.unwrap_or(default);
        if v > libc::SECCOMP_RET_DATA {
            return Err(Error::DataTooLarge {
                field: what.to_string(),
                value: v,
            });
        }
        Ok(v)
    };
    let no_data = |ret: u32| -> Result<u32, Error> {
        match errno {
            Some(e) => Err(errno_err(e)),
            None => Ok(ret),
        }
    };
    match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            no_data(libc::SECCOMP_RET_KILL_THREAD)
        }
        LinuxSeccompAction::ScmpActKillProcess => no_data(libc::SECCOMP_RET_KILL_PROCESS),
        LinuxSeccompAction::ScmpActTrap => no_data(libc::SECCOMP_RET_TRAP),
        LinuxSeccompAction::ScmpActErrno => Ok(libc::SECCOMP_RET_ERRNO | data(libc::EPERM as u32)?),
        // runc passes EPERM as the trace message when errnoRet is absent.
        LinuxSeccompAction::ScmpActTrace => Ok(libc::SECCOMP_RET_TRACE | data(libc::EPERM as u32)?),
        LinuxSeccompAction::ScmpActLog => no_data(libc::SECCOMP_RET_LOG),
        LinuxSeccompAction::ScmpActNotify => no_data(libc::SECCOMP_RET_USER_NOTIF),
        LinuxSeccompAction::ScmpActAllow => no_data(libc::SECCOMP_RET_ALLOW),
    }
}

/// Validates `profile` and lowers it to a [`Plan`].
pub fn lower(profile: &LinuxSeccomp) -> Result<Plan, Error> {
    let mut warnings = Vec::new();
    let default_action = profile.default_action();
    if default_action == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::NotifyDefault);
    }
    let default = resolve_action(
        default_action,
        profile.default_errno_ret(),
        "defaultErrnoRet",
        |errno| Error::DefaultErrnoRetNotAllowed {
            action: action_name(default_action),
            errno,
        },
    )?;

    // Architectures: native first, then the listed ones we have tables for.
    let native = Arch::native().ok_or(Error::UnsupportedNative(std::env::consts::ARCH))?;
    let mut arches = vec![native];
    for a in profile.architectures().iter().flatten() {
        match Arch::from_oci(*a) {
            Some(arch) if !arches.contains(&arch) => arches.push(arch),
            Some(_) => {}
            None => warnings.push(format!(
                "seccomp: architecture {a} is not supported by this runtime; calls from it get the bad-arch action (kill)"
            )),
        }
    }

    // Validate and resolve every rule once.
    struct Rule<'a> {
        names: &'a [String],
        action: u32,
        conds: Vec<Cond>,
    }
    let mut rules = Vec::new();
    let mut notify = false;
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let names = sc.names();
        let joined = || names.join(",");
        if names.is_empty() || names.iter().any(|n| n.is_empty()) {
            return Err(Error::EmptyNames { rule: i });
        }
        let action = resolve_action(
            sc.action(),
            sc.errno_ret(),
            &format!("syscalls[{i}].errnoRet"),
            |errno| Error::ErrnoRetNotAllowed {
                rule: i,
                names: joined(),
                action: action_name(sc.action()),
                errno,
            },
        )?;
        if sc.action() == LinuxSeccompAction::ScmpActNotify {
            notify = true;
            if profile.listener_path().is_none() {
                return Err(Error::NotifyWithoutListener {
                    rule: i,
                    names: joined(),
                });
            }
        }
        let mut conds = Vec::new();
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            let index = u8::try_from(arg.index())
                .ok()
                .filter(|x| *x <= 5)
                .ok_or_else(|| Error::ArgIndex {
                    rule: i,
                    names: joined(),
                    arg: j,
                    index: arg.index(),
                })?;
            let op = Op::from_oci(arg.op());
            let value_two = arg.value_two().unwrap_or(0);
            if op == Op::MaskedEq && value_two & !arg.value() != 0 {
                warnings.push(format!(
                    "seccomp: syscalls[{i}] ({}): args[{j}] SCMP_CMP_MASKED_EQ valueTwo {value_two:#x} has bits outside value {:#x}; it never matches",
                    joined(),
                    arg.value()
                ));
            }
            conds.push(Cond {
                index,
                op,
                value: arg.value(),
                value_two,
            });
        }
        let repeated = conds
            .iter()
            .enumerate()
            .any(|(k, c)| conds[..k].iter().any(|d| d.index == c.index));
        if repeated {
            rules.extend(conds.into_iter().map(|c| Rule {
                names,
                action,
                conds: vec![c],
            }));
        } else {
            rules.push(Rule { names, action, conds });
        }
    }

    // Unknown names (on every architecture of the filter) are skipped with a warning.
    let mut unknown: Vec<&str> = Vec::new();
    for r in &rules {
        for n in r.names {
            if arches.iter().all(|a| a.syscall_nr(n).is_none()) && !unknown.contains(&n.as_str()) {
                unknown.push(n);
            }
        }
    }
    for n in unknown {
        warnings.push(format!(
            "seccomp: unknown syscall {n:?} on {}: skipped",
            arches.iter().map(|a| a.name()).collect::<Vec<_>>().join("/")
        ));
    }

    let allows_by_default = default == libc::SECCOMP_RET_ALLOW || default == libc::SECCOMP_RET_LOG;
    let mut plans = Vec::with_capacity(arches.len());
    for &arch in &arches {
        // nr -> rules in profile order (action != default).
        let mut per_nr: BTreeMap<u32, Vec<(u32, &[Cond])>> = BTreeMap::new();
        let mut max_named: Option<u32> = None;
        for r in &rules {
            for n in r.names {
                let Some(nr) = arch.syscall_nr(n) else {
                    continue;
                };
                max_named = max_named.max(Some(nr));
                let entry = per_nr.entry(nr).or_default();
                if r.action != default {
                    entry.push((r.action, &r.conds));
                }
            }
        }
        let mut syscalls = BTreeMap::new();
        for (nr, list) in per_nr {
            let decision = if let Some((a, _)) = list.iter().find(|(_, c)| c.is_empty()) {
                Decision::Action(*a)
            } else if list.is_empty() {
                continue;
            } else {
                let mut out: Vec<CondRule> = Vec::with_capacity(list.len());
                for (action, conds) in list {
                    let rule = CondRule {
                        conds: conds.to_vec(),
                        action,
                    };
                    // An identical earlier rule already decides; skip the duplicate
                    // (a syscall named twice in one rule, or a repeated rule).
                    if !out.iter().any(|o| o.conds == rule.conds) {
                        out.push(rule);
                    }
                }
                Decision::Rules(out)
            };
            syscalls.insert(nr, decision);
        }
        let enosys_above = if allows_by_default { None } else { max_named };
        plans.push(ArchPlan {
            arch,
            syscalls,
            enosys_above,
        });
    }

    // Flags.
    let mut flags: u32 = 0;
    for f in profile.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => flags |= flag(libc::SECCOMP_FILTER_FLAG_LOG),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => flags |= flag(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW),
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => flags |= flag(libc::SECCOMP_FILTER_FLAG_TSYNC),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                if notify {
                    flags |= flag(libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
                } else {
                    warnings.push(
                        "seccomp: flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no rule uses SCMP_ACT_NOTIFY"
                            .to_string(),
                    );
                }
            }
        }
    }
    if notify {
        flags |= flag(libc::SECCOMP_FILTER_FLAG_NEW_LISTENER);
        if flags & flag(libc::SECCOMP_FILTER_FLAG_TSYNC) != 0 {
            // The kernel refuses TSYNC with NEW_LISTENER unless failures are reported as ESRCH.
            flags |= flag(libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH);
        }
    } else if profile.listener_path().is_some() {
        warnings.push("seccomp: listenerPath is set but no rule uses SCMP_ACT_NOTIFY: no fd will be sent".to_string());
    }

    Ok(Plan {
        default,
        bad_arch: libc::SECCOMP_RET_KILL_THREAD,
        arches: plans,
        flags,
        notify,
        warnings,
    })
}

/// A SECCOMP_FILTER_FLAG_* (an unsigned long in libc) as the u32 the flags are kept in: the
/// kernel defines bits 0-5 only.
#[allow(clippy::cast_possible_truncation)]
pub(crate) const fn flag(f: libc::c_ulong) -> u32 {
    f as u32
}
