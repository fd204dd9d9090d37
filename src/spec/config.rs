//! Loading and validating a bundle's config.json. Everything the rest of moor relies on is
//! checked here, before anything is created, so bad input fails with the field's name and
//! leaves nothing behind.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A validated bundle: the spec plus the resolved paths moor works with.
pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// config.json is refused above this size: real ones (with a large seccomp profile and many
/// annotations) stay well below 1 MiB; the cap only keeps a hostile bundle from making moor
/// read without end (a link to /dev/zero, a huge sparse file).
pub const MAX_CONFIG_SIZE: u64 = 64 << 20;

pub fn load(bundle_dir: &Path) -> Result<Bundle> {
    let dir = fs::canonicalize(bundle_dir).map_err(|e| Error::path("bundle", bundle_dir, e))?;
    let file = dir.join("config.json");
    let data = read_bounded(&file, "config.json", false)?;
    let spec = parse(&data)?;
    let root = spec.root().as_ref().ok_or_else(|| Error::config("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(Error::config(
            "root.path",
            "missing: it names the container's root filesystem",
        ));
    }
    let rootfs_cfg = dir.join(root.path());
    let rootfs = fs::canonicalize(&rootfs_cfg).map_err(|e| Error::path("root.path", &rootfs_cfg, e))?;
    if !rootfs.is_dir() {
        return Err(Error::config(
            "root.path",
            format!("{} is not a directory", rootfs.display()),
        ));
    }
    if rootfs == Path::new("/") {
        return Err(Error::config(
            "root.path",
            format!("{} resolves to /, the host's own root", rootfs_cfg.display()),
        ));
    }
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Reads a JSON input file (`what` names it in errors): a regular file, or with `pipes` also a
/// pipe or FIFO (`exec -p <(...)`, as runc reads it), at most [`MAX_CONFIG_SIZE`] bytes. Opened
/// without blocking, so a FIFO that is not allowed cannot hang moor; a device is never read.
pub fn read_bounded(file: &Path, what: &'static str, pipes: bool) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::OpenOptionsExt;
    let refuse = |why: String| Error::path(what, file, std::io::Error::other(why));
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(file)
        .map_err(|e| Error::path(what, file, e))?;
    let meta = f.metadata().map_err(|e| Error::path(what, file, e))?;
    let stream = pipes && meta.file_type().is_fifo();
    if !meta.is_file() && !stream {
        return Err(refuse("not a regular file".into()));
    }
    if stream {
        // Wait for the writer like any reader of a pipe.
        nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .map_err(|e| Error::path(what, file, e.into()))?;
    }
    let too_big = || refuse(format!("larger than {} MiB", MAX_CONFIG_SIZE >> 20));
    if meta.len() > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow after the check.
    f.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::path(what, file, e))?;
    if data.len() as u64 > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    Ok(data)
}

/// Parses config.json, naming the JSON path of the first offending field.
pub fn parse(data: &[u8]) -> Result<Spec> {
    let spec: Spec = parse_json(data).map_err(|(field, reason)| {
        Error::config(if field.is_empty() { "config.json".into() } else { field }, reason)
    })?;
    if spec.version().is_empty() {
        return Err(Error::config("ociVersion", "required, but missing"));
    }
    check_semver(spec.version()).map_err(|why| Error::config("ociVersion", format!("{:?} {why}", spec.version())))?;
    Ok(spec)
}

/// Parses a runtime-spec JSON document (config.json, `exec --process`, `update --resources`)
/// into `T`. On error: the JSON path of the first offending field ("" for the document) and
/// what is wrong with it.
pub fn parse_json<T: DeserializeOwned + Serialize>(data: &[u8]) -> std::result::Result<T, (String, String)> {
    let value: Value = serde_json::from_slice(data).map_err(|e| (String::new(), e.to_string()))?;
    check_strings(&value, &mut String::new())?;
    let parsed: T = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let reason = e.into_inner().to_string();
        // serde names a missing field in its message, at its parent's path: name it in the path.
        match reason.strip_prefix("missing field `").and_then(|r| r.strip_suffix('`')) {
            Some(name) if path.is_empty() => (name.to_string(), "required, but missing".into()),
            Some(name) => (format!("{path}.{name}"), "required, but missing".into()),
            None => (path, reason),
        }
    })?;
    // serde takes an array for a struct (its fields in order): `"root": []` would become a
    // root with an empty path. Where moor's model has an object, the input must have one.
    let model = serde_json::to_value(&parsed).map_err(|e| (String::new(), e.to_string()))?;
    check_shape(&value, &model, &mut String::new())?;
    Ok(parsed)
}

/// Every string of the config reaches the kernel or a C API, where a NUL byte silently cuts
/// it short. Annotations are opaque to moor and only passed on as JSON.
fn check_strings(v: &Value, path: &mut String) -> std::result::Result<(), (String, String)> {
    match v {
        Value::String(s) if s.contains('\0') => Err((path.clone(), "contains a NUL byte".into())),
        Value::Array(a) => a.iter().enumerate().try_for_each(|(i, e)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let r = check_strings(e, path);
            path.truncate(len);
            r
        }),
        Value::Object(m) => m.iter().try_for_each(|(k, e)| {
            if path.is_empty() && k == "annotations" {
                return Ok(());
            }
            if k.contains('\0') {
                let dot = if path.is_empty() { "" } else { "." };
                return Err((format!("{path}{dot}{k:?}"), "key contains a NUL byte".into()));
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let r = check_strings(e, path);
            path.truncate(len);
            r
        }),
        _ => Ok(()),
    }
}

/// Walks the input beside moor's re-serialized model of it: an array where the model has an
/// object was taken positionally by serde and is refused.
fn check_shape(input: &Value, model: &Value, path: &mut String) -> std::result::Result<(), (String, String)> {
    match (input, model) {
        (Value::Array(_), Value::Object(_)) => Err((path.clone(), "must be a JSON object, not an array".into())),
        (Value::Object(i), Value::Object(m)) => m.iter().try_for_each(|(k, mv)| {
            let Some(iv) = i.get(k) else { return Ok(()) };
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let r = check_shape(iv, mv, path);
            path.truncate(len);
            r
        }),
        (Value::Array(i), Value::Array(m)) => i.iter().zip(m).enumerate().try_for_each(|(n, (iv, mv))| {
            let len = path.len();
            path.push_str(&format!("[{n}]"));
            let r = check_shape(iv, mv, path);
            path.truncate(len);
            r
        }),
        _ => Ok(()),
    }
}

/// The runtime-spec requires ociVersion in SemVer 2.0.0 form: MAJOR.MINOR.PATCH, numbers
/// without leading zeros, then optional `-pre.release` and `+build` identifiers.
fn check_semver(v: &str) -> std::result::Result<(), &'static str> {
    const NOT: &str = "is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD])";
    let ident_ok = |id: &str| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let number_ok =
        |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    let (rest, build) = match v.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| number_ok(p)) {
        return Err(NOT);
    }
    if let Some(pre) = pre {
        let numeric_leading_zero =
            |id: &str| id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit());
        if !pre.split('.').all(|id| ident_ok(id) && !numeric_leading_zero(id)) {
            return Err(NOT);
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(ident_ok) {
            return Err(NOT);
        }
    }
    Ok(())
}

/// What moor accepts but ignores, to be said once at create.
pub fn warnings(spec: &Spec) -> Vec<String> {
    let mut out: Vec<String> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .map(resource_warnings)
        .unwrap_or_default();
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for (i, ns) in namespaces.iter().enumerate() {
        if namespaces[..i].iter().any(|n| n.typ() == ns.typ()) {
            out.push(format!(
                "linux.namespaces[{i}]: {} given twice; the repeat is ignored",
                ns.typ()
            ));
        }
    }
    out
}

/// Kernel memory limits are ignored, as runc does: the runtime-spec marks them NOT
/// RECOMMENDED, cgroup v1 kernels since 6.x accept and ignore them, cgroup v2 has none.
pub fn resource_warnings(r: &oci_spec::runtime::LinuxResources) -> Vec<String> {
    let mut out = device_access_warnings(r);
    out.extend(kernel_memory_warnings(r));
    out
}

/// runc 1.1 drops the letters of a device rule's access other than r, w and m (they can only
/// narrow the rule); so does moor, saying so.
fn device_access_warnings(r: &oci_spec::runtime::LinuxResources) -> Vec<String> {
    let rules = r.devices().as_deref().unwrap_or_default();
    rules
        .iter()
        .enumerate()
        .filter_map(|(i, d)| {
            let a = d.access().as_deref().unwrap_or_default();
            a.chars().any(|c| !"rwm".contains(c)).then(|| {
                format!("linux.resources.devices[{i}].access {a:?}: only r, w and m have a meaning; the other letters are ignored")
            })
        })
        .collect()
}

fn kernel_memory_warnings(r: &oci_spec::runtime::LinuxResources) -> Vec<String> {
    let Some(m) = r.memory() else { return Vec::new() };
    #[allow(deprecated)]
    let kernel = m.kernel();
    let set: Vec<&str> = [("kernel", kernel.is_some()), ("kernelTCP", m.kernel_tcp().is_some())]
        .iter()
        .filter(|(_, set)| *set)
        .map(|(f, _)| *f)
        .collect();
    if set.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "linux.resources.memory.{} ignored: kernel memory limits are not supported (NOT RECOMMENDED by the runtime-spec)",
        set.join(" and ")
    )]
}

fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::config("process", "missing"))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(Error::config("process.args", "must name the program to run")),
    }
    validate_user(process.user())?;
    if !process.cwd().is_absolute() {
        return Err(Error::config("process.cwd", "must be an absolute path"));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if !e.contains('=') || e.contains('\0') {
                return Err(Error::config(
                    format!("process.env[{i}]"),
                    format!("{e:?} is not KEY=value"),
                ));
            }
        }
    }
    let mut seen = HashSet::new();
    if let Some(rlimits) = process.rlimits() {
        for r in rlimits {
            if !seen.insert(r.typ() as u32) {
                return Err(Error::config("process.rlimits", format!("{} given twice", r.typ())));
            }
            if r.soft() > r.hard() {
                return Err(Error::config(
                    "process.rlimits",
                    format!("{}: soft limit above hard limit", r.typ()),
                ));
            }
        }
    }
    if let Some(adj) = process.oom_score_adj().filter(|a| !(-1000..=1000).contains(a)) {
        return Err(Error::config(
            "process.oomScoreAdj",
            format!("{adj} is out of range -1000 to 1000"),
        ));
    }
    for (field, name) in [("hostname", spec.hostname()), ("domainname", spec.domainname())] {
        if name.as_ref().is_some_and(|n| n.len() > 64) {
            return Err(Error::config(field, "longer than the kernel's limit of 64 bytes"));
        }
    }
    crate::init::rootfs::validate(spec)?;
    check_lsm(spec, process)?;
    check_hooks(spec)?;
    check_seccomp_notify(spec)?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        check_id_mappings(
            &format!("mounts[{i}].uidMappings"),
            m.uid_mappings().as_deref().unwrap_or_default(),
        )?;
        check_id_mappings(
            &format!("mounts[{i}].gidMappings"),
            m.gid_mappings().as_deref().unwrap_or_default(),
        )?;
    }
    let Some(linux) = spec.linux() else { return Ok(()) };
    let mut types = HashSet::new();
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for ns in namespaces {
        if !types.insert(ns.typ()) {
            return Err(Error::config("linux.namespaces", format!("{} given twice", ns.typ())));
        }
    }
    let user_ns = types.contains(&LinuxNamespaceType::User);
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    if maps && !user_ns {
        return Err(Error::config("linux.uidMappings", "mappings need a user namespace"));
    }
    let new_user_ns = namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User && n.path().is_none());
    if new_user_ns {
        for (field, m) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            let m = m.as_deref().unwrap_or_default();
            if m.is_empty() {
                return Err(Error::config(field, "a new user namespace needs mappings"));
            }
            check_id_mappings(field, m)?;
        }
    }
    if let Some(offsets) = linux.time_offsets() {
        if !offsets.is_empty() && !types.contains(&LinuxNamespaceType::Time) {
            return Err(Error::config("linux.timeOffsets", "offsets need a time namespace"));
        }
        for (clock, offset) in offsets {
            if clock != "monotonic" && clock != "boottime" {
                return Err(Error::config("linux.timeOffsets", format!("unknown clock {clock:?}")));
            }
            // The kernel's only answer to a bad offset is EINVAL for the whole write.
            if offset.nanosecs().is_some_and(|n| n >= 1_000_000_000) {
                return Err(Error::config(
                    format!("linux.timeOffsets.{clock}.nanosecs"),
                    "must be below 1000000000",
                ));
            }
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !types.contains(&LinuxNamespaceType::Uts) {
        return Err(Error::config("hostname", "setting a hostname needs a uts namespace"));
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !types.contains(&LinuxNamespaceType::Uts) {
        return Err(Error::config(
            "domainname",
            "setting a domainname needs a uts namespace",
        ));
    }
    check_devices(linux)?;
    check_intel_rdt(linux)?;
    if let Some(sysctl) = linux.sysctl() {
        for key in sysctl.keys() {
            if key.is_empty() || key.contains("..") || key.starts_with('/') || key.contains('\0') {
                return Err(Error::config("linux.sysctl", format!("invalid key {key:?}")));
            }
            check_sysctl_namespace(key, &|t| namespaces.iter().any(|n| n.typ() == t))?;
        }
    }
    Ok(())
}

/// What the kernel takes in a uid_map or gid_map (also for idmapped mounts): at most 340
/// ranges, none empty, none running past the last id.
/// The largest uid or gid moor accepts. Ids above it are refused as runc refuses them; among
/// them is (uid_t)-1, which setresuid/setresgid read as "leave unchanged" and would keep root.
const MAX_ID: u32 = i32::MAX as u32;

/// Refuses ids outside 0-2147483647 in `process.user`, naming the field.
pub(crate) fn validate_user(user: &oci_spec::runtime::User) -> Result<()> {
    let out_of_range = |field: String, id: u32| {
        Error::config(
            field,
            format!("{id} is out of range: uids and gids must be in range 0-{MAX_ID}"),
        )
    };
    if user.uid() > MAX_ID {
        return Err(out_of_range("process.user.uid".into(), user.uid()));
    }
    if user.gid() > MAX_ID {
        return Err(out_of_range("process.user.gid".into(), user.gid()));
    }
    for (i, &gid) in user.additional_gids().iter().flatten().enumerate() {
        if gid > MAX_ID {
            return Err(out_of_range(format!("process.user.additionalGids[{i}]"), gid));
        }
    }
    Ok(())
}

fn check_id_mappings(field: &str, m: &[oci_spec::runtime::LinuxIdMapping]) -> Result<()> {
    if m.len() > 340 {
        return Err(Error::config(field, "more than 340 mappings"));
    }
    for (i, e) in m.iter().enumerate() {
        if e.size() == 0 {
            return Err(Error::config(format!("{field}[{i}].size"), "must not be zero"));
        }
        if e.container_id().checked_add(e.size()).is_none() || e.host_id().checked_add(e.size()).is_none() {
            return Err(Error::config(
                format!("{field}[{i}]"),
                format!("the range runs past id {}", u32::MAX),
            ));
        }
    }
    Ok(())
}

/// The runtime-spec requires hook paths to be absolute and timeouts above zero: checked here
/// so that a bad hook fails before anything exists, not when its turn comes.
/// Init reports "created" to its parent with write(2) once its filter is in, and the parent hands
/// the notify fd to the agent only after that report: a notified write would wait forever (runc
/// refuses it too, in the same words).
fn check_seccomp_notify(spec: &Spec) -> Result<()> {
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    for (i, rule) in seccomp.syscalls().iter().flatten().enumerate() {
        if rule.action() != oci_spec::runtime::LinuxSeccompAction::ScmpActNotify {
            continue;
        }
        if let Some(j) = rule.names().iter().position(|n| n == "write") {
            return Err(Error::config(
                format!("linux.seccomp.syscalls[{i}].names[{j}]"),
                "SCMP_ACT_NOTIFY cannot be used for the write syscall",
            ));
        }
    }
    Ok(())
}

fn check_hooks(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else { return Ok(()) };
    #[allow(deprecated)]
    let lists = [
        ("prestart", hooks.prestart()),
        ("createRuntime", hooks.create_runtime()),
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    for (kind, list) in lists {
        for (i, h) in list.iter().flatten().enumerate() {
            if !h.path().is_absolute() {
                return Err(Error::config(
                    format!("hooks.{kind}[{i}].path"),
                    format!("{:?} is not an absolute path", h.path()),
                ));
            }
            if let Some(t) = h.timeout().filter(|t| *t <= 0) {
                return Err(Error::config(
                    format!("hooks.{kind}[{i}].timeout"),
                    format!("{t} is not above zero"),
                ));
            }
        }
    }
    Ok(())
}

/// Device nodes are made below /dev (a `..` could leave it), with numbers a dev_t holds (a
/// 12-bit major, a 20-bit minor): larger ones would be cut short into another device.
fn check_devices(linux: &oci_spec::runtime::Linux) -> Result<()> {
    use std::path::Component;
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let mut parts = d.path().components();
        let below_dev = parts.next() == Some(Component::RootDir)
            && parts.next() == Some(Component::Normal("dev".as_ref()))
            && parts.clone().next().is_some()
            && parts.all(|c| matches!(c, Component::Normal(_)));
        if !below_dev {
            return Err(Error::config(
                format!("linux.devices[{i}].path"),
                format!("{:?} is not a path below /dev", d.path()),
            ));
        }
        for (name, n, max) in [("major", d.major(), 0xfff), ("minor", d.minor(), 0xf_ffff)] {
            if !(0..=max).contains(&n) {
                return Err(Error::config(
                    format!("linux.devices[{i}].{name}"),
                    format!("{n} is out of range 0-{max}"),
                ));
            }
        }
    }
    Ok(())
}

/// moor does not implement Intel RDT: asking for an allocation or monitoring is an error (as
/// runc's where RDT is off). A bare closID is accepted, as runc does.
fn check_intel_rdt(linux: &oci_spec::runtime::Linux) -> Result<()> {
    let Some(rdt) = linux.intel_rdt() else { return Ok(()) };
    #[allow(deprecated)]
    let asked = rdt.l3_cache_schema().is_some()
        || rdt.mem_bw_schema().is_some()
        || rdt.schemata().as_ref().is_some_and(|s| !s.is_empty())
        || [*rdt.enable_cmt(), *rdt.enable_mbm(), *rdt.enable_monitoring()].contains(&Some(true));
    if asked {
        return Err(Error::config("linux.intelRdt", "Intel RDT is not supported by moor"));
    }
    Ok(())
}

/// A confinement that was asked for and cannot be applied is an error (as runc's), never a
/// silently weaker container.
fn check_lsm(spec: &Spec, process: &oci_spec::runtime::Process) -> Result<()> {
    let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
    if set(process.apparmor_profile()) && !crate::init::process::apparmor_enabled() {
        return Err(Error::config(
            "process.apparmorProfile",
            "AppArmor is not enabled on this host",
        ));
    }
    if set(process.selinux_label()) && !crate::init::process::selinux_enabled() {
        return Err(Error::config(
            "process.selinuxLabel",
            "SELinux is not enabled on this host",
        ));
    }
    if spec.linux().as_ref().is_some_and(|l| set(l.mount_label())) && !crate::init::process::selinux_enabled() {
        return Err(Error::config("linux.mountLabel", "SELinux is not enabled on this host"));
    }
    Ok(())
}

/// A sysctl may only be set when it belongs to a namespace the container has: otherwise the
/// write would change the host (as runc, which refuses the same keys).
fn check_sysctl_namespace(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let field = format!("linux.sysctl.{key}");
    let need = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(Error::config(
            field,
            "not a namespaced sysctl: it would change the host",
        ));
    };
    if !has(need) {
        return Err(Error::config(
            field,
            format!(
                "needs a {} namespace of the container's own",
                crate::spawn::namespaces::ns_name(need)
            ),
        ));
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::check_semver;

    #[test]
    fn semver() {
        for ok in [
            "1.0.0",
            "1.2.1",
            "0.0.0",
            "1.0.2-dev",
            "1.0.0-rc.1",
            "1.0.0-0.3.7",
            "1.0.0+20130313",
            "1.0.0-x-y+b.1",
        ] {
            assert_eq!(check_semver(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.02.0",
            "v1.0.0",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-01",
            "1.0.0-a..b",
            "1.0.0-é",
            " 1.0.0",
        ] {
            assert!(check_semver(bad).is_err(), "{bad}");
        }
    }
}
