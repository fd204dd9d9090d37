use super::*;

const POD: &str =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

fn err(text: &str) -> String {
    match parse(text) {
        Ok(o) => panic!("accepted: {o:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_pod_parses() {
    let objects = parse(POD).expect("parse");
    assert_eq!(objects.len(), 1);
    assert_eq!(
        (objects[0].kind(), objects[0].name(), objects[0].namespace()),
        ("Pod", "web", "default")
    );
}

#[test]
fn every_kind_and_form() {
    let multi = format!(
        "---\n{POD}---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cfg, namespace: prod}}\ndata: {{a: '1'}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\ndata: {{pw: aHVudGVyMg==}}\nstringData: {{u: me}}\n\
         ---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\nspec: {{accessModes: [ReadWriteOnce]}}\n\
         ---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec: {{selector: {{}}, template: {{}}}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc}}\nspec: {{ports: [{{port: 80}}]}}\n"
    );
    let kinds: Vec<_> = parse(&multi)
        .expect("parse")
        .iter()
        .map(|o| (o.kind(), o.name().to_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Pod", "web"),
            ("ConfigMap", "cfg"),
            ("Secret", "s"),
            ("PersistentVolumeClaim", "data"),
            ("Deployment", "d"),
            ("Service", "svc")
        ]
        .map(|(k, n)| (k, n.to_string()))
    );
    let objects = parse(&multi).expect("parse");
    assert_eq!(objects[1].namespace(), "prod");
    let Object::Secret(s) = &objects[2] else {
        panic!("not a secret")
    };
    assert_eq!(
        s.data.as_ref().and_then(|d| d.get("pw")).map(|b| b.0.as_slice()),
        Some(&b"hunter2"[..])
    );

    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},"spec":{"containers":[{"name":"c","image":"i"}]}}
                  {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"k"}}"#;
    assert_eq!(parse(json).expect("json").len(), 2);

    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: a}}\n- {}",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b"}}"#
    );
    let names: Vec<_> = parse(&list)
        .expect("list")
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let json_in_yaml = "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"a\"}}\n---\n{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n";
    assert_eq!(
        parse(json_in_yaml)
            .expect("JSON documents between YAML separators")
            .len(),
        2
    );
    // YAML 1.2 booleans: `no` and `n` are names, not false.
    parse(&POD.replace("name: app", "name: n")).expect("a container named n");
    parse(&POD.replace("name: app", "name: no")).expect("a container named no");
    // Numbers where Kubernetes takes quantities, as kubectl accepts them.
    let q = POD.replace(
        "image: busybox",
        "image: busybox\n    resources: {limits: {cpu: 1, memory: 1.5}}",
    );
    parse(&q).expect("numeric quantities");
}

#[test]
fn errors_name_document_object_and_field() {
    let cases: &[(&str, &[&str])] = &[
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    comand: [sh]\n",
            &["document 2", "Pod web", "spec.containers[0].comand", "unknown field"],
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: app\n    image: x\n    ports: [{containerPort: eighty}]\n",
            &["document 1", "Pod web", "spec.containers[0].ports[0].containerPort"],
        ),
        ("apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n", &["document 1", "Widget w", "not supported"]),
        ("apiVersion: apps/v1\nkind: Pod\nmetadata: {name: w}\n", &["apiVersion apps/v1"]),
        ("kind: Pod\nmetadata: {name: w}\n", &["document 1", "apiVersion is required"]),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n", &["metadata.name", "Bad_Name"]),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: ../etc}\n", &["metadata.namespace"]),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", &["metadata.name", "required"]),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n", &["spec.containers", "at least one"]),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: i}, {name: a, image: i}]}\n",
            &["spec.containers[1].name", "duplicate"],
        ),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a}]}\n", &["spec.containers[0].image"]),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: i}], volumes: [{name: ../x}]}\n",
            &["spec.volumes[0].name"],
        ),
        ("- just\n- a list\n", &["document 1", "not a Kubernetes object"]),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostname: ../../x, containers: [{name: a, image: i}]}\n", &["spec.hostname"]),
        ("apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: a}\n", &["document 1"]),
        ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Nope, metadata: {name: n}}\n", &["document 1 items[0]", "Nope"]),
        ("{\"apiVersion\": \"v1\", ", &["document 1"]),
        ("a: [unclosed\n", &["document 1"]),
    ];
    for (text, wants) in cases {
        let e = err(text);
        for want in *wants {
            assert!(e.contains(want), "{e:?} lacks {want:?} for {text:?}");
        }
    }
}

#[test]
fn hostile_input_is_bounded() {
    let big = format!("{POD}    args: [\"{}\"]\n", "x".repeat(MAX_MANIFEST_BYTES));
    assert!(matches!(parse(&big), Err(ManifestError::TooLarge { .. })));

    let deep_yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {}{}\n",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    assert!(parse(&deep_yaml).is_err());
    let deep_json = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse(&deep_json).is_err());
    let mut deep_block = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nx:\n");
    for i in 1..200 {
        deep_block.push_str(&format!("{}k:\n", " ".repeat(i)));
    }
    assert!(parse(&deep_block).is_err());

    // A billion laughs: each level refers to the one before ten times.
    let mut bomb = String::from("a0: &a0 [\"lol\"]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    bomb.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
    assert!(parse(&bomb).is_err());

    let many_json = "{\"a\": 1}\n".repeat(MAX_OBJECTS + 1);
    assert!(
        matches!(parse(&many_json), Err(ManifestError::TooManyObjects { .. })),
        "JSON documents are counted too"
    );
    let many = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n".repeat(MAX_OBJECTS + 1);
    assert!(parse(&many).is_err());
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n{}",
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n".repeat(MAX_OBJECTS + 1)
    );
    assert!(matches!(parse(&list), Err(ManifestError::TooManyObjects { .. })));
    for junk in [
        "",
        "---\n---\n",
        "\0\0\0",
        "!!binary AAAA",
        "? [a]\n: b\n",
        "*undefined\n",
        "&a [*a]\n",
    ] {
        // Whatever the verdict, never a panic, and nothing for an empty manifest.
        let r = parse(junk);
        assert!(r.as_ref().map_or(true, |o| o.is_empty()), "{junk:?}: {r:?}");
    }
}

#[test]
fn secret_values_stay_out_of_errors() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {pw: hunter2-not-base64!}\n";
    let e = err(text);
    assert!(e.contains("data.pw") && !e.contains("hunter2"), "{e}");
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: hunter2\n";
    let e = err(text);
    assert!(e.contains("immutable") && !e.contains("hunter2"), "{e}");
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {pw: [hunter2]}\n";
    let e = err(text);
    assert!(e.contains("stringData.pw") && !e.contains("hunter2"), "{e}");
}

#[test]
fn unhonoured_fields_are_named_by_path() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: web}\n  finalizers: [x]\nspec:\n  \
        nodeSelector: {disk: ssd}\n  affinity: {nodeAffinity: {}}\n  tolerations: [{key: k}]\n  dnsPolicy: ClusterFirst\n  \
        restartPolicy: Always\n  hostNetwork: false\n  hostUsers: true\n  securityContext: {runAsUser: 1000, fsGroupChangePolicy: Always}\n  \
        volumes:\n  - {name: v, emptyDir: {}}\n  - {name: n, nfs: {server: s, path: /}}\n  containers:\n  - name: app\n    image: busybox\n    \
        command: [sh]\n    readinessProbe: {exec: {command: [\"true\"]}}\n    livenessProbe: {exec: {command: [\"true\"]}}\n    \
        terminationMessagePolicy: File\n    resources: {limits: {cpu: 1, memory: 1Gi, hugepages-2Mi: 2Mi}, requests: {ephemeral-storage: 1Gi}}\n    \
        securityContext: {capabilities: {drop: [ALL]}, seLinuxOptions: {level: s0}}\n    \
        lifecycle: {preStop: {tcpSocket: {port: 80}}}\n  initContainers:\n  - name: init\n    image: busybox\n    startupProbe: {exec: {command: [\"true\"]}}\n";
    let objects = parse(text).expect("parse");
    let got = unhonoured_fields(&objects[0]);
    let want = [
        "metadata.finalizers",
        "spec.affinity",
        "spec.containers[0].lifecycle.preStop.tcpSocket",
        "spec.containers[0].livenessProbe",
        "spec.containers[0].readinessProbe",
        "spec.containers[0].resources.limits.hugepages-2Mi",
        "spec.containers[0].resources.requests.ephemeral-storage",
        "spec.containers[0].securityContext.seLinuxOptions",
        "spec.initContainers[0].startupProbe",
        "spec.nodeSelector",
        "spec.securityContext.fsGroupChangePolicy",
        "spec.tolerations",
        "spec.volumes[1].nfs",
    ];
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want, "{got:?}");

    // A pod using only honoured fields has nothing to report.
    assert!(unhonoured_fields(&parse(POD).expect("parse")[0]).is_empty());
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\nimmutable: true\n";
    assert!(unhonoured_fields(&parse(cm).expect("parse")[0]).is_empty());
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: 80}]}\n";
    assert_eq!(unhonoured_fields(&parse(svc).expect("parse")[0]), ["spec"]);
}
