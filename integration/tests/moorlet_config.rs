//! moorlet, black box: ConfigMaps and Secrets as env and as files.

mod moorlet_common;

use moor_integration::require_root;
use moorlet_common::{pod_yaml, Agent};

#[test]
fn configmap_and_secret_as_env_and_files() {
    if moorlet_common::in_own_group() {
        return;
    }
    require_root!();
    let agent = Agent::start(None);
    let image = agent.import_busybox();
    let objects = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  colour: blue\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: s3cret\n---\n";
    let spec = "  terminationGracePeriodSeconds: 1\n  volumes:\n  - name: cfg\n    configMap:\n      name: settings\n  - name: sec\n    secret:\n      secretName: creds\n";
    let mut yaml = pod_yaml(
        "configured",
        &image,
        spec,
        &[(
            "app",
            "echo env=$COLOUR/$PASSWORD; echo file=$(cat /etc/cfg/colour)/$(cat /etc/sec/password); sleep 1000",
        )],
    );
    yaml.push_str(concat!(
        "    env:\n",
        "    - name: COLOUR\n      valueFrom:\n        configMapKeyRef: {name: settings, key: colour}\n",
        "    - name: PASSWORD\n      valueFrom:\n        secretKeyRef: {name: creds, key: password}\n",
        "    volumeMounts:\n    - {name: cfg, mountPath: /etc/cfg}\n    - {name: sec, mountPath: /etc/sec}\n",
    ));
    let out = agent.apply(&format!("{objects}{yaml}"));
    assert!(
        out.contains("configmap/settings created") && out.contains("secret/creds created"),
        "{out}"
    );
    agent.wait_running("configured");
    moor_integration::poll_until(moor_integration::TIMEOUT, "the app's output", || {
        let logs = agent.ok(&["logs", "configured"]);
        logs.contains("file=").then_some(())
    });
    assert_eq!(agent.ok(&["logs", "configured"]), "env=blue/s3cret\nfile=blue/s3cret\n");
    // The secret's value is in no event and in no answer about the pod.
    let events = agent.ok(&["events"]);
    let described = agent.ok(&["describe", "pod", "configured"]);
    assert!(
        !events.contains("s3cret") && !described.contains("s3cret"),
        "a secret leaked:\n{events}\n{described}"
    );
    let again = agent.apply(&format!("{objects}{yaml}"));
    assert!(
        again.contains("configmap/settings unchanged") && again.contains("pod/configured unchanged"),
        "{again}"
    );
}
