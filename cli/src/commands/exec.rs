//! `exec`: a process from --process or from the command line, on the container's own process.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use moor::Runtime;

use super::{enter_sealed, json_error};

#[derive(Args)]
pub struct ExecArgs {
    id: String,
    /// The command and its arguments (unless --process is given).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
    /// A JSON file with the runtime-spec process to run.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Environment variables (KEY=value), repeatable.
    #[arg(short, long)]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// uid[:gid], numeric.
    #[arg(short, long)]
    user: Option<String>,
    /// Supplementary gids, repeatable.
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Add a capability (never to the inheritable set), repeatable.
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long)]
    process_label: Option<String>,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    #[arg(long)]
    ignore_paused: bool,
    /// Join an existing sub-cgroup of the container's: [controller[,controller]:]path,
    /// repeatable (one per controller).
    #[arg(long)]
    cgroup: Vec<String>,
}

pub fn exec(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    enter_sealed(a.preserve_fds)?;
    let process: oci_spec::runtime::Process = match &a.process {
        Some(file) => {
            let data = with_default_user(moor::spec::config::read_bounded(file, "--process", true)?);
            moor::spec::config::parse_json(&data)
                .map_err(|e| json_error(&format!("--process {}", file.display()), e))?
        }
        None => {
            if a.command.is_empty() {
                anyhow::bail!("exec needs a command or --process");
            }
            let mut p = rt.process_template(&a.id)?;
            p.set_args(Some(a.command.clone()));
            p.set_terminal(Some(a.tty));
            let mut env = p.env().clone().unwrap_or_default();
            for kv in &a.env {
                let key = kv.split('=').next().unwrap_or_default();
                env.retain(|e| e.split('=').next() != Some(key));
                env.push(kv.clone());
            }
            p.set_env(Some(env));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            if let Some(user) = &a.user {
                let (uid, gid) = user.split_once(':').unwrap_or((user, "0"));
                let uid = uid
                    .parse()
                    .with_context(|| format!("--user {user}: uid must be numeric"))?;
                let gid = gid
                    .parse()
                    .with_context(|| format!("--user {user}: gid must be numeric"))?;
                let u = p.user_mut();
                u.set_uid(uid);
                u.set_gid(gid);
            }
            if !a.additional_gids.is_empty() {
                p.user_mut().set_additional_gids(Some(a.additional_gids.clone()));
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if let Some(profile) = &a.apparmor {
                p.set_apparmor_profile(Some(profile.clone()));
            }
            if let Some(label) = &a.process_label {
                p.set_selinux_label(Some(label.clone()));
            }
            if !a.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_else(empty_caps);
                for name in &a.cap {
                    let cap: oci_spec::runtime::Capability = serde_json::from_value(serde_json::json!(name))
                        .map_err(|_| anyhow::anyhow!("--cap {name}: unknown capability"))?;
                    // Bounding, effective and permitted; never inheritable (CVE-2022-29162).
                    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.clone().unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    let (b, e, p2) = (add(caps.bounding()), add(caps.effective()), add(caps.permitted()));
                    caps.set_bounding(b);
                    caps.set_effective(e);
                    caps.set_permitted(p2);
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let opts = moor::ExecOptions {
        process: Some(process),
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        detach: a.detach,
        stdio: None,
        extra_fds: super::inherited_fds(a.preserve_fds),
        ignore_paused: a.ignore_paused,
        sub_cgroups: moor_cgroups::SubCgroups::parse(&a.cgroup)?,
    };
    Ok(rt.exec(&a.id, &opts)?)
}

fn empty_caps() -> oci_spec::runtime::LinuxCapabilities {
    serde_json::from_str("{}").unwrap_or_default()
}

/// runc decodes --process into Go structs, where a missing `user` is uid 0, gid 0 (runc's
/// tty.bats execs such a process); the spec's model requires the field.
fn with_default_user(data: Vec<u8>) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(&data) else {
        return data;
    };
    match v.as_object_mut() {
        Some(obj) if !obj.contains_key("user") => {
            obj.insert("user".into(), serde_json::json!({"uid": 0, "gid": 0}));
            serde_json::to_vec(&v).unwrap_or(data)
        }
        _ => data,
    }
}
