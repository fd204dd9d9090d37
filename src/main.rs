//! The `moor` command line: a drop-in for runc's, as containerd's runc shim and podman call it.
//! Every command is a thin call into the moor library.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

use moor::{CreateOptions, Runtime};

#[derive(Parser)]
#[command(
    name = "moor",
    about = "A low-level OCI container runtime",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state [default: /run/moor, rootless: $XDG_RUNTIME_DIR/moor].
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Write log messages to this file instead of stderr.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug messages.
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd (cgroupsPath as slice:prefix:name).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Rootless cgroup handling: auto, true or false.
    #[arg(long, default_value = "auto")]
    rootless: moor::rootless::Mode,
    /// Print the version.
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone)]
struct CreateArgs {
    /// Path to the bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is set.
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// File to write the init process's pid to.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for rootfs on ramfs).
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, ...) to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
}

impl CreateArgs {
    fn options(&self, systemd_cgroup: bool, rootless: moor::rootless::Mode) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            stdio: None,
            extra_fds: inherited_fds(moor::fds::listen_fds() + self.preserve_fds),
            listen_fds: moor::fds::listen_fds(),
            systemd_cgroup,
            rootless,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a container from a bundle.
    Create {
        id: String,
        #[command(flatten)]
        args: CreateArgs,
    },
    /// Start a created container.
    Start { id: String },
    /// Create, start, wait for and delete a container.
    Run {
        id: String,
        #[command(flatten)]
        args: CreateArgs,
        /// Return after starting instead of waiting.
        #[arg(short, long)]
        detach: bool,
        /// Keep the stopped container (state and cgroup) after it exits, until `delete`.
        #[arg(long)]
        keep: bool,
    },
    /// Print a container's state as JSON.
    State { id: String },
    /// Send a signal to a container's init (default SIGTERM).
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process of the container.
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container.
    Delete {
        id: String,
        /// Kill and delete a running container.
        #[arg(short, long)]
        force: bool,
    },
    /// List containers.
    List {
        /// table or json (checked after --quiet, as runc does).
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Print the features this build and host support (runtime-spec features.md).
    Features,
    /// Freeze every process of a container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// List the processes of a container.
    Ps {
        id: String,
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Arguments for ps(1) in table format (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Change a running container's resource limits.
    Update(UpdateArgs),
    /// Print container statistics (--stats once, else a stream with OOM events).
    Events {
        id: String,
        #[arg(long)]
        stats: bool,
        /// Seconds between statistics (e.g. 5 or 5s).
        #[arg(long, default_value = "5s")]
        interval: String,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
}

#[derive(Args)]
struct ExecArgs {
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

#[derive(Args)]
struct UpdateArgs {
    id: String,
    /// A JSON file (or - for stdin) with runtime-spec linux.resources.
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long, allow_negative_numbers = true)]
    memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    memory_swap: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    memory_reservation: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    kernel_memory: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    kernel_memory_tcp: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_shares: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_quota: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_period: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_burst: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_period: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_runtime: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpu_idle: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpuset_cpus: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    cpuset_mems: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    pids_limit: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    blkio_weight: Option<String>,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum ListFormat {
    Table,
    Json,
}

/// Prints to stdout; a closed stdout (output piped into `head`) ends moor quietly instead of
/// panicking. SIGPIPE itself stays ignored so hooks that do not read their stdin cannot kill us.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if writeln!(stdout, $($arg)*).and_then(|_| stdout.flush()).is_err() {
            std::process::exit(0);
        }
    }};
}

struct Logger {
    file: Option<std::fs::File>,
    json: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

fn log(level: &str, msg: &str) {
    let Some(logger) = LOGGER.get() else {
        eprintln!("moor: {level}: {msg}");
        return;
    };
    let time = moor::time::now_rfc3339();
    let line = if logger.json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level={level} msg={msg:?}")
    };
    match &logger.file {
        Some(f) => {
            let mut w: &std::fs::File = f;
            let _ = writeln!(w, "{line}");
        }
        None => eprintln!("{line}"),
    }
}

static DEBUG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn library_log(level: moor::Level, msg: &str) {
    match level {
        moor::Level::Warning => log("warning", msg),
        moor::Level::Debug if DEBUG.load(std::sync::atomic::Ordering::Relaxed) => log("debug", msg),
        moor::Level::Debug => {}
    }
}

fn main() {
    moor::fds::note_inherited();
    let cli = Cli::parse();
    let file = cli
        .log
        .as_ref()
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    let has_file = file.is_some();
    let _ = LOGGER.set(Logger {
        file,
        json: cli.log_format == LogFormat::Json,
    });
    DEBUG.store(cli.debug, std::sync::atomic::Ordering::Relaxed);
    moor::set_log_sink(library_log);
    // An exec that fails in moor itself exits 255, as runc's: callers tell it from the exit
    // code of the process that ran.
    let exec = matches!(cli.command, Some(Command::Exec(_)));
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let mut msg = error_text(&e);
            if exec {
                msg = format!("exec failed: {msg}");
            }
            log("error", &msg);
            if has_file {
                eprintln!("moor: {msg}");
            }
            std::process::exit(if exec { 255 } else { 1 });
        }
    }
}

/// The error and its causes, each said once: library errors already include their OS error.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn run(cli: Cli) -> Result<i32> {
    if cli.version {
        out!("moor version {}", env!("CARGO_PKG_VERSION"));
        out!("commit: {}", env!("MOOR_COMMIT"));
        out!("spec: {}", moor::OCI_VERSION);
        return Ok(0);
    }
    let Some(command) = cli.command else {
        anyhow::bail!("no command given: see moor --help");
    };
    let root = match cli.root {
        Some(root) => root,
        None => moor::rootless::default_root()?,
    };
    if cli.debug {
        log("debug", &format!("root {}", root.display()));
    }
    let rt = Runtime::new(&root);
    match command {
        Command::Create { id, args } => {
            enter_sealed(args.preserve_fds)?;
            rt.create(&id, &args.options(cli.systemd_cgroup, cli.rootless))
                .with_context(|| format!("create {id}"))?;
        }
        Command::Start { id } => rt.start(&id)?,
        Command::Run { id, args, detach, keep } => {
            enter_sealed(args.preserve_fds)?;
            if detach {
                rt.create(&id, &args.options(cli.systemd_cgroup, cli.rootless))
                    .with_context(|| format!("create {id}"))?;
                if let Err(e) = rt.start(&id) {
                    let _ = rt.delete(&id, true);
                    return Err(e.into());
                }
            } else {
                return Ok(rt.run(&id, &args.options(cli.systemd_cgroup, cli.rootless), keep)?);
            }
        }
        Command::State { id } => {
            let state = rt.state(&id)?;
            out!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill { id, signal, all } => {
            let sig = moor::signals::parse(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete { id, force } => rt.delete(&id, force)?,
        Command::List { format, quiet } => list(&rt, &format, quiet)?,
        Command::Pause { id } => rt.pause(&id)?,
        Command::Resume { id } => rt.resume(&id)?,
        Command::Ps { id, format, ps_args } => ps(&rt, &id, format, &ps_args)?,
        Command::Update(args) => update(&rt, args)?,
        Command::Events { id, stats, interval } => events(&rt, &id, stats, &interval)?,
        Command::Features => out!("{}", serde_json::to_string_pretty(&moor::features::features())?),
        Command::Exec(args) => {
            enter_sealed(args.preserve_fds)?;
            return exec(&rt, args);
        }
        Command::Spec { bundle, rootless } => {
            let path = bundle.join("config.json");
            if path.exists() {
                anyhow::bail!("File {} exists. Remove it first", path.display());
            }
            let spec = moor::spec::default_spec(rootless);
            std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
                .with_context(|| format!("write {}", path.display()))?;
        }
    }
    Ok(0)
}

/// Commands that put a process into a container first re-execute moor from a sealed copy. The
/// caller's fds are sealed only in that copy, so it can still read `exec -p /dev/fd/N`.
fn enter_sealed(preserve_fds: u32) -> Result<()> {
    moor::exe::ensure_protected().context("protect the moor binary")?;
    moor::fds::seal_inherited(preserve_fds)?;
    Ok(())
}

/// The fds 3..3+n this process was given to pass on (socket activation, --preserve-fds), checked
/// open by `enter_sealed`; taken once, for the one operation that hands them to the container.
fn inherited_fds(n: u32) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    (3..3 + n as i32)
        // SAFETY: inherited fds that nothing else in this process owns or uses.
        .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
        .collect()
}

/// The user name of `uid`, else `#uid` (as runc's list shows an unknown owner).
fn owner_name(uid: u32) -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let containers = rt.list()?;
    if quiet {
        for (s, _) in &containers {
            out!("{}", s.id);
        }
        return Ok(());
    }
    let states: Vec<_> = containers
        .iter()
        .map(|(s, status)| {
            use std::os::unix::fs::MetadataExt;
            let mut st = s.oci_state(*status);
            st.owner = std::fs::metadata(rt.root.join(&s.id))
                .map(|m| owner_name(m.uid()))
                .unwrap_or_default();
            st
        })
        .collect();
    match format {
        "json" if states.is_empty() => out!("null"),
        "json" => out!("{}", serde_json::to_string(&states)?),
        "table" => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
            for s in &states {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    s.owner.clone(),
                ]);
            }
            let mut stdout = std::io::stdout().lock();
            if stdout
                .write_all(tabwrite(&rows).as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                std::process::exit(0);
            }
        }
        _ => anyhow::bail!("invalid format option {format:?}: table or json"),
    }
    Ok(())
}

/// Aligns columns as runc's Go tabwriter (minwidth 12, padding 3, spaces): each cell but the
/// last of a row is padded to its column's widest cell plus 3, at least 12 characters.
fn tabwrite<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count() + 3).max(12);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < N {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count()));
            }
        }
        out.push('\n');
    }
    out
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<i32> {
    let process: oci_spec::runtime::Process = match &a.process {
        Some(file) => {
            let data = moor::config::read_bounded(file, "--process", true)?;
            moor::config::parse_json(&data).map_err(|e| json_error(&format!("--process {}", file.display()), e))?
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
    let opts = moor::exec::ExecOptions {
        process: Some(process),
        console_socket: a.console_socket,
        pid_file: a.pid_file,
        detach: a.detach,
        stdio: None,
        extra_fds: inherited_fds(a.preserve_fds),
        ignore_paused: a.ignore_paused,
        sub_cgroups: moor_cgroups::SubCgroups::parse(&a.cgroup)?,
    };
    Ok(rt.exec(&a.id, &opts)?)
}

/// An input document's error, with the offending field when it is inside.
fn json_error(input: &str, (field, why): (String, String)) -> anyhow::Error {
    if field.is_empty() {
        anyhow::anyhow!("{input}: {why}")
    } else {
        anyhow::anyhow!("{input}: {field}: {why}")
    }
}

fn empty_caps() -> oci_spec::runtime::LinuxCapabilities {
    serde_json::from_str("{}").unwrap_or_default()
}

fn ps(rt: &Runtime, id: &str, format: ListFormat, args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    if format == ListFormat::Json {
        out!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        anyhow::bail!("ps {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|c| c == "PID")
        .context("ps output has no PID column")?;
    out!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out!("{line}");
        }
    }
    Ok(())
}

fn update(rt: &Runtime, a: UpdateArgs) -> Result<()> {
    let resources: oci_spec::runtime::LinuxResources = match &a.resources {
        Some(path) => {
            let data = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).context("read resources from stdin")?;
                v
            } else {
                moor::config::read_bounded(path, "--resources", true)?
            };
            moor::config::parse_json(&data).map_err(|e| json_error("--resources", e))?
        }
        None => {
            let flags = moor_cgroups::UpdateFlags {
                memory: a.memory,
                memory_swap: a.memory_swap,
                memory_reservation: a.memory_reservation,
                kernel_memory: a.kernel_memory,
                kernel_memory_tcp: a.kernel_memory_tcp,
                cpu_shares: a.cpu_shares,
                cpu_quota: a.cpu_quota,
                cpu_period: a.cpu_period,
                cpu_burst: a.cpu_burst,
                cpu_rt_period: a.cpu_rt_period,
                cpu_rt_runtime: a.cpu_rt_runtime,
                cpu_idle: a.cpu_idle,
                cpuset_cpus: a.cpuset_cpus,
                cpuset_mems: a.cpuset_mems,
                pids_limit: a.pids_limit,
                blkio_weight: a.blkio_weight,
            };
            moor_cgroups::resources_from_update_flags(&flags)?
        }
    };
    for w in moor::config::resource_warnings(&resources) {
        log("warning", &w);
    }
    rt.update(&a.id, &resources)?;
    Ok(())
}

/// One event in runc's key order (`type`, `id`, then `data`), which callers match on as text.
fn event_line(event: &serde_json::Value) -> Result<String> {
    let mut line = String::from("{");
    for key in ["type", "id", "data"] {
        if let Some(v) = event.get(key) {
            if line.len() > 1 {
                line.push(',');
            }
            line.push_str(&format!(
                "{}:{}",
                serde_json::to_string(key)?,
                serde_json::to_string(v)?
            ));
        }
    }
    line.push('}');
    Ok(line)
}

fn events(rt: &Runtime, id: &str, once: bool, interval: &str) -> Result<()> {
    if once {
        out!("{}", event_line(&rt.stats(id)?)?);
        return Ok(());
    }
    let secs: f64 = interval
        .trim_end_matches('s')
        .parse()
        .with_context(|| format!("--interval {interval}: expected seconds like 5s"))?;
    let period = std::time::Duration::from_secs_f64(secs.max(0.01));
    let mut ooms = rt.oom_count(id).unwrap_or(0);
    let mut next_stats = std::time::Instant::now();
    loop {
        let (_, status) = match rt.load(id) {
            Ok(s) => s,
            Err(_) => return Ok(()),
        };
        if status == moor::Status::Stopped {
            return Ok(());
        }
        let now_ooms = rt.oom_count(id).unwrap_or(ooms);
        if now_ooms > ooms {
            out!("{}", event_line(&serde_json::json!({"type": "oom", "id": id}))?);
            ooms = now_ooms;
        }
        if std::time::Instant::now() >= next_stats {
            if let Ok(s) = rt.stats(id) {
                out!("{}", event_line(&s)?);
            }
            next_stats += period;
        }
        std::thread::sleep(period.min(std::time::Duration::from_millis(200)));
    }
}
