//! cri-client: a small crictl-like client of the CRI API (runtime.v1 over gRPC on a unix socket),
//! for integration/shim/cri.sh. Debian ships no cri-tools, so the CRI tests drive containerd's CRI
//! plugin with this. Test-only: it prints what a test compares and exits with the status crictl
//! would (an exec's exit code, 1 on an RPC error).

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerFilter, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ExecRequest, ExecSyncRequest, ImageSpec, KeyValue, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, ListContainersRequest,
    ListPodSandboxRequest, NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxState,
    PodSandboxStatusRequest, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser)]
#[command(name = "cri-client", about = "crictl-like CRI client for moor's tests")]
struct Cli {
    /// containerd's CRI socket (a path)
    #[arg(short = 'r', long = "runtime-endpoint")]
    endpoint: String,
    /// deadline of each RPC, in seconds
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

/// The pod's configuration: `runp` sends it, and `create` sends it again (CRI wants it there too).
#[derive(Args, Clone)]
struct Pod {
    #[arg(long = "pod-name", default_value = "pod")]
    name: String,
    #[arg(long = "pod-namespace", default_value = "moor-test")]
    namespace: String,
    #[arg(long = "pod-uid", default_value = "uid-0")]
    uid: String,
    /// where container logs go (log_path of each container is relative to it)
    #[arg(long = "log-dir", default_value = "")]
    log_dir: String,
    /// absolute cgroup parent of the pod
    #[arg(long = "cgroup-parent", default_value = "")]
    cgroup_parent: String,
    /// the host's network namespace instead of a CNI-configured one
    #[arg(long = "host-network")]
    host_network: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// the runtime's name and version
    Version,
    /// run a pod sandbox; prints its id
    Runp {
        #[command(flatten)]
        pod: Pod,
        /// CRI runtime handler (containerd's runtimes.<handler>)
        #[arg(long = "runtime", default_value = "")]
        handler: String,
    },
    /// create a container in a pod; prints its id
    Create {
        pod_id: String,
        #[command(flatten)]
        pod: Pod,
        #[arg(long = "name")]
        container_name: String,
        #[arg(long)]
        image: String,
        /// relative to the pod's --log-dir
        #[arg(long = "log-path", default_value = "")]
        log_path: String,
        #[arg(long = "env")]
        env: Vec<String>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    Start {
        id: String,
    },
    /// exec through the streaming server (websocket), or with -s through ExecSync
    Exec {
        #[arg(short = 's', long = "sync")]
        sync: bool,
        /// ExecSync's timeout in seconds (0: none)
        #[arg(long = "exec-timeout", default_value_t = 0)]
        exec_timeout: i64,
        id: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// the container's log, decoded from the CRI log format
    Logs {
        id: String,
    },
    Stop {
        #[arg(short = 't', long = "timeout", default_value_t = 10)]
        grace: i64,
        id: String,
    },
    Rm {
        id: String,
    },
    Stopp {
        id: String,
    },
    Rmp {
        id: String,
    },
    /// containers: "ID POD NAME STATE"
    Ps {
        #[arg(short = 'a', long = "all")]
        all: bool,
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
        #[arg(long = "pod", default_value = "")]
        pod: String,
    },
    /// pods: "ID NAME STATE HANDLER"
    Pods {
        #[arg(short = 'q', long = "quiet")]
        quiet: bool,
    },
    /// a pod's status as JSON
    Inspectp {
        id: String,
    },
    /// a container's status as JSON
    Inspect {
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cri-client: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cri-client: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn connect(path: String, timeout: u64) -> Result<RuntimeServiceClient<Channel>> {
    // The URI is a placeholder: the connector dials the unix socket.
    let channel = Endpoint::try_from("http://[::]:0")?
        .timeout(Duration::from_secs(timeout))
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                let s = tokio::net::UnixStream::connect(path).await?;
                Ok::<_, std::io::Error>(TokioIo::new(s))
            }
        }))
        .await
        .context("connecting to the CRI socket")?;
    Ok(RuntimeServiceClient::new(channel))
}

fn pod_config(pod: &Pod) -> PodSandboxConfig {
    let network = if pod.host_network {
        NamespaceMode::Node
    } else {
        NamespaceMode::Pod
    };
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            attempt: 0,
        }),
        hostname: pod.name.clone(),
        log_directory: pod.log_dir.clone(),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: pod.cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: network.into(),
                    pid: NamespaceMode::Container.into(),
                    ipc: NamespaceMode::Pod.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn run(cli: Cli) -> Result<u8> {
    let mut c = connect(cli.endpoint, cli.timeout).await?;
    match cli.cmd {
        Cmd::Version => {
            let v = c.version(VersionRequest::default()).await?.into_inner();
            println!(
                "{} {} (CRI {})",
                v.runtime_name, v.runtime_version, v.runtime_api_version
            );
        }
        Cmd::Runp { pod, handler } => {
            let r = c
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(pod_config(&pod)),
                    runtime_handler: handler,
                })
                .await?;
            println!("{}", r.into_inner().pod_sandbox_id);
        }
        Cmd::Create {
            pod_id,
            pod,
            container_name,
            image,
            log_path,
            env,
            command,
        } => {
            let envs = env
                .iter()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    KeyValue {
                        key: k.to_string(),
                        value: v.to_string(),
                    }
                })
                .collect();
            let config = ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: container_name,
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image,
                    ..Default::default()
                }),
                command,
                envs,
                log_path,
                // As kubelet does for a pod without shareProcessNamespace: the container's own
                // pid namespace, the pod's network and ipc.
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: pod_config(&pod)
                            .linux
                            .and_then(|l| l.security_context)
                            .and_then(|s| s.namespace_options),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let r = c
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod_id,
                    config: Some(config),
                    sandbox_config: Some(pod_config(&pod)),
                })
                .await?;
            println!("{}", r.into_inner().container_id);
        }
        Cmd::Start { id } => {
            c.start_container(StartContainerRequest { container_id: id }).await?;
        }
        Cmd::Exec {
            sync: true,
            exec_timeout,
            id,
            command,
        } => {
            let r = c
                .exec_sync(ExecSyncRequest {
                    container_id: id,
                    cmd: command,
                    timeout: exec_timeout,
                })
                .await?
                .into_inner();
            std::io::stdout().write_all(&r.stdout)?;
            std::io::stderr().write_all(&r.stderr)?;
            return Ok(exit_byte(r.exit_code));
        }
        Cmd::Exec {
            sync: false,
            id,
            command,
            ..
        } => {
            let url = c
                .exec(ExecRequest {
                    container_id: id,
                    cmd: command,
                    tty: false,
                    stdin: false,
                    stdout: true,
                    stderr: true,
                })
                .await?
                .into_inner()
                .url;
            return stream_exec(&url);
        }
        Cmd::Logs { id } => {
            let st = c
                .container_status(ContainerStatusRequest {
                    container_id: id.clone(),
                    verbose: false,
                })
                .await?
                .into_inner()
                .status
                .ok_or_else(|| anyhow!("no status for container {id}"))?;
            print_cri_log(&st.log_path)?;
        }
        Cmd::Stop { grace, id } => {
            c.stop_container(StopContainerRequest {
                container_id: id,
                timeout: grace,
            })
            .await?;
        }
        Cmd::Rm { id } => {
            c.remove_container(RemoveContainerRequest { container_id: id }).await?;
        }
        Cmd::Stopp { id } => {
            c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id }).await?;
        }
        Cmd::Rmp { id } => {
            c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await?;
        }
        Cmd::Ps { all, quiet, pod } => {
            let filter = ContainerFilter {
                pod_sandbox_id: pod,
                state: (!all).then_some(k8s_cri::v1::ContainerStateValue {
                    state: ContainerState::ContainerRunning.into(),
                }),
                ..Default::default()
            };
            let r = c
                .list_containers(ListContainersRequest { filter: Some(filter) })
                .await?
                .into_inner();
            for ct in r.containers {
                if quiet {
                    println!("{}", ct.id);
                } else {
                    let state = ContainerState::try_from(ct.state)
                        .map(|s| s.as_str_name())
                        .unwrap_or("?");
                    let name = ct.metadata.map(|m| m.name).unwrap_or_default();
                    println!("{} {} {} {}", ct.id, ct.pod_sandbox_id, name, state);
                }
            }
        }
        Cmd::Pods { quiet } => {
            let r = c.list_pod_sandbox(ListPodSandboxRequest::default()).await?.into_inner();
            for p in r.items {
                if quiet {
                    println!("{}", p.id);
                } else {
                    let state = PodSandboxState::try_from(p.state)
                        .map(|s| s.as_str_name())
                        .unwrap_or("?");
                    let name = p.metadata.map(|m| m.name).unwrap_or_default();
                    println!("{} {} {} {}", p.id, name, state, p.runtime_handler);
                }
            }
        }
        Cmd::Inspectp { id } => {
            let r = c
                .pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: id,
                    verbose: false,
                })
                .await?
                .into_inner();
            println!("{}", serde_json::to_string(&r.status)?);
        }
        Cmd::Inspect { id } => {
            let r = c
                .container_status(ContainerStatusRequest {
                    container_id: id,
                    verbose: false,
                })
                .await?
                .into_inner();
            println!("{}", serde_json::to_string(&r.status)?);
        }
    }
    Ok(0)
}

/// A shell-like exit status byte: codes outside 0..=255 (never from a real process) become 255.
fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// Prints a CRI log file's content: lines "TIMESTAMP STREAM TAG CONTENT", TAG F (full line) or P
/// (partial: no newline follows), STREAM stdout or stderr.
fn print_cri_log(path: &str) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading log {path}"))?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    for line in text.lines() {
        let mut f = line.splitn(4, ' ');
        let (_, stream, tag, content) = (f.next(), f.next(), f.next(), f.next().unwrap_or(""));
        let w: &mut dyn Write = if stream == Some("stderr") { &mut err } else { &mut out };
        w.write_all(content.as_bytes())?;
        if tag != Some("P") {
            w.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Runs an exec through the CRI streaming server with the websocket flavour of the remotecommand
/// protocol (v4.channel.k8s.io): each binary message starts with its channel (1 stdout, 2 stderr,
/// 3 the final status as JSON). Returns the command's exit code.
fn stream_exec(url: &str) -> Result<u8> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::Message;

    let ws_url = url
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .ok_or_else(|| anyhow!("unexpected exec URL {url}"))?;
    let host = ws_url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "v4.channel.k8s.io".parse().context("header")?);
    let tcp = TcpStream::connect(&host).with_context(|| format!("connecting to {host}"))?;
    let (mut ws, _) = tungstenite::client(req, tcp).map_err(|e| anyhow!("websocket: {e}"))?;
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut status: Option<serde_json::Value> = None;
    loop {
        let msg = match ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => break,
            Err(tungstenite::Error::Protocol(_)) if status.is_some() => break,
            Err(e) => bail!("websocket read: {e}"),
        };
        let data = match msg {
            Message::Binary(b) => b.to_vec(),
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&chan, payload)) = data.split_first() else {
            continue;
        };
        match chan {
            1 => out.write_all(payload)?,
            2 => err.write_all(payload)?,
            3 if !payload.is_empty() => status = Some(serde_json::from_slice(payload)?),
            _ => {}
        }
    }
    out.flush()?;
    Ok(exit_from_status(status.as_ref()))
}

/// The exit code in a remotecommand v4 status: Success → 0; NonZeroExitCode carries it as the
/// message of the cause whose reason is ExitCode.
fn exit_from_status(status: Option<&serde_json::Value>) -> u8 {
    let Some(s) = status else {
        // v4 always sends a status; none means the stream broke.
        return 255;
    };
    if s["status"] == "Success" {
        return 0;
    }
    let causes: HashMap<String, String> = s["details"]["causes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|c| Some((c["reason"].as_str()?.to_string(), c["message"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    causes
        .get("ExitCode")
        .and_then(|m| m.parse::<i32>().ok())
        .map_or(255, exit_byte)
}
