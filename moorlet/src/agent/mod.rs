//! `moorlet agent`: the API server over a Unix socket and the reconciler.
//!
//! The agent keeps the desired state (store) and starts one monitor process per pod; monitors
//! own the containers and write each pod's status, so the agent may die and restart at any
//! time: on start it finds every monitor still alive (adopts it: nothing restarts) and starts
//! one for every desired pod that has none (after a reboot).

mod apply;
mod images;
mod monitors;
mod query;

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::api::{self, Reply, Request};
use crate::events::Event;
use crate::store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    #[arg(long, default_value = "/var/lib/moorlet")]
    pub state_dir: PathBuf,
    /// Set from the global --socket.
    #[arg(skip)]
    pub socket: PathBuf,
    /// Where container logs go (the kubelet's /var/log/pods).
    #[arg(long, default_value = "/var/log/pods")]
    pub log_root: PathBuf,
    /// The cgroup under which every container's cgroup is made.
    #[arg(long, default_value = "/moorlet")]
    pub cgroup_parent: String,
}

pub struct Agent {
    pub store: Store,
    pub images: crate::image::ImageStore,
    pub args: Args,
    /// Held by whatever changes desired state (apply, delete), one at a time.
    pub lock: Mutex<()>,
    pub monitors: monitors::Monitors,
    /// The peers last written in each pod's hosts file, by uid.
    pub peers: Mutex<std::collections::HashMap<String, Vec<(String, std::net::IpAddr)>>>,
    /// Uids of the pods a request is deleting now.
    pub deleting: Mutex<std::collections::HashSet<String>>,
}

pub fn main(args: Args) -> Result<()> {
    // The agent re-executes itself for each monitor: from a view of its binary that nobody can
    // write or replace (an upgrade of the file on disk must not change what runs next).
    moor::caller::ensure_protected().map_err(|e| anyhow::anyhow!(moor::report(&e)))?;
    let exe = std::fs::File::open("/proc/self/exe").context("cannot open /proc/self/exe")?;
    let store = Store::open(&args.state_dir)?;
    let images = crate::image::ImageStore::open(&store.images_dir())?;
    let listener = listen(&args.socket)?;
    let agent = Arc::new(Agent {
        monitors: monitors::Monitors::new(exe, &store, &args),
        store,
        images,
        args,
        lock: Mutex::new(()),
        deleting: Mutex::new(std::collections::HashSet::new()),
        peers: Mutex::new(std::collections::HashMap::new()),
    });
    crate::log!(
        "moorlet agent: state {}, socket {}",
        agent.store.root.display(),
        agent.args.socket.display()
    );
    let reconciler = Arc::clone(&agent);
    std::thread::spawn(move || loop {
        reconciler.reconcile();
        std::thread::sleep(Duration::from_secs(1));
    });
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let agent = Arc::clone(&agent);
        std::thread::spawn(move || agent.serve(conn));
    }
    Ok(())
}

/// Binds the socket with mode 0600 from the start (umask), replacing a stale one.
fn listen(path: &std::path::Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if UnixStream::connect(path).is_ok() {
        anyhow::bail!("another agent is listening on {}", path.display());
    }
    let _ = std::fs::remove_file(path);
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    bound.with_context(|| format!("cannot listen on {}", path.display()))
}

impl Agent {
    pub fn event(&self, ns: &str, object: &str, warning: bool, reason: &str, message: &str) {
        crate::events::record(
            &self.store.events_file(),
            &Event::new(ns, object, warning, reason, message),
        );
    }

    fn serve(&self, conn: UnixStream) {
        let mut reader = BufReader::new(&conn);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let mut out = &conn;
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => self.handle(req, &mut out),
            Err(e) => Err(anyhow::anyhow!("bad request: {e}")),
        };
        let reply = match reply {
            Ok(data) => Reply {
                ok: Some(true),
                data: Some(data),
                error: None,
                line: None,
            },
            Err(e) => Reply {
                ok: Some(false),
                data: None,
                error: Some(format!("{e:#}")),
                line: None,
            },
        };
        let _ = api::send(&mut out, &reply);
    }

    fn handle(&self, req: Request, out: &mut &UnixStream) -> Result<serde_json::Value> {
        match req {
            Request::Apply { documents } => self.apply(&documents),
            Request::Delete { documents } => self.delete_documents(&documents),
            Request::DeletePod { namespace, name } => {
                self.delete_pod(&namespace, &name)?;
                Ok(serde_json::json!([format!("pod \"{name}\" deleted")]))
            }
            Request::GetPods { namespace } => self.get_pods(namespace.as_deref()),
            Request::GetPod { namespace, name } => self.get_pod(&namespace, &name),
            Request::Describe { namespace, name } => self.describe(&namespace, &name),
            Request::Logs(req) => self.logs(&req, out),
            Request::ExecTarget {
                namespace,
                name,
                container,
            } => self.exec_target(&namespace, &name, container.as_deref()),
            Request::Events { watch, namespace } => self.events(watch, namespace.as_deref(), out),
            Request::ImagesImport { path } => self.images_import(&path),
            Request::ImagesPull { reference } => self.images_pull(&reference),
            Request::ImagesList => self.images_list(),
            Request::ImagesRemove { reference } => self.images_remove(&reference),
            Request::ImagesPrune => self.images_prune(),
        }
    }

    /// Every desired pod has a live monitor; pods marked deleting finish their delete.
    fn reconcile(&self) {
        let pods = match self.store.pods() {
            Ok(p) => p,
            Err(e) => {
                crate::log!("reconcile: {e:#}");
                return;
            }
        };
        for d in pods {
            if d.deleting {
                // A request deleting it now finishes it; this one only takes over after a restart.
                if self.deleting.lock().is_ok_and(|busy| busy.contains(&d.uid())) {
                    continue;
                }
                let (ns, name) = (d.namespace(), d.name());
                if let Err(e) = self.delete_pod(&ns, &name) {
                    crate::log!("delete {ns}/{name}: {e:#}");
                }
                continue;
            }
            let Ok(_guard) = self.lock.lock() else { return };
            if let Err(e) = self.monitors.ensure(&d, &self.images, false) {
                crate::log!("pod {}/{}: {e:#}", d.namespace(), d.name());
            }
            self.update_peers(&d);
        }
    }

    /// Rewrites the pod's hosts file when the pods beside it (or their IPs) changed.
    fn update_peers(&self, d: &crate::store::Desired) {
        let run_dir = self.store.run_dir(&d.uid());
        let status: Option<serde_json::Value> = crate::util::read_json(&run_dir.join("status.json")).ok().flatten();
        let Some(status) = status.filter(|s| s["phase"] == "Running" || s["phase"] == "Pending") else {
            return;
        };
        if !run_dir.join("etc/hosts").exists() || monitors::alive(&run_dir).is_none() {
            return;
        }
        let ip = status["podIP"].as_str().and_then(|ip| ip.parse().ok());
        let peers = crate::monitor::peers(&self.store, &d.pod);
        let Ok(mut last) = self.peers.lock() else { return };
        if last.get(&d.uid()) == Some(&peers) {
            return;
        }
        match crate::monitor::write_etc(&run_dir, &d.pod, ip, &peers) {
            Ok(_) => {
                last.insert(d.uid(), peers);
            }
            Err(e) => crate::log!("pod {}/{}: hosts file: {e:#}", d.namespace(), d.name()),
        }
    }
}
