//! Pulls: from Debian's docker-registry on 127.0.0.1 (the busybox image pushed over the
//! registry's HTTP API), and from small test-only HTTP servers that demand a Bearer token or
//! serve a wrong blob.

mod image_support;

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use image_support::{contents, is_whiteout, TempDir};
use moor_integration::images::{self, ImageFiles, HELLO, HIDDEN_FILE};
use moor_integration::{require_root, skip};
use moorlet::image::{mount_rootfs, unmount_rootfs, ImageError};
use serde_json::json;

const REGISTRY: &str = "/usr/bin/docker-registry";

macro_rules! need_busybox {
    () => {
        require_root!();
        if !images::busybox_available() {
            skip!("needs /bin/busybox from Debian's busybox-static (apt-get install busybox-static)");
        }
    };
}

/// Debian's docker-registry serving a temp storage on a free 127.0.0.1 port; killed on drop.
struct Registry {
    child: Child,
    port: u16,
}

impl Registry {
    fn start(dir: &Path) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("registry.yml");
        let storage = dir.join("storage");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .expect("write the registry config");
        let log = fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let mut reg = Registry { child, port };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = ureq::get(&format!("{}/v2/", reg.url())).call() {
                if resp.status() == 200 {
                    return reg;
                }
            }
            if let Ok(Some(status)) = reg.child.try_wait() {
                let log = fs::read_to_string(dir.join("registry.log")).unwrap_or_default();
                panic!("docker-registry exited ({status}): {log}");
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not answer on port {}",
                reg.port
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn push_blob(&self, repo: &str, data: &[u8]) {
        let digest = images::sha256(data);
        let resp = ureq::post(&format!("{}/v2/{repo}/blobs/uploads/", self.url()))
            .send_empty()
            .expect("start an upload");
        assert_eq!(resp.status(), 202);
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload location")
            .to_string();
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url())
        } else {
            location
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let resp = ureq::put(&format!("{location}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .send(data)
            .expect("upload a blob");
        assert_eq!(resp.status(), 201, "upload of {digest}");
    }

    fn push_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        let resp = ureq::put(&format!("{}/v2/{repo}/manifests/{reference}", self.url()))
            .header("Content-Type", media_type)
            .send(body)
            .expect("put a manifest");
        assert_eq!(resp.status(), 201, "manifest {reference}");
    }

    /// A test-only push over the registry's HTTP API: blobs, then the manifest under `tag`.
    fn push(&self, repo: &str, tag: &str, img: &ImageFiles) {
        self.push_blob(repo, &img.config);
        for (blob, _, _) in &img.layers {
            self.push_blob(repo, blob);
        }
        self.push_manifest(repo, tag, "application/vnd.oci.image.manifest.v1+json", &img.manifest);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn need_registry() -> bool {
    Path::new(REGISTRY).is_file()
}

#[test]
fn pull_from_a_local_registry() {
    need_busybox!();
    if !need_registry() {
        skip!("needs {REGISTRY} from Debian's docker-registry package (apt-get install docker-registry)");
    }
    let t = TempDir::new("pull");
    let registry = Registry::start(t.path());
    let img = images::busybox_image();
    registry.push("test/busybox", "v1", &img);
    let store = t.store();
    let reference = format!("{}/test/busybox:v1", registry.host());
    let image = store.pull(&reference).expect("pull");
    assert_eq!(image.id, img.id());
    assert_eq!(image.names, vec![reference.clone()]);
    assert_eq!(image.config.cmd, vec!["/bin/sh".to_string()]);
    let dirs = store.layer_dirs(&image).expect("layers");
    assert_eq!(dirs.len(), 3);
    assert!(is_whiteout(&dirs[1].join(HIDDEN_FILE)));
    let c = t.join("c1");
    let rootfs = mount_rootfs(&store, &image, &c).expect("mount");
    assert_eq!(fs::read_to_string(rootfs.join("etc/hello")).expect("hello"), HELLO);
    assert!(!rootfs.join(HIDDEN_FILE).exists());
    unmount_rootfs(&c).expect("unmount");

    let before = contents(&t.join("store"), &store);
    assert_eq!(
        store.pull(&reference).expect("pull again"),
        image,
        "a second pull is the same image"
    );
    assert_eq!(contents(&t.join("store"), &store), before, "and stores nothing new");
    let by_digest = format!("{}/test/busybox@{}", registry.host(), img.manifest_digest());
    assert_eq!(store.pull(&by_digest).expect("pull by digest").id, image.id);
    assert_eq!(
        store.get(&by_digest).expect("get by digest").map(|i| i.id),
        Some(image.id.clone())
    );

    let err = store
        .pull(&format!("{}/test/busybox:nosuchtag", registry.host()))
        .expect_err("a missing tag");
    assert!(err.to_string().contains("404"), "{err}");
}

#[test]
fn pull_of_a_multi_platform_index_takes_amd64() {
    need_busybox!();
    if !need_registry() {
        skip!("needs {REGISTRY} from Debian's docker-registry package (apt-get install docker-registry)");
    }
    let t = TempDir::new("pull-index");
    let registry = Registry::start(t.path());
    let amd = images::busybox_image();
    let mut layers = images::busybox_layers();
    layers.truncate(1);
    let arm = images::image(layers, json!({"Cmd": ["/bin/arm"]}));
    registry.push("multi", &amd.manifest_digest(), &amd);
    registry.push("multi", &arm.manifest_digest(), &arm);
    let entry = |img: &ImageFiles, arch: &str| {
        json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest(),
               "size": img.manifest.len(), "platform": {"architecture": arch, "os": "linux"}})
    };
    let index = serde_json::to_vec(
        &json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&arm, "arm64"), entry(&amd, "amd64")]}),
    )
    .expect("index");
    registry.push_manifest("multi", "latest", "application/vnd.oci.image.index.v1+json", &index);
    let store = t.store();
    let image = store.pull(&format!("{}/multi", registry.host())).expect("pull");
    assert_eq!(image.id, amd.id());
    assert_eq!(image.names, vec![format!("{}/multi:latest", registry.host())]);
}

/// What a fake registry saw and serves.
#[derive(Default)]
struct Served {
    /// path → (content type, body)
    routes: HashMap<String, (String, Vec<u8>)>,
    /// When set, every /v2/ request needs `Authorization: Bearer <token>`.
    token: Option<String>,
    /// Request lines with whether they carried the token.
    log: Vec<(String, bool)>,
}

/// A test-only registry on 127.0.0.1 (std TcpListener, one thread, one request per connection).
struct FakeRegistry {
    port: u16,
    served: Arc<Mutex<Served>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeRegistry {
    fn start(served: Served) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let served = Arc::new(Mutex::new(served));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st) = (served.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let _ = serve(conn, port, &s);
                }
            }
        });
        FakeRegistry {
            port,
            served,
            stop,
            thread: Some(thread),
        }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, port: u16, served: &Mutex<Served>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("authorization") {
                auth = Some(v.trim().to_string());
            }
        }
    }
    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut s = served.lock().map_err(|_| std::io::Error::other("poisoned"))?;
    let authorized = s
        .token
        .as_ref()
        .is_none_or(|t| auth.as_deref() == Some(&format!("Bearer {t}")));
    let with_token = authorized && s.token.is_some();
    s.log.push((line.trim().to_string(), with_token));
    let (status, headers, body): (&str, String, Vec<u8>) = if let Some(query) = target.strip_prefix("/token?") {
        let want = "scope=repository%3Atest%2Fbb%3Apull&service=fake-registry";
        if query == want {
            (
                "200 OK",
                "Content-Type: application/json\r\n".into(),
                br#"{"token":"secret-123"}"#.to_vec(),
            )
        } else {
            (
                "400 Bad Request",
                String::new(),
                format!("unexpected query {query}").into_bytes(),
            )
        }
    } else if !authorized {
        let repo = target
            .trim_start_matches("/v2/")
            .split("/manifests/")
            .next()
            .and_then(|r| r.split("/blobs/").next())
            .unwrap_or("");
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake-registry\",scope=\"repository:{repo}:pull\"\r\n"
        );
        ("401 Unauthorized", challenge, b"{}".to_vec())
    } else if let Some((ct, body)) = s.routes.get(&target) {
        ("200 OK", format!("Content-Type: {ct}\r\n"), body.clone())
    } else {
        ("404 Not Found", String::new(), b"{}".to_vec())
    };
    drop(s);
    let mut out = conn;
    write!(
        out,
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    out.write_all(&body)?;
    out.flush()?;
    Ok(())
}

fn routes(repo: &str, img: &ImageFiles, tag: &str) -> HashMap<String, (String, Vec<u8>)> {
    let mut r = HashMap::new();
    r.insert(
        format!("/v2/{repo}/manifests/{tag}"),
        (
            "application/vnd.oci.image.manifest.v1+json".to_string(),
            img.manifest.clone(),
        ),
    );
    for (digest, data) in img.blobs() {
        r.insert(
            format!("/v2/{repo}/blobs/{digest}"),
            ("application/octet-stream".to_string(), data.to_vec()),
        );
    }
    r
}

#[test]
fn pull_with_a_bearer_token() {
    need_busybox!();
    let img = images::busybox_image();
    let fake = FakeRegistry::start(Served {
        routes: routes("test/bb", &img, "v1"),
        token: Some("secret-123".to_string()),
        log: Vec::new(),
    });
    let t = TempDir::new("token");
    let store = t.store();
    let image = store
        .pull(&format!("{}/test/bb:v1", fake.host()))
        .expect("pull with a token");
    assert_eq!(image.id, img.id());
    let served = fake.served.lock().expect("log");
    let log: Vec<String> = served.log.iter().map(|(l, ok)| format!("{l} token={ok}")).collect();
    assert!(
        log[0].starts_with("GET /v2/test/bb/manifests/v1 ") && log[0].ends_with("token=false"),
        "{log:?}"
    );
    assert!(
        log[1].starts_with("GET /token?scope=repository%3Atest%2Fbb%3Apull&service=fake-registry"),
        "{log:?}"
    );
    assert!(
        log[2..].iter().all(|l| l.ends_with("token=true")),
        "every later request carries the token: {log:?}"
    );
    assert_eq!(
        log.len(),
        3 + 4,
        "the manifest twice, the token, the config and 3 layers: {log:?}"
    );
}

#[test]
fn a_registry_serving_a_wrong_blob_is_refused() {
    need_busybox!();
    let img = images::busybox_image();
    let mut served = routes("test/bb", &img, "v1");
    // the second layer's URL serves the third layer's bytes
    let (l2, l3) = (images::sha256(&img.layers[1].0), &img.layers[2].0);
    served.insert(
        format!("/v2/test/bb/blobs/{l2}"),
        ("application/octet-stream".to_string(), l3.clone()),
    );
    let fake = FakeRegistry::start(Served {
        routes: served,
        ..Served::default()
    });
    let t = TempDir::new("wrong-blob");
    let store = t.store();
    let err = store
        .pull(&format!("{}/test/bb:v1", fake.host()))
        .expect_err("a wrong blob must be refused");
    assert!(
        matches!(err, ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains(&l2), "the error names the blob: {err}");
    let (blobs, layers, tmp, n) = contents(&t.join("store"), &store);
    assert!(
        blobs.is_empty() && layers.is_empty() && tmp.is_empty() && n == 0,
        "{blobs:?} {layers:?} {tmp:?}"
    );

    // a manifest asked for by digest must have that digest
    let other = images::sha256(b"another manifest");
    fake.served.lock().expect("routes").routes.insert(
        format!("/v2/test/bb/manifests/{other}"),
        (
            "application/vnd.oci.image.manifest.v1+json".to_string(),
            img.manifest.clone(),
        ),
    );
    let err = store
        .pull(&format!("{}/test/bb@{other}", fake.host()))
        .expect_err("a manifest by digest that does not match");
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert_eq!(contents(&t.join("store"), &store).0.len(), 0);
}

#[test]
fn a_refused_token_fails_clearly() {
    require_root!();
    let fake = FakeRegistry::start(Served {
        token: Some("never-given".to_string()),
        ..Served::default()
    });
    let t = TempDir::new("no-token");
    let store = t.store();
    // the realm hands out a token the registry does not take
    let err = store
        .pull(&format!("{}/test/bb:v1", fake.host()))
        .expect_err("a refused token");
    assert!(err.to_string().contains("HTTP 401 even with the token"), "{err}");
    // a realm that refuses the scope
    let err = store
        .pull(&format!("{}/other/repo:v1", fake.host()))
        .expect_err("no token");
    assert!(
        err.to_string().contains("the token endpoint") && err.to_string().contains("400"),
        "{err}"
    );
    let (blobs, _, tmp, n) = contents(&t.join("store"), &store);
    assert!(blobs.is_empty() && tmp.is_empty() && n == 0);
}
