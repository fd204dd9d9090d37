//! The `moor` command line: a drop-in for runc's, as containerd's runc shim and podman call it.
//! Every command is a thin call into the moor library.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};

use moor::Runtime;

use commands::checkpoint::CheckpointArgs;
use commands::create::CreateArgs;
use commands::exec::ExecArgs;
use commands::inspect::InspectArgs;
use commands::ps::ListFormat;
use commands::restore::RestoreArgs;
use commands::update::UpdateArgs;
use log::{log, Logger, DEBUG, LOGGER};

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

mod commands;
mod log;

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
    /// The CRIU binary checkpoint and restore run.
    #[arg(long, global = true, default_value = "criu")]
    criu: PathBuf,
    /// Rootless cgroup handling: auto, true or false.
    #[arg(long, default_value = "auto")]
    rootless: moor::RootlessMode,
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
    /// Report what a container (or, with --bundle, a config) really gets: namespaces,
    /// credentials, capabilities, seccomp, mounts, devices, limits; --require checks a
    /// Kubernetes Pod Security Standard.
    Inspect(InspectArgs),
    /// Checkpoint a running container with CRIU.
    Checkpoint(CheckpointArgs),
    /// Restore a container from a checkpoint.
    Restore(RestoreArgs),
    /// Write a default config.json.
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
    },
}

fn main() {
    moor::caller::note_inherited();
    // Go's flag syntax, which runc accepts: containerd's go-runc passes restore's
    // `-no-subreaper` with one dash.
    let args = std::env::args_os().map(|a| {
        if a == "-no-subreaper" {
            "--no-subreaper".into()
        } else {
            a
        }
    });
    let cli = Cli::parse_from(args);
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
    moor::set_log_sink(log::library_log);
    // An exec that fails in moor itself exits 255, as runc's: callers tell it from the exit
    // code of the process that ran.
    let exec = matches!(cli.command, Some(Command::Exec(_)));
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Each cause once: moor's errors leave their source out of their own message.
            let mut msg = format!("{e:#}");
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
        None => moor::default_root()?,
    };
    if cli.debug {
        log("debug", &format!("root {}", root.display()));
    }
    let rt = Runtime::new(&root);
    match command {
        Command::Create { id, args } => commands::create::create(&rt, &id, &args, cli.systemd_cgroup, cli.rootless)?,
        Command::Start { id } => rt.start(&id)?,
        Command::Run { id, args, detach, keep } => {
            return commands::create::run(&rt, &id, &args, detach, keep, cli.systemd_cgroup, cli.rootless);
        }
        Command::State { id } => {
            let state = rt.state(&id)?;
            out!("{}", serde_json::to_string_pretty(&state)?);
        }
        Command::Kill { id, signal, all } => {
            let sig = moor::parse_signal(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete { id, force } => rt.delete(&id, force)?,
        Command::List { format, quiet } => commands::list::list(&rt, &format, quiet)?,
        Command::Pause { id } => rt.pause(&id)?,
        Command::Resume { id } => rt.resume(&id)?,
        Command::Ps { id, format, ps_args } => commands::ps::ps(&rt, &id, format, &ps_args)?,
        Command::Update(args) => commands::update::update(&rt, args)?,
        Command::Events { id, stats, interval } => commands::events::events(&rt, &id, stats, &interval)?,
        Command::Features => out!("{}", serde_json::to_string_pretty(&moor::spec::features())?),
        Command::Exec(args) => return commands::exec::exec(&rt, args),
        Command::Inspect(args) => return commands::inspect::inspect(&rt, &args),
        Command::Checkpoint(args) => commands::checkpoint::checkpoint(&rt, &args, cli.criu)?,
        Command::Restore(args) => {
            return commands::restore::restore(&rt, &args, cli.criu, cli.systemd_cgroup, cli.rootless);
        }
        Command::Spec { bundle, rootless } => commands::spec::spec(&bundle, rootless)?,
    }
    Ok(0)
}
