use super::*;

const SOURCES: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {LOG: debug, MODE: fast, 'bad=key': x, PORT: '80'}\n\
---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ndata: {PASSWORD: aHVudGVyMg==}\nstringData: {USER: admin}\n\
---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: other}\ndata: {LOG: other-namespace}\n";

fn env_of(fields: &str, sources: &Sources) -> Result<Vec<String>, SpecError> {
    let mut case = Case::new(one(fields));
    case.sources = sources;
    case.build()
        .map(|s| strings(&s["process"]["env"]).into_iter().skip(2).collect())
}

#[test]
fn env_from_and_env_with_references() {
    let sources = Sources::from_yaml(SOURCES);
    let cases: &[(&str, Result<&[&str], &str>)] = &[
        (
            "    envFrom: [{configMapRef: {name: cfg}}]\n",
            Ok(&["LOG=debug", "MODE=fast", "PORT=80"]),
        ),
        ("    envFrom: [{prefix: APP_, configMapRef: {name: cfg}}]\n", Ok(&["APP_LOG=debug", "APP_MODE=fast", "APP_PORT=80"])),
        ("    envFrom: [{secretRef: {name: creds}}]\n", Ok(&["PASSWORD=hunter2", "USER=admin"])),
        ("    envFrom: [{configMapRef: {name: nope, optional: true}}]\n", Ok(&[])),
        ("    envFrom: [{configMapRef: {name: nope}}]\n", Err("spec.containers[0].envFrom[0].configMapRef")),
        ("    envFrom: [{secretRef: {name: nope}}]\n", Err("spec.containers[0].envFrom[0].secretRef")),
        (
            "    envFrom: [{configMapRef: {name: cfg}}]\n    env:\n    - {name: LOG, value: info}\n    - {name: URL, value: 'http://x:$(PORT)/$(LATER)'}\n    - {name: LATER, value: l}\n",
            Ok(&["LOG=info", "MODE=fast", "PORT=80", "URL=http://x:80/$(LATER)", "LATER=l"]),
        ),
        (
            "    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: MODE}}}\n    - {name: B, valueFrom: {secretKeyRef: {name: creds, key: PASSWORD}}}\n",
            Ok(&["A=fast", "B=hunter2"]),
        ),
        (
            "    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: NOPE, optional: true}}}\n    - {name: B, valueFrom: {secretKeyRef: {name: gone, key: K, optional: true}}}\n",
            Ok(&[]),
        ),
        ("    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: NOPE}}}\n", Err("spec.containers[0].env[0].valueFrom.configMapKeyRef")),
        ("    env:\n    - {name: A}\n    - {name: B, valueFrom: {secretKeyRef: {name: creds, key: NOPE}}}\n", Err("spec.containers[0].env[1].valueFrom.secretKeyRef")),
        ("    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: gone, key: K}}}\n", Err("spec.containers[0].env[0].valueFrom.configMapKeyRef")),
        ("    env:\n    - {name: 'A=B', value: x}\n", Err("spec.containers[0].env[0].name")),
        ("    env:\n    - {name: F, valueFrom: {fileKeyRef: {volumeName: v, path: p, key: k}}}\n", Err("spec.containers[0].env[0].valueFrom")),
        ("    env:\n    - {name: EMPTY}\n    - {name: E2, value: ''}\n", Ok(&["EMPTY=", "E2="])),
    ];
    for (fields, want) in cases {
        match (env_of(fields, &sources), want) {
            (Ok(got), Ok(want)) => assert_eq!(got, *want, "{fields}"),
            (Err(e), Err(field)) => {
                assert_eq!(e.field(), *field, "{fields}: {e}");
                assert!(!e.to_string().contains("hunter2"), "{e}");
            }
            (got, want) => panic!("{fields}: got {got:?}, want {want:?}"),
        }
    }
    let e = env_of(
        "    env:\n    - {name: A, valueFrom: {configMapKeyRef: {name: cfg, key: NOPE}}}\n",
        &sources,
    )
    .expect_err("missing key");
    assert!(
        e.to_string()
            .contains("couldn't find key NOPE in ConfigMap default/cfg"),
        "{e}"
    );
}

#[test]
fn field_refs() {
    let cases: &[(&str, Result<&str, ()>)] = &[
        ("metadata.name", Ok("web")),
        ("metadata.namespace", Ok("default")),
        ("metadata.uid", Ok("1234-5678")),
        ("metadata.labels['app']", Ok("shop")),
        ("metadata.labels['none']", Ok("")),
        ("metadata.annotations['team']", Ok("blue")),
        ("status.podIP", Ok("10.88.0.7")),
        ("spec.serviceAccountName", Ok("")),
        ("metadata.labels", Err(())),
        ("status.phase", Err(())),
    ];
    for (path, want) in cases {
        let fields = format!("    env:\n    - {{name: V, valueFrom: {{fieldRef: {{fieldPath: \"{path}\"}}}}}}\n");
        match (env_of(&fields, NO_SOURCES), want) {
            (Ok(got), Ok(v)) => assert_eq!(got, [format!("V={v}")], "{path}"),
            (Err(e), Err(())) => assert_eq!(e.field(), "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"),
            (got, want) => panic!("{path}: got {got:?}, want {want:?}"),
        }
    }
    let host = nix::unistd::gethostname()
        .expect("hostname")
        .to_string_lossy()
        .into_owned();
    let got = env_of(
        "    env:\n    - {name: N, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n",
        NO_SOURCES,
    )
    .expect("nodeName");
    assert_eq!(got, [format!("N={host}")]);
}

#[test]
fn resource_field_refs() {
    let resources = "    resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: '1.5', memory: 128Mi}}\n";
    let cases: &[(&str, Option<&str>, &str)] = &[
        ("limits.cpu", None, "2"),
        ("limits.cpu", Some("1m"), "1500"),
        ("requests.cpu", None, "1"),
        ("requests.cpu", Some("1m"), "250"),
        ("limits.memory", None, "134217728"),
        ("limits.memory", Some("1Mi"), "128"),
        ("requests.memory", Some("1Mi"), "64"),
        ("requests.memory", Some("1M"), "68"),
    ];
    for (resource, divisor, want) in cases {
        let divisor = divisor.map(|d| format!(", divisor: {d}")).unwrap_or_default();
        let fields = format!("{resources}    env:\n    - {{name: R, valueFrom: {{resourceFieldRef: {{resource: {resource}{divisor}}}}}}}\n");
        assert_eq!(
            env_of(&fields, NO_SOURCES).expect(resource),
            [format!("R={want}")],
            "{resource} {divisor}"
        );
    }
    // Without limits, the node's capacity (as the kubelet defaults them).
    let cpus = std::thread::available_parallelism().expect("cpus").get();
    let fields = "    env:\n    - {name: R, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n";
    assert_eq!(env_of(fields, NO_SOURCES).expect("node cpu"), [format!("R={cpus}")]);
    let fields = "    env:\n    - {name: R, valueFrom: {resourceFieldRef: {resource: limits.hugepages-2Mi}}}\n";
    let e = env_of(fields, NO_SOURCES).expect_err("unsupported");
    assert_eq!(e.field(), "spec.containers[0].env[0].valueFrom.resourceFieldRef");
}
