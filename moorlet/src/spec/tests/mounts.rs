use super::*;

fn mount<'v>(spec: &'v Value, dest: &str) -> Option<&'v Value> {
    spec["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == dest))
}

fn dests(spec: &Value) -> Vec<String> {
    spec["mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["destination"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn default_mounts_and_pod_files() {
    let mut case = Case::new(one("    securityContext: {readOnlyRootFilesystem: true}\n"));
    case.etc = true;
    case.termination_log = Some("/pod/termination-log".into());
    let spec = case.spec();
    assert_eq!(
        dests(&spec),
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/hostname",
            "/etc/resolv.conf",
            "/dev/termination-log"
        ]
    );
    let hosts = mount(&spec, "/etc/hosts").expect("hosts");
    assert_eq!(
        (hosts["source"].as_str(), hosts["type"].as_str()),
        (Some("/pod/hosts"), Some("bind"))
    );
    assert!(
        strings(&hosts["options"]).contains(&"ro".to_string()),
        "read-only with a read-only root"
    );
    let log = mount(&spec, "/dev/termination-log").expect("log");
    assert!(strings(&log["options"]).contains(&"rw".to_string()));

    let mut case = Case::new(one("    terminationMessagePath: /tmp/done\n"));
    case.termination_log = Some("/pod/termination-log".into());
    assert!(mount(&case.spec(), "/tmp/done").is_some());
    assert!(mount(&Case::new(one("")).spec(), "/etc/hosts").is_none());
}

#[test]
fn shm_follows_the_ipc_namespace() {
    let mut case = Case::new(one(""));
    assert_eq!(mount(&case.spec(), "/dev/shm").expect("shm")["type"], "tmpfs");
    case.shm = Some("/pod/shm".into());
    assert_eq!(mount(&case.spec(), "/dev/shm").expect("shm")["source"], "/pod/shm");
    case.shm = None;
    case.host_ipc = true;
    case.pod.spec.as_mut().expect("spec").host_ipc = Some(true);
    assert_eq!(mount(&case.spec(), "/dev/shm").expect("shm")["source"], "/dev/shm");
}

#[test]
fn volume_mounts_and_sub_paths() {
    let vol = TempDir::new("vol");
    let outside = TempDir::new("vol-outside");
    std::fs::create_dir_all(vol.0.join("data/site")).expect("mkdir");
    std::os::unix::fs::symlink(&outside.0, vol.0.join("evil")).expect("symlink");
    std::os::unix::fs::symlink("..", vol.0.join("data/up")).expect("symlink");
    let volumes = vec![
        ("data".to_string(), vol.0.clone(), false),
        ("conf".to_string(), PathBuf::from("/pod/conf"), true),
    ];
    let cases: &[(&str, Result<(&str, &str, &str), &str>)] = &[
        // (volumeMount, (destination, source under the volume, ro|rw) or error field)
        ("{name: data, mountPath: /data}", Ok(("/data", "", "rw"))),
        (
            "{name: data, mountPath: /data, readOnly: true}",
            Ok(("/data", "", "ro")),
        ),
        ("{name: conf, mountPath: /etc/app}", Ok(("/etc/app", "/pod/conf", "ro"))),
        (
            "{name: data, mountPath: /site, subPath: data/site}",
            Ok(("/site", "data/site", "rw")),
        ),
        (
            "{name: data, mountPath: /new, subPath: made/here}",
            Ok(("/new", "made/here", "rw")),
        ),
        (
            "{name: data, mountPath: /p, subPathExpr: $(POD)/logs}",
            Ok(("/p", "web/logs", "rw")),
        ),
        ("{name: data, mountPath: /dev/shm}", Ok(("/dev/shm", "", "rw"))),
        (
            "{name: data, mountPath: /x, subPath: ../etc}",
            Err("spec.containers[0].volumeMounts[0].subPath"),
        ),
        (
            "{name: data, mountPath: /x, subPath: /etc}",
            Err("spec.containers[0].volumeMounts[0].subPath"),
        ),
        (
            "{name: data, mountPath: /x, subPath: evil}",
            Err("spec.containers[0].volumeMounts[0].subPath"),
        ),
        (
            "{name: data, mountPath: /x, subPath: evil/inside}",
            Err("spec.containers[0].volumeMounts[0].subPath"),
        ),
        (
            "{name: data, mountPath: /x, subPath: data/up/data}",
            Err("spec.containers[0].volumeMounts[0].subPath"),
        ),
        (
            "{name: data, mountPath: /x, subPathExpr: $(DOTS)/etc}",
            Err("spec.containers[0].volumeMounts[0].subPathExpr"),
        ),
        (
            "{name: data, mountPath: /x, subPath: a, subPathExpr: b}",
            Err("spec.containers[0].volumeMounts[0].subPathExpr"),
        ),
        (
            "{name: data, mountPath: relative}",
            Err("spec.containers[0].volumeMounts[0].mountPath"),
        ),
        (
            "{name: nope, mountPath: /x}",
            Err("spec.containers[0].volumeMounts[0].name"),
        ),
        (
            "{name: data, mountPath: /x, mountPropagation: Bidirectional}",
            Err("spec.containers[0].volumeMounts[0].mountPropagation"),
        ),
    ];
    let env = "    env:\n    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: DOTS, value: ..}\n";
    for (vm, want) in cases {
        let p = pod(&format!(
            "  volumes: [{{name: data, emptyDir: {{}}}}, {{name: conf, configMap: {{name: c}}}}]\n  containers:\n  - name: app\n    image: busybox\n{env}    volumeMounts: [{vm}]\n"
        ));
        let mut case = Case::new(p);
        case.volumes = volumes.clone();
        match want {
            Ok((dest, source, mode)) => {
                let spec = case.spec();
                let m = mount(&spec, dest).expect(dest);
                let want_source = if source.starts_with('/') {
                    PathBuf::from(source)
                } else {
                    vol.0.join(source)
                };
                let want_source = if source.is_empty() { vol.0.clone() } else { want_source };
                assert_eq!(m["source"].as_str(), want_source.to_str(), "{vm}");
                assert!(strings(&m["options"]).contains(&mode.to_string()), "{vm}: {m}");
                assert_eq!(dests(&spec).iter().filter(|d| d == dest).count(), 1, "{vm}");
            }
            Err(field) => assert_eq!(case.error().field(), *field, "{vm}"),
        }
    }
    for (propagation, want) in [("None", None), ("HostToContainer", Some("rslave"))] {
        let vm = format!("{{name: data, mountPath: /p, mountPropagation: {propagation}}}");
        let p = pod(&format!(
            "  containers:\n  - name: app\n    image: busybox\n    volumeMounts: [{vm}]\n"
        ));
        let mut case = Case::new(p);
        case.volumes = volumes.clone();
        let spec = case.spec();
        assert_eq!(spec["linux"]["rootfsPropagation"].as_str(), want, "{propagation}");
        let options = strings(&mount(&spec, "/p").expect("mount")["options"]);
        assert!(options.contains(&want.unwrap_or("rprivate").to_string()), "{options:?}");
    }
    let p = pod("  containers:\n  - name: app\n    image: busybox\n    securityContext: {privileged: true}\n    volumeMounts: [{name: data, mountPath: /p, mountPropagation: Bidirectional}]\n");
    let mut case = Case::new(p);
    case.volumes = volumes.clone();
    assert_eq!(case.spec()["linux"]["rootfsPropagation"], "rshared");
    assert!(
        vol.0.join("made/here").is_dir(),
        "a missing subPath is made, as the kubelet makes it"
    );
    assert_eq!(
        std::fs::read_dir(&outside.0).expect("outside").count(),
        0,
        "nothing made through the symlink"
    );
}

#[test]
fn namespaces_and_hostname() {
    let ns = |spec: &Value| -> Vec<(String, Option<String>)> {
        spec["linux"]["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|n| {
                        (
                            n["type"].as_str().unwrap_or("").to_string(),
                            n["path"].as_str().map(str::to_string),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let owned = |kind: &str, path: Option<&str>| (kind.to_string(), path.map(str::to_string));
    let cgroup2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let spec = Case::new(one("")).spec();
    let mut want = vec![
        owned("mount", None),
        owned("network", Some("/run/netns/web")),
        owned("ipc", Some("/run/ipcns/web")),
        owned("uts", Some("/run/utsns/web")),
        owned("pid", None),
    ];
    if cgroup2 {
        want.push(owned("cgroup", None));
    }
    assert_eq!(ns(&spec), want);
    assert!(!ns(&spec).iter().any(|(k, _)| k == "user"));

    let mut case = Case::new(pod(
        "  hostNetwork: true\n  hostPID: true\n  hostIPC: true\n  containers: [{name: app, image: busybox}]\n",
    ));
    (case.host_net, case.host_ipc) = (true, true);
    let spec = case.spec();
    assert_eq!(ns(&spec)[..1], [owned("mount", None)]);
    assert_eq!(ns(&spec).len(), 1 + usize::from(cgroup2));
    assert!(spec["hostname"].is_null(), "the host's uts namespace keeps its name");

    let mut case = Case::new(pod(
        "  shareProcessNamespace: true\n  hostname: shop-1\n  containers: [{name: app, image: busybox}]\n",
    ));
    assert_eq!(case.error().field(), "spec.shareProcessNamespace");
    case.pidns = Some("/run/pidns/web".into());
    let spec = case.spec();
    assert!(ns(&spec).contains(&owned("pid", Some("/run/pidns/web"))));
    assert_eq!(spec["hostname"], "shop-1");

    // The pod did not ask for the host's namespaces: none is given silently.
    let mut case = Case::new(one(""));
    case.host_net = true;
    assert_eq!(case.error().field(), "spec.hostNetwork");

    let long = format!("{}.xy", "a".repeat(62));
    let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {long}}}\nspec: {{containers: [{{name: app, image: busybox}}]}}\n");
    let Some(crate::manifest::Object::Pod(p)) = parse(&text).expect("pod").pop() else {
        panic!("pod")
    };
    assert_eq!(
        Case::new(p).spec()["hostname"],
        "a".repeat(62),
        "cut to 63, without a trailing dot"
    );
}
