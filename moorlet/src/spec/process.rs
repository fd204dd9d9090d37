//! The process: arguments (Kubernetes' command/args against the image's Entrypoint/Cmd), the
//! working directory and the final environment.

use super::env::PodEnv;
use super::user::User;
use super::{Ctx, SpecError};
use serde_json::{json, Value};

/// The runtime's PATH when neither the image nor the pod sets one (containerd's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Kubernetes: `command` replaces the Entrypoint and drops the Cmd; `args` alone replaces the
/// Cmd; both are `$(VAR)`-expanded against the pod-defined environment.
pub(crate) fn args(cx: &Ctx, env: &PodEnv) -> Result<Vec<String>, SpecError> {
    let image = cx.input.image;
    let command = cx.container.command.as_deref().filter(|c| !c.is_empty());
    let args = cx.container.args.as_deref().filter(|a| !a.is_empty());
    let expand = |list: &[String]| list.iter().map(|s| env.expand(s)).collect::<Vec<_>>();
    let mut argv = match (command, args) {
        (Some(c), Some(a)) => [expand(c), expand(a)].concat(),
        (Some(c), None) => expand(c),
        (None, Some(a)) => [image.entrypoint.clone(), expand(a)].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if argv.is_empty() {
        return Err(SpecError::invalid(
            cx.field("command"),
            "no command specified (neither the pod nor the image has one)",
        ));
    }
    if let Some(bad) = argv.iter().position(|a| a.contains('\0')) {
        let field = if command.is_some_and(|c| bad < c.len()) {
            "command"
        } else {
            "args"
        };
        return Err(SpecError::invalid(cx.field(field), "an argument holds a NUL byte"));
    }
    argv.shrink_to_fit();
    Ok(argv)
}

/// workingDir, else the image's, else `/`.
fn cwd(cx: &Ctx) -> Result<String, SpecError> {
    let (dir, field) = match cx.container.working_dir.as_deref().filter(|d| !d.is_empty()) {
        Some(d) => (d.to_string(), cx.field("workingDir")),
        None => match cx.input.image.working_dir.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => (d.to_string(), "image config WorkingDir".to_string()),
            None => ("/".to_string(), String::new()),
        },
    };
    if !dir.starts_with('/') || dir.contains('\0') {
        return Err(SpecError::invalid(field, format!("{dir:?} is not an absolute path")));
    }
    Ok(dir)
}

/// containerd's order: PATH default, HOSTNAME, the image's Env, the pod's variables; a later
/// definition of a name replaces the earlier one in place.
pub(crate) fn environment(cx: &Ctx, env: &PodEnv, hostname: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = vec![DEFAULT_PATH.to_string()];
    let mut set = |entry: String| {
        let name = entry.split('=').next().unwrap_or("").to_string();
        match out.iter_mut().find(|e| e.split('=').next() == Some(name.as_str())) {
            Some(slot) => *slot = entry,
            None => out.push(entry),
        }
    };
    let host = match hostname {
        Some(h) => Some(h.to_string()),
        None => nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned()),
    };
    if let Some(h) = host {
        set(format!("HOSTNAME={h}"));
    }
    for e in &cx.input.image.env {
        // An image entry without `=` or with NUL cannot be passed to execve: left out.
        if e.contains('=') && !e.starts_with('=') && !e.contains('\0') {
            set(e.clone());
        }
    }
    for (k, v) in &env.vars {
        set(format!("{k}={v}"));
    }
    out
}

pub(crate) fn process(cx: &Ctx, env: &PodEnv, hostname: Option<&str>, user: &User) -> Result<Value, SpecError> {
    Ok(json!({
        "terminal": false,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args(cx, env)?,
        "env": environment(cx, env, hostname),
        "cwd": cwd(cx)?,
    }))
}
