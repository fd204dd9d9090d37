//! The container's seccomp profile, as compiled by moor: its default action, size, a digest of
//! the program the kernel gets, and which known-dangerous syscalls it lets through (found by
//! running the program in moor_seccomp's interpreter, so conditions on arguments count).

use moor_seccomp::arch::Arch;
use moor_seccomp::interp::SeccompData;
use oci_spec::runtime::LinuxSeccomp;
use serde::Serialize;

use crate::error::{Error, Result};

/// Syscalls that break isolation or widen the kernel's attack surface, with the arguments they
/// are tried with (flags that make them dangerous; zero elsewhere).
const DANGEROUS: [(&str, u64); 22] = [
    ("mount", 0),
    ("umount2", 0),
    ("pivot_root", 0),
    ("ptrace", 0),
    ("bpf", 0),
    ("keyctl", 0),
    ("add_key", 0),
    ("request_key", 0),
    ("unshare", libc::CLONE_NEWUSER as u64),
    ("clone", libc::CLONE_NEWUSER as u64),
    ("setns", 0),
    ("kexec_load", 0),
    ("kexec_file_load", 0),
    ("init_module", 0),
    ("finit_module", 0),
    ("delete_module", 0),
    ("open_by_handle_at", 0),
    ("perf_event_open", 0),
    ("userfaultfd", 0),
    ("process_vm_writev", 0),
    ("fsopen", 0),
    ("move_mount", 0),
];

#[derive(Clone, Debug, Serialize)]
pub struct Profile {
    pub default_action: String,
    /// Entries of `syscalls` in the profile, and the syscall names they list.
    pub rules: usize,
    pub syscall_names: usize,
    pub architectures: Vec<String>,
    /// BPF instructions, and the SHA-256 of the program (native-endian `sock_filter`s).
    pub instructions: usize,
    pub digest: String,
    /// Dangerous syscalls the filter allows on the native ABI ("clone(CLONE_NEWUSER)" for the
    /// flag-dependent ones).
    pub dangerous_allowed: Vec<String>,
    pub uses_notify: bool,
}

fn to_name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

pub fn analyse(profile: &LinuxSeccomp) -> Result<Profile> {
    let compiled = moor_seccomp::compile(profile).map_err(|e| Error::config("linux.seccomp", e.to_string()))?;
    let mut bytes = Vec::with_capacity(compiled.instructions().len() * 8);
    for i in compiled.instructions() {
        bytes.extend_from_slice(&i.code.to_ne_bytes());
        bytes.push(i.jt);
        bytes.push(i.jf);
        bytes.extend_from_slice(&i.k.to_ne_bytes());
    }
    let mut dangerous_allowed = Vec::new();
    if let Some(arch) = Arch::native() {
        for (name, flag) in DANGEROUS {
            let Some(nr) = arch.syscall_nr(name) else { continue };
            let data = SeccompData {
                nr,
                arch: arch.audit_arch(),
                ip: 0,
                args: [flag, 0, 0, 0, 0, 0],
            };
            let allowed = compiled.simulate(&data).is_ok_and(|o| {
                let action = o.ret & libc::SECCOMP_RET_ACTION_FULL;
                action == libc::SECCOMP_RET_ALLOW || action == libc::SECCOMP_RET_LOG
            });
            if allowed {
                dangerous_allowed.push(if flag != 0 {
                    format!("{name}(CLONE_NEWUSER)")
                } else {
                    name.to_string()
                });
            }
        }
    }
    let syscalls = profile.syscalls().as_deref().unwrap_or_default();
    Ok(Profile {
        default_action: to_name(&profile.default_action()),
        rules: syscalls.len(),
        syscall_names: syscalls.iter().map(|s| s.names().len()).sum(),
        architectures: profile.architectures().iter().flatten().map(to_name).collect(),
        instructions: compiled.instructions().len(),
        digest: format!("sha256:{}", crate::sys::sha256::hex(&bytes)),
        dangerous_allowed,
        uses_notify: compiled.needs_notify_fd(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> Profile {
        analyse(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn names_what_it_lets_through() {
        let allow_all = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#);
        assert!(allow_all.dangerous_allowed.contains(&"mount".to_string()));
        assert!(allow_all
            .dangerous_allowed
            .contains(&"unshare(CLONE_NEWUSER)".to_string()));
        let deny = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount","ptrace"],"action":"SCMP_ACT_ERRNO"},
            {"names":["unshare"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        );
        assert!(!deny.dangerous_allowed.contains(&"mount".to_string()));
        assert!(!deny.dangerous_allowed.contains(&"ptrace".to_string()));
        assert!(!deny.dangerous_allowed.contains(&"unshare(CLONE_NEWUSER)".to_string()));
        assert!(deny.dangerous_allowed.contains(&"bpf".to_string()));
        assert_eq!((deny.rules, deny.syscall_names), (2, 3));
        assert_eq!(deny.default_action, "SCMP_ACT_ALLOW");
        assert_ne!(deny.digest, allow_all.digest);
        assert!(deny.digest.starts_with("sha256:"));
    }
}
