//! The `moorlet` binary: the agent, its hidden per-pod monitor, and the client commands.

use clap::{Parser, Subcommand};
use moorlet::client;

#[derive(Parser)]
#[command(name = "moorlet", version, about = "A single-node pod agent on moor")]
struct Cli {
    /// The agent's socket.
    #[arg(long, global = true, env = "MOORLET_SOCKET", default_value = moorlet::DEFAULT_SOCKET)]
    socket: std::path::PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (foreground; logs to stderr).
    Agent(moorlet::agent::Args),
    #[command(hide = true)]
    Monitor(moorlet::monitor::Args),
    #[command(flatten)]
    Client(client::Command),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Agent(mut args) => {
            args.socket = cli.socket;
            moorlet::agent::main(args)
        }
        Command::Monitor(args) => moorlet::monitor::main(args),
        Command::Client(cmd) => {
            // A client whose output goes to a closed pipe (`| head`) ends quietly, as CLIs do.
            // SAFETY: SIG_DFL runs no handler; the client is single-threaded here.
            let _ = unsafe {
                nix::sys::signal::signal(nix::sys::signal::Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl)
            };
            client::run(&cli.socket, cmd)
        }
    };
    if let Err(e) = result {
        eprintln!("moorlet: {e:#}");
        std::process::exit(1);
    }
}
