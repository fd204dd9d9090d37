//! `linux.memoryPolicy` (runtime-spec 1.3): the NUMA policy set with set_mempolicy(2) by the
//! container's processes (init and exec) before their credentials change, so no seccomp
//! profile stands in the way. Parsed in the parent, so a bad policy fails before anything exists.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};

use crate::error::{Error, Result};

/// The kernel's MAX_NUMNODES is at most 1 << 10.
const MAX_NODES: u32 = 1024;
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

#[derive(Clone, Debug, PartialEq)]
pub struct MemPolicy {
    /// Mode with its flags or'ed in, as set_mempolicy takes it.
    mode: libc::c_int,
    nodemask: Vec<libc::c_ulong>,
}

impl MemPolicy {
    pub fn parse(policy: &LinuxMemoryPolicy) -> Result<Self> {
        use MemoryPolicyModeType as M;
        let mode = policy.mode();
        let nodes = match policy.nodes().as_deref().filter(|n| !n.is_empty()) {
            Some(text) => crate::spec::cpulist::parse("linux.memoryPolicy.nodes", text, MAX_NODES)?,
            None => Vec::new(),
        };
        let (number, needs_nodes, allows_nodes) = match mode {
            M::MpolDefault => (0, false, false),
            M::MpolPreferred => (1, false, true),
            M::MpolBind => (2, true, true),
            M::MpolInterleave => (3, true, true),
            M::MpolLocal => (4, false, false),
            M::MpolPreferredMany => (5, true, true),
            M::MpolWeightedInterleave => (6, true, true),
        };
        if needs_nodes && nodes.is_empty() {
            return Err(Error::config(
                "linux.memoryPolicy.nodes",
                format!("{mode} needs at least one node"),
            ));
        }
        if !allows_nodes && !nodes.is_empty() {
            return Err(Error::config(
                "linux.memoryPolicy.nodes",
                format!("{mode} takes no nodes"),
            ));
        }
        let mut flags = 0;
        for flag in policy.flags().iter().flatten() {
            flags |= match flag {
                MemoryPolicyFlagType::MpolFNumaBalancing => 1 << 13,
                MemoryPolicyFlagType::MpolFRelativeNodes => 1 << 14,
                MemoryPolicyFlagType::MpolFStaticNodes => 1 << 15,
            };
        }
        let words = nodes.last().map_or(0, |&n| n as usize / WORD_BITS + 1);
        let mut nodemask = vec![0 as libc::c_ulong; words];
        for n in nodes {
            nodemask[n as usize / WORD_BITS] |= 1 << (n as usize % WORD_BITS);
        }
        Ok(Self {
            mode: number | flags,
            nodemask,
        })
    }

    /// Sets the policy of the calling process.
    pub fn apply(&self) -> Result<()> {
        let (mask, maxnode) = if self.nodemask.is_empty() {
            (std::ptr::null(), 0)
        } else {
            // The kernel reads maxnode - 1 bits.
            (self.nodemask.as_ptr(), self.nodemask.len() * WORD_BITS + 1)
        };
        // SAFETY: mask points to nodemask.len() words, and maxnode - 1 bits fit in them.
        if unsafe { libc::syscall(libc::SYS_set_mempolicy, self.mode, mask, maxnode) } != 0 {
            return Err(Error::config(
                "linux.memoryPolicy",
                format!("set_mempolicy: {}", std::io::Error::last_os_error()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(json: &str) -> Result<MemPolicy> {
        let p: LinuxMemoryPolicy = serde_json::from_str(json).unwrap();
        MemPolicy::parse(&p)
    }

    #[test]
    fn modes_flags_and_nodes() {
        let p = policy(r#"{"mode":"MPOL_BIND","nodes":"0,2-3,64","flags":["MPOL_F_STATIC_NODES"]}"#).unwrap();
        assert_eq!(p.mode, 2 | 1 << 15);
        assert_eq!(p.nodemask, vec![0b1101, 1]);
        assert_eq!(policy(r#"{"mode":"MPOL_LOCAL"}"#).unwrap().mode, 4);
        assert!(policy(r#"{"mode":"MPOL_PREFERRED"}"#).unwrap().nodemask.is_empty());
    }

    #[test]
    fn nodes_must_fit_the_mode() {
        for bad in [
            r#"{"mode":"MPOL_BIND"}"#,
            r#"{"mode":"MPOL_INTERLEAVE","nodes":""}"#,
            r#"{"mode":"MPOL_DEFAULT","nodes":"0"}"#,
            r#"{"mode":"MPOL_BIND","nodes":"x"}"#,
            r#"{"mode":"MPOL_BIND","nodes":"1024"}"#,
        ] {
            let e = policy(bad).unwrap_err().to_string();
            assert!(e.contains("linux.memoryPolicy.nodes"), "{bad}: {e}");
        }
    }
}
