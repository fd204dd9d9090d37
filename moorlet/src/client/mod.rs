//! The client commands: each sends one request to the agent and prints the answer as kubectl
//! would. `validate` needs no agent; `exec` enters the container itself (see `exec`).

mod exec;
mod print;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::api::{self, Document, LogsRequest, Request};

#[derive(Subcommand)]
pub enum Command {
    /// Create or update objects from YAML/JSON files (FILE, DIR or - for stdin).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Delete the objects of a file, or one pod: `delete pod NAME`.
    Delete {
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// pod
        kind: Option<String>,
        name: Option<String>,
        #[command(flatten)]
        ns: Ns,
    },
    /// `get pods` or `get pod NAME`.
    Get {
        kind: String,
        name: Option<String>,
        #[arg(short = 'o', long = "output")]
        output: Option<String>,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[command(flatten)]
        ns: Ns,
    },
    /// `describe pod NAME`: the pod, its containers, conditions and events.
    Describe {
        kind: String,
        name: String,
        #[command(flatten)]
        ns: Ns,
    },
    /// A container's log.
    Logs {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'f', long)]
        follow: bool,
        #[arg(short = 'p', long)]
        previous: bool,
        #[arg(long)]
        timestamps: bool,
        #[command(flatten)]
        ns: Ns,
    },
    /// Run a command in a container: `exec POD [-c C] [-it] -- CMD...`.
    Exec {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        #[arg(short = 'i', long)]
        stdin: bool,
        #[arg(short = 't', long)]
        tty: bool,
        #[command(flatten)]
        ns: Ns,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Events, oldest first; -w keeps watching.
    Events {
        #[arg(short = 'w', long)]
        watch: bool,
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[command(flatten)]
        ns: Ns,
    },
    /// The image store: import, pull, ls, rm, prune.
    #[command(subcommand)]
    Images(Images),
    /// Check manifests and list every field moorlet does not honour; --strict fails on any.
    Validate {
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Args, Clone)]
pub struct Ns {
    #[arg(short = 'n', long = "namespace", default_value = "default")]
    pub namespace: String,
}

#[derive(Subcommand)]
pub enum Images {
    /// An OCI layout directory, an oci-archive or a docker-archive tar.
    Import {
        path: PathBuf,
    },
    Pull {
        reference: String,
    },
    #[command(alias = "list")]
    Ls,
    #[command(alias = "remove")]
    Rm {
        reference: String,
    },
    Prune,
}

/// The documents of FILE, DIR (its .yaml, .yml and .json files, sorted) or - (stdin).
fn documents(files: &[String]) -> Result<Vec<Document>> {
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("cannot read stdin")?;
            out.push(Document {
                source: "stdin".into(),
                text,
            });
            continue;
        }
        let path = Path::new(f);
        let mut paths = vec![path.to_path_buf()];
        if path.is_dir() {
            paths = std::fs::read_dir(path)
                .with_context(|| format!("cannot read {f}"))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml" || x == "json"))
                .collect();
            paths.sort();
        }
        for p in paths {
            let text = std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
            out.push(Document {
                source: p.display().to_string(),
                text,
            });
        }
    }
    Ok(out)
}

fn print_lines(v: &serde_json::Value) {
    for l in v.as_array().into_iter().flatten() {
        println!("{}", l.as_str().unwrap_or_default());
    }
}

pub fn run(socket: &Path, cmd: Command) -> Result<()> {
    let call = |req: &Request| api::call(socket, req, |l| println!("{l}"));
    match cmd {
        Command::Apply { files } => print_lines(&call(&Request::Apply {
            documents: documents(&files)?,
        })?),
        Command::Delete { files, kind, name, ns } => {
            if !files.is_empty() {
                print_lines(&call(&Request::Delete {
                    documents: documents(&files)?,
                })?);
            } else {
                let (Some(kind), Some(name)) = (kind, name) else {
                    anyhow::bail!("delete needs -f FILE or `pod NAME`");
                };
                anyhow::ensure!(
                    matches!(kind.as_str(), "pod" | "pods" | "po"),
                    "delete: only pods by name"
                );
                print_lines(&call(&Request::DeletePod {
                    namespace: ns.namespace,
                    name,
                })?);
            }
        }
        Command::Get {
            kind,
            name,
            output,
            all_namespaces,
            ns,
        } => {
            anyhow::ensure!(matches!(kind.as_str(), "pod" | "pods" | "po"), "get: only pods");
            let data = match &name {
                Some(n) => call(&Request::GetPod {
                    namespace: ns.namespace,
                    name: n.clone(),
                })?,
                None => call(&Request::GetPods {
                    namespace: (!all_namespaces).then_some(ns.namespace),
                })?,
            };
            print::pods(&data, output.as_deref(), all_namespaces)?;
        }
        Command::Describe { kind, name, ns } => {
            anyhow::ensure!(matches!(kind.as_str(), "pod" | "pods" | "po"), "describe: only pods");
            print::describe(&call(&Request::Describe {
                namespace: ns.namespace,
                name,
            })?);
        }
        Command::Logs {
            pod,
            container,
            follow,
            previous,
            timestamps,
            ns,
        } => {
            call(&Request::Logs(LogsRequest {
                namespace: ns.namespace,
                name: pod,
                container,
                follow,
                previous,
                timestamps,
            }))?;
        }
        Command::Exec {
            pod,
            container,
            stdin,
            tty,
            ns,
            command,
        } => exec::run(socket, &ns.namespace, &pod, container, stdin, tty, command)?,
        Command::Events {
            watch,
            all_namespaces,
            ns,
        } => {
            println!("{:<32} {:<8} {:<22} {:<20} MESSAGE", "TIME", "TYPE", "REASON", "OBJECT");
            let namespace = (!all_namespaces).then_some(ns.namespace);
            api::call(socket, &Request::Events { watch, namespace }, print::event)?;
        }
        Command::Images(i) => images(socket, i)?,
        Command::Validate { files, strict } => validate(&files, strict)?,
    }
    Ok(())
}

fn images(socket: &Path, cmd: Images) -> Result<()> {
    let call = |req: &Request| api::call(socket, req, |l| println!("{l}"));
    let data = match cmd {
        Images::Import { path } => {
            let path = std::fs::canonicalize(&path).with_context(|| format!("cannot find {}", path.display()))?;
            call(&Request::ImagesImport {
                path: path.display().to_string(),
            })?
        }
        Images::Pull { reference } => call(&Request::ImagesPull { reference })?,
        Images::Ls => call(&Request::ImagesList)?,
        Images::Rm { reference } => call(&Request::ImagesRemove { reference })?,
        Images::Prune => call(&Request::ImagesPrune)?,
    };
    print::images(&data);
    Ok(())
}

fn validate(files: &[String], strict: bool) -> Result<()> {
    let mut unhonoured = 0;
    for doc in documents(files)? {
        let objects = crate::manifest::parse(&doc.text).with_context(|| doc.source.clone())?;
        for o in &objects {
            for field in crate::manifest::unhonoured_fields(o) {
                println!("{}: {field}: not honoured by moorlet", doc.source);
                unhonoured += 1;
            }
        }
    }
    if unhonoured == 0 {
        println!("valid: every field is honoured");
    }
    anyhow::ensure!(
        !strict || unhonoured == 0,
        "{unhonoured} field(s) not honoured (--strict)"
    );
    Ok(())
}
