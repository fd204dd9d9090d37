//! Runs containers from specs made by `moorlet::spec::container_spec` with the moor binary
//! (create/start/delete through its CLI: cargo tests are threaded, so no in-process
//! moor::Runtime), and checks from the workload's own /proc what a user would check.
//!
//! Needs root and the moor binary (`cargo build -p moor-cli`; `MOOR=/path/to/moor` overrides).
//! The pods use the host's network and ipc namespaces, so that no pod namespaces (the net
//! engineer's part) are needed; everything else comes from the generated spec as is.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use moorlet::manifest::{parse, Object};
use moorlet::spec::{container_spec, ContainerInput, EnvSources, ImageDefaults};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "id", "sleep", "grep", "touch", "unshare", "ping", "true",
];

struct NoSources;

impl EnvSources for NoSources {
    fn config_map(&self, _: &str, _: &str) -> Option<ConfigMap> {
        None
    }
    fn secret(&self, _: &str, _: &str) -> Option<Secret> {
        None
    }
}

fn moor() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOOR") {
        return Some(PathBuf::from(p));
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = target.join("debug/moor");
    p.exists().then_some(p)
}

/// None (after saying why, loudly) when the test cannot run here.
fn runnable() -> Option<PathBuf> {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP: running containers needs root");
        return None;
    }
    let m = moor();
    if m.is_none() {
        eprintln!("SKIP: no moor binary: build it with `cargo build -p moor-cli` or set MOOR");
    }
    m
}

/// A test's directories and container, removed (container deleted) on drop.
struct Run {
    moor: PathBuf,
    id: String,
    dir: PathBuf,
    seccomp_dir: Option<PathBuf>,
    volumes: Vec<(String, PathBuf, bool)>,
    /// The pod's /etc/hosts, /etc/hostname and /etc/resolv.conf, and its termination log.
    pod_files: Option<PathBuf>,
}

impl Run {
    fn new(moor: PathBuf) -> Run {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let id = format!("moorlet-spec-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&id);
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("bundle/rootfs");
        for d in ["bin", "dev", "proc", "sys", "tmp", "etc", "root"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
        }
        for d in [&dir, &dir.join("bundle"), &rootfs] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        let bb = rootfs.join("bin/busybox");
        std::fs::copy("/bin/busybox", &bb).expect("copy busybox (install busybox-static)");
        for a in APPLETS {
            std::fs::hard_link(&bb, rootfs.join("bin").join(a)).expect("applet");
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").expect("group");
        Run {
            moor,
            id,
            dir,
            seccomp_dir: None,
            volumes: Vec::new(),
            pod_files: None,
        }
    }

    /// Copies this test binary and the libraries it links (glibc's) into the rootfs as
    /// /probe, so that a glibc program runs in the container.
    fn install_probe(&self) {
        let exe = std::env::current_exe().expect("current_exe");
        let rootfs = self.rootfs();
        std::fs::copy(&exe, rootfs.join("probe")).expect("copy probe");
        let ldd = Command::new("ldd").arg(&exe).output().expect("ldd");
        for line in String::from_utf8_lossy(&ldd.stdout).lines() {
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next(),
                None => line.split_whitespace().next().filter(|p| p.starts_with('/')),
            };
            let Some(path) = path.filter(|p| p.starts_with('/')) else {
                continue;
            };
            let dest = rootfs.join(path.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("lib dir");
            std::fs::copy(path, &dest).unwrap_or_else(|e| panic!("copy {path}: {e}"));
        }
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.join("bundle/rootfs")
    }

    fn cgroups_path(&self) -> String {
        format!("/moor-it/{}", self.id)
    }

    /// Generates the spec for the pod's first container and runs it in the foreground; its
    /// stdout and the exit status.
    fn run(&self, pod: &Pod, image: &ImageDefaults) -> (String, bool) {
        let file = |name: &str| self.pod_files.as_ref().map(|d| d.join(name));
        let (hosts, hostname, resolv, log) = (
            file("hosts"),
            file("hostname"),
            file("resolv.conf"),
            file("termination-log"),
        );
        let input = ContainerInput {
            pod,
            container: &pod.spec.as_ref().expect("spec").containers[0],
            image,
            rootfs: &self.rootfs(),
            netns: None,
            ipcns: None,
            utsns: None,
            pidns: None,
            volumes: &self.volumes,
            etc_hosts: hosts.as_deref(),
            etc_hostname: hostname.as_deref(),
            resolv_conf: resolv.as_deref(),
            env_sources: &NoSources,
            pod_ip: None,
            cgroups_path: self.cgroups_path(),
            shm: None,
            seccomp_dir: self.seccomp_dir.as_deref(),
            termination_log: log.as_deref(),
        };
        let spec = container_spec(&input).unwrap_or_else(|e| panic!("container_spec: {e}"));
        let config = serde_json::to_vec_pretty(&spec).expect("config");
        std::fs::write(self.dir.join("bundle/config.json"), config).expect("config.json");
        let mut child = Command::new(&self.moor)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["run", "--bundle"])
            .arg(self.dir.join("bundle"))
            .arg(&self.id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn moor");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("moor run did not finish within 60 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            eprintln!("moor stderr: {stderr}");
        }
        (String::from_utf8_lossy(&out.stdout).into_owned(), out.status.success())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new(&self.moor)
            .arg("--root")
            .arg(self.dir.join("state"))
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
        let leftover: Vec<_> = ["pids", "memory", "cpu", "devices", "freezer", "unified"]
            .iter()
            .map(|c| Path::new("/sys/fs/cgroup").join(c).join("moor-it").join(&self.id))
            .filter(|p| p.exists())
            .collect();
        if !std::thread::panicking() {
            assert!(leftover.is_empty(), "cgroups left behind: {leftover:?}");
        }
    }
}

/// A pod on the host's network and ipc namespaces, whose container runs `sh -c script`.
fn pod(script: &str, container_fields: &str) -> Pod {
    pod_with(script, container_fields, "")
}

fn pod_with(script: &str, container_fields: &str, pod_fields: &str) -> Pod {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: spec-test}}\nspec:\n  hostNetwork: true\n  hostIPC: true\n{pod_fields}  containers:\n  \
         - name: app\n    image: busybox\n    command: [sh, -c, {script:?}]\n{container_fields}"
    );
    match parse(&text).expect("pod").pop() {
        Some(Object::Pod(p)) => p,
        other => panic!("not a pod: {other:?}"),
    }
}

fn status_line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

#[test]
fn drop_all_leaves_no_capabilities() {
    let Some(moor) = runnable() else { return };
    let run = Run::new(moor);
    let (out, ok) = run.run(
        &pod(
            "cat /proc/self/status",
            "    securityContext: {capabilities: {drop: [ALL]}}\n",
        ),
        &ImageDefaults::default(),
    );
    assert!(ok, "{out}");
    for key in ["CapEff:", "CapPrm:", "CapBnd:", "CapInh:", "CapAmb:"] {
        assert_eq!(status_line(&out, key), "0000000000000000", "{key}");
    }
    // And the default set is not empty, so that the check above means something.
    let run = Run::new(run.moor.clone());
    let (out, ok) = run.run(&pod("cat /proc/self/status", ""), &ImageDefaults::default());
    assert!(ok, "{out}");
    assert_eq!(
        status_line(&out, "CapEff:"),
        "00000000a80425fb",
        "containerd's default set"
    );
}

#[test]
fn run_as_user_and_group() {
    let Some(moor) = runnable() else { return };
    let run = Run::new(moor);
    let fields = "    securityContext: {runAsUser: 1000, runAsGroup: 3000}\n";
    let (out, ok) = run.run(
        &pod("cat /proc/self/status; id -u; id -g", fields),
        &ImageDefaults::default(),
    );
    assert!(ok, "{out}");
    assert_eq!(
        status_line(&out, "Uid:").split_whitespace().collect::<Vec<_>>(),
        ["1000"; 4]
    );
    assert_eq!(
        status_line(&out, "Gid:").split_whitespace().collect::<Vec<_>>(),
        ["3000"; 4]
    );
    // The image's User by name, resolved in the image's /etc/passwd.
    let run = Run::new(run.moor.clone());
    let image = ImageDefaults {
        user: Some("app".into()),
        ..ImageDefaults::default()
    };
    let (out, ok) = run.run(&pod("id -u; id -g", ""), &image);
    assert!(ok, "{out}");
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["1000", "1000"]);
}

#[test]
fn read_only_root_filesystem_refuses_writes() {
    let Some(moor) = runnable() else { return };
    let script = "if touch /written 2>/dev/null; then echo WROTE; else echo REFUSED; fi; touch /tmp/x && echo TMP-RO-TOO || true";
    let run = Run::new(moor);
    let (out, ok) = run.run(
        &pod(script, "    securityContext: {readOnlyRootFilesystem: true}\n"),
        &ImageDefaults::default(),
    );
    assert!(ok, "{out}");
    assert!(out.contains("REFUSED") && !out.contains("WROTE"), "{out}");
    assert!(!run.rootfs().join("written").exists());
    let run = Run::new(run.moor.clone());
    let (out, ok) = run.run(&pod(script, ""), &ImageDefaults::default());
    assert!(ok && out.contains("WROTE"), "a writable root, for contrast: {out}");
}

#[test]
fn runtime_default_seccomp_confines_but_lets_busybox_work() {
    let Some(moor) = runnable() else { return };
    let script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; \
        if unshare -U true 2>/dev/null; then echo UNSHARE-WORKED; else echo UNSHARE-DENIED; fi; \
        if unshare -n true 2>/dev/null; then echo UNSHARE-NET-WORKED; else echo UNSHARE-NET-DENIED; fi; \
        ls / >/dev/null && cat /etc/passwd >/dev/null && sleep 0.1 && echo TOOLS-OK; \
        ping -c 1 -W 2 127.0.0.1 >/dev/null && echo PING-OK; \
        (sleep 0 &) ; wait; echo FORK-OK";
    let run = Run::new(moor);
    let fields = "    securityContext: {seccompProfile: {type: RuntimeDefault}}\n";
    let (out, ok) = run.run(&pod(script, fields), &ImageDefaults::default());
    assert!(ok, "{out}");
    assert_eq!(status_line(&out, "Seccomp:"), "2");
    for want in ["UNSHARE-DENIED", "UNSHARE-NET-DENIED", "TOOLS-OK", "PING-OK", "FORK-OK"] {
        assert!(out.contains(want), "{want} missing in {out}");
    }
    // Unconfined, for contrast: the same script unshares.
    let run = Run::new(run.moor.clone());
    let (out, ok) = run.run(
        &pod(script, "    securityContext: {seccompProfile: {type: Unconfined}}\n"),
        &ImageDefaults::default(),
    );
    assert!(ok, "{out}");
    assert_eq!(status_line(&out, "Seccomp:"), "0");
    assert!(
        out.contains("UNSHARE-WORKED"),
        "a user namespace needs no capability, only no filter: {out}"
    );
}

#[test]
fn env_and_args_are_expanded_as_kubernetes_does() {
    let Some(moor) = runnable() else { return };
    let run = Run::new(moor);
    let fields = "    args: [sh, $(GREETING), $$(GREETING), $(MISSING)]\n    workingDir: /tmp\n    env:\n    - {name: GREETING, value: hello}\n    \
                  - {name: NAME, value: $(GREETING)-world}\n";
    let (out, ok) = run.run(
        &pod("echo \"$1|$2|$3|$NAME|$IMG|$(pwd)|$HOSTNAME\"", fields),
        &ImageDefaults {
            env: vec!["IMG=from-image".into(), "NAME=overridden".into()],
            ..ImageDefaults::default()
        },
    );
    assert!(ok, "{out}");
    let host = nix::unistd::gethostname()
        .expect("hostname")
        .to_string_lossy()
        .into_owned();
    assert_eq!(
        out.trim(),
        format!("hello|$(GREETING)|$(MISSING)|hello-world|from-image|/tmp|{host}")
    );
}

/// Run inside containers by the test below (ignored when cargo runs the suite): glibc's
/// pthread_create tries clone3 first and falls back to clone only on ENOSYS.
#[test]
#[ignore = "a probe run inside a container by runtime_default_seccomp_lets_glibc_start_threads"]
fn probe_threads() {
    let spawned = std::thread::Builder::new().spawn(|| 42).map(|t| t.join());
    match spawned {
        Ok(Ok(42)) => println!("THREAD-OK"),
        other => println!("THREAD-FAILED {other:?}"),
    }
}

#[test]
fn runtime_default_seccomp_lets_glibc_start_threads() {
    let Some(moor) = runnable() else { return };
    let script = "/probe --ignored --exact probe_threads --nocapture --test-threads=1; echo PROBE-EXIT=$?; grep '^Seccomp:' /proc/self/status";
    let fields = "    securityContext: {seccompProfile: {type: RuntimeDefault}}\n";
    let run = Run::new(moor.clone());
    run.install_probe();
    let (out, ok) = run.run(&pod(script, fields), &ImageDefaults::default());
    assert!(ok, "{out}");
    assert_eq!(status_line(&out, "Seccomp:"), "2");
    assert!(out.contains("THREAD-OK") && out.contains("PROBE-EXIT=0"), "{out}");

    // For contrast, the same profile without its clone3 rule: clone3 then fails with EPERM,
    // which glibc does not fall back from (the probe's harness cannot even start its thread).
    let mut run = Run::new(moor);
    run.install_probe();
    let mut profile = serde_json::to_value(moorlet::spec::runtime_default_seccomp()).expect("profile");
    if let Some(rules) = profile["syscalls"].as_array_mut() {
        rules.retain(|r| r["names"] != serde_json::json!(["clone3"]));
    }
    let dir = run.dir.join("seccomp");
    std::fs::create_dir_all(&dir).expect("seccomp dir");
    std::fs::write(dir.join("no-clone3.json"), profile.to_string()).expect("profile");
    run.seccomp_dir = Some(dir);
    let fields = "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: no-clone3.json}}\n";
    let (out, _) = run.run(&pod(script, fields), &ImageDefaults::default());
    assert!(
        !out.contains("THREAD-OK") && !out.contains("PROBE-EXIT=0") && out.contains("PROBE-EXIT="),
        "{out}"
    );
}

#[test]
fn privileged_gets_the_runtimes_capabilities_devices_and_no_masks() {
    let Some(moor) = runnable() else { return };
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; grep -c ' /proc/keys ' /proc/self/mountinfo; \
        grep ' /sys ' /proc/self/mountinfo | grep -q ' rw,' && echo SYS-RW || echo SYS-RO; \
        test -c /dev/kmsg && echo HOST-DEVICES || echo NO-HOST-DEVICES";
    let run = Run::new(moor);
    let (out, ok) = run.run(
        &pod(script, "    securityContext: {privileged: true}\n"),
        &ImageDefaults::default(),
    );
    assert!(ok, "{out}");
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    assert_eq!(
        status_line(&out, "CapEff:"),
        status_line(&own, "CapBnd:"),
        "every capability the runtime has"
    );
    assert_eq!(status_line(&out, "Seccomp:"), "0");
    for want in ["\n0\n", "SYS-RW", "HOST-DEVICES"] {
        assert!(out.contains(want), "{want:?} missing in {out}");
    }
    let run = Run::new(run.moor.clone());
    let (out, ok) = run.run(&pod(script, ""), &ImageDefaults::default());
    assert!(ok, "{out}");
    for want in ["\n1\n", "SYS-RO", "NO-HOST-DEVICES"] {
        assert!(out.contains(want), "not privileged: {want:?} missing in {out}");
    }
}

#[test]
fn volumes_sub_paths_pod_files_and_termination_log() {
    let Some(moor) = runnable() else { return };
    let mut run = Run::new(moor);
    let data = run.dir.join("data");
    let conf = run.dir.join("conf");
    let files = run.dir.join("pod");
    for (d, f, text) in [
        (&data, "site/index.html", "hello site"),
        (&conf, "app.conf", "debug=1"),
        (&files, "hosts", "10.88.0.9 spec-test"),
    ] {
        std::fs::create_dir_all(d.join(f).parent().expect("parent")).expect("mkdir");
        std::fs::write(d.join(f), text).expect("write");
    }
    std::fs::write(files.join("hostname"), "spec-test\n").expect("hostname");
    std::fs::write(files.join("resolv.conf"), "nameserver 10.88.0.1\n").expect("resolv");
    std::fs::write(files.join("termination-log"), "").expect("log");
    run.volumes = vec![("data".into(), data.clone(), false), ("conf".into(), conf, true)];
    run.pod_files = Some(files.clone());
    let script = "cat /site/index.html; echo; cat /etc/app/app.conf; echo; cat /etc/hosts /etc/resolv.conf; \
        touch /etc/app/new 2>/dev/null && echo CONF-WRITABLE || echo CONF-RO; \
        touch /site/new 2>/dev/null && echo SUBPATH-RO || echo SUBPATH-WRITE-REFUSED; \
        echo made > /data/from-container; echo bye > /dev/termination-log";
    let pod_fields = "  volumes: [{name: data, emptyDir: {}}, {name: conf, configMap: {name: c}}]\n";
    let fields = "    volumeMounts:\n    - {name: data, mountPath: /site, subPath: site, readOnly: true}\n    - {name: conf, mountPath: /etc/app}\n    \
                  - {name: data, mountPath: /data, mountPropagation: HostToContainer}\n";
    let (out, ok) = run.run(&pod_with(script, fields, pod_fields), &ImageDefaults::default());
    assert!(ok, "{out}");
    for want in [
        "hello site",
        "debug=1",
        "10.88.0.9 spec-test",
        "nameserver 10.88.0.1",
        "CONF-RO",
        "SUBPATH-WRITE-REFUSED",
    ] {
        assert!(out.contains(want), "{want:?} missing in {out}");
    }
    assert_eq!(
        std::fs::read_to_string(data.join("from-container")).expect("written through"),
        "made\n"
    );
    assert_eq!(
        std::fs::read_to_string(files.join("termination-log")).expect("log"),
        "bye\n"
    );
    assert!(!data.join("site/new").exists());
}

#[test]
fn resources_land_in_the_containers_cgroup() {
    let Some(moor) = runnable() else { return };
    let run = Run::new(moor);
    let fields = "    resources: {requests: {cpu: 250m}, limits: {cpu: 500m, memory: 32Mi}}\n";
    // cgroup v1 files first, then v2's, whichever the host has.
    let script =
        "cd /sys/fs/cgroup; for f in memory/memory.limit_in_bytes memory/memory.memsw.limit_in_bytes cpu/cpu.shares \
        cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us pids/pids.max memory.max memory.swap.max cpu.max pids.max; do \
        test -f $f && echo \"$f=$(cat $f)\"; done; true";
    let (out, ok) = run.run(&pod(script, fields), &ImageDefaults::default());
    assert!(ok, "{out}");
    let v2 = out.contains("memory.max=");
    let want: &[&str] = if v2 {
        &[
            "memory.max=33554432",
            "memory.swap.max=0",
            "cpu.max=50000 100000",
            "pids.max=4096",
        ]
    } else {
        &[
            "memory/memory.limit_in_bytes=33554432",
            "cpu/cpu.shares=256",
            "cpu/cpu.cfs_quota_us=50000",
            "cpu/cpu.cfs_period_us=100000",
            "pids/pids.max=4096",
        ]
    };
    for w in want {
        assert!(out.lines().any(|l| l == *w), "{w} missing in {out}");
    }
    // memory+swap equals memory where the host accounts swap (no swap for the container).
    if out.contains("memory/memory.memsw.limit_in_bytes=") {
        assert!(
            out.lines().any(|l| l == "memory/memory.memsw.limit_in_bytes=33554432"),
            "{out}"
        );
    }
}
