use super::*;
use crate::spec::caps::{runtime_caps, DEFAULT_CAPS};
use crate::spec::security::{MASKED_PATHS, READONLY_PATHS};

fn caps(spec: &Value) -> Vec<String> {
    let c = &spec["process"]["capabilities"];
    let set = |name: &str| {
        let mut s = strings(&c[name]);
        s.sort();
        s
    };
    assert_eq!(set("effective"), set("bounding"));
    assert_eq!(set("permitted"), set("bounding"));
    assert!(
        c["inheritable"].is_null() && c["ambient"].is_null(),
        "never inheritable or ambient: {c}"
    );
    set("bounding")
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn capabilities_add_drop_all() {
    let without = |drop: &[&str]| {
        sorted(
            &DEFAULT_CAPS
                .iter()
                .copied()
                .filter(|c| !drop.contains(c))
                .collect::<Vec<_>>(),
        )
    };
    let with = |add: &[&str]| sorted(&[DEFAULT_CAPS, add].concat());
    let cases: Vec<(&str, Result<Vec<String>, &str>)> = vec![
        ("", Ok(sorted(DEFAULT_CAPS))),
        ("{drop: [ALL]}", Ok(vec![])),
        ("{drop: [all]}", Ok(vec![])),
        (
            "{drop: [ALL], add: [NET_BIND_SERVICE]}",
            Ok(vec!["CAP_NET_BIND_SERVICE".into()]),
        ),
        (
            "{add: [NET_ADMIN, SYS_TIME]}",
            Ok(with(&["CAP_NET_ADMIN", "CAP_SYS_TIME"])),
        ),
        ("{add: [CAP_NET_ADMIN]}", Ok(with(&["CAP_NET_ADMIN"]))),
        ("{drop: [NET_RAW, chown]}", Ok(without(&["CAP_NET_RAW", "CAP_CHOWN"]))),
        (
            "{add: [ALL], drop: [CHOWN]}",
            Ok(sorted(
                &runtime_caps()
                    .iter()
                    .map(String::as_str)
                    .filter(|c| *c != "CAP_CHOWN")
                    .collect::<Vec<_>>(),
            )),
        ),
        ("{add: [NET_ADMIN], drop: [NET_ADMIN]}", Ok(sorted(DEFAULT_CAPS))),
        (
            "{add: [SYS_SUPERPOWER]}",
            Err("spec.containers[0].securityContext.capabilities.add[0]"),
        ),
        (
            "{drop: [KILL, NOPE]}",
            Err("spec.containers[0].securityContext.capabilities.drop[1]"),
        ),
    ];
    for (c, want) in cases {
        let case = Case::new(one(&format!("    securityContext: {{capabilities: {c}}}\n")));
        match want {
            Ok(want) => assert_eq!(caps(&case.spec()), want, "{c}"),
            Err(field) => assert_eq!(case.error().field(), field, "{c}"),
        }
    }
}

/// Kubernetes: no_new_privs only with allowPrivilegeEscalation: false, which privileged and
/// CAP_SYS_ADMIN forbid.
#[test]
fn allow_privilege_escalation() {
    let cases: &[(&str, Result<bool, &str>)] = &[
        ("{}", Ok(false)),
        ("{allowPrivilegeEscalation: true}", Ok(false)),
        ("{allowPrivilegeEscalation: false}", Ok(true)),
        (
            "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
            Ok(true),
        ),
        ("{privileged: true}", Ok(false)),
        (
            "{privileged: true, allowPrivilegeEscalation: false}",
            Err("spec.containers[0].securityContext.allowPrivilegeEscalation"),
        ),
        (
            "{allowPrivilegeEscalation: false, capabilities: {add: [SYS_ADMIN]}}",
            Err("spec.containers[0].securityContext.allowPrivilegeEscalation"),
        ),
    ];
    for (sc, want) in cases {
        let case = Case::new(one(&format!("    securityContext: {sc}\n")));
        match want {
            Ok(nnp) => assert_eq!(case.spec()["process"]["noNewPrivileges"], *nnp, "{sc}"),
            Err(field) => assert_eq!(case.error().field(), *field, "{sc}"),
        }
    }
}

#[test]
fn privileged_versus_default() {
    let plain = Case::new(one("")).spec();
    assert_eq!(strings(&plain["linux"]["maskedPaths"]), MASKED_PATHS);
    assert_eq!(strings(&plain["linux"]["readonlyPaths"]), READONLY_PATHS);
    assert_eq!(
        plain["linux"]["resources"]["devices"],
        serde_json::json!([{"allow": false, "access": "rwm"}])
    );
    let sys = plain["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == "/sys"))
        .cloned()
        .unwrap_or_default();
    assert!(strings(&sys["options"]).contains(&"ro".to_string()));

    let p = Case::new(one(
        "    securityContext: {privileged: true, seccompProfile: {type: RuntimeDefault}}\n",
    ))
    .spec();
    let all = runtime_caps();
    assert_eq!(caps(&p), sorted(&all.iter().map(String::as_str).collect::<Vec<_>>()));
    assert!(p["linux"]["maskedPaths"].is_null() && p["linux"]["readonlyPaths"].is_null());
    assert!(p["linux"]["seccomp"].is_null(), "privileged runs unconfined");
    assert_eq!(
        p["linux"]["resources"]["devices"],
        serde_json::json!([{"allow": true, "access": "rwm"}])
    );
    let devices = p["linux"]["devices"].as_array().cloned().unwrap_or_default();
    assert!(
        devices
            .iter()
            .any(|d| d["path"] == "/dev/null" && d["type"] == "c" && d["major"] == 1 && d["minor"] == 3),
        "{devices:?}"
    );
    let sys = p["mounts"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["destination"] == "/sys"))
        .cloned()
        .unwrap_or_default();
    assert!(strings(&sys["options"]).contains(&"rw".to_string()));
}

#[test]
fn seccomp_profiles() {
    let dir = TempDir::new("seccomp");
    dir.write("profiles/audit.json", r#"{"defaultAction": "SCMP_ACT_LOG"}"#);
    dir.write("bad.json", "{not json");
    let outside = TempDir::new("seccomp-outside");
    outside.write("p.json", r#"{"defaultAction": "SCMP_ACT_ALLOW"}"#);
    std::os::unix::fs::symlink(outside.0.join("p.json"), dir.0.join("escape.json")).expect("symlink");
    std::os::unix::fs::symlink("../seccomp-outside/p.json", dir.0.join("escape2.json")).expect("symlink");
    std::fs::create_dir(dir.0.join("adir")).expect("mkdir");
    let default = serde_json::to_value(runtime_default_seccomp()).expect("json");
    let cases: &[(&str, &str, Result<Option<&str>, &str>)] = &[
        // (pod seccompProfile, container seccompProfile, defaultAction or error field)
        ("", "", Ok(Some("default"))),
        ("{type: Unconfined}", "", Ok(None)),
        ("{type: Unconfined}", "{type: RuntimeDefault}", Ok(Some("default"))),
        ("{type: RuntimeDefault}", "{type: Unconfined}", Ok(None)),
        (
            "",
            "{type: Localhost, localhostProfile: profiles/audit.json}",
            Ok(Some("SCMP_ACT_LOG")),
        ),
        (
            "{type: Localhost, localhostProfile: profiles/audit.json}",
            "",
            Ok(Some("SCMP_ACT_LOG")),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: ../x.json}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: /etc/passwd}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: escape.json}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: escape2.json}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: adir}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: bad.json}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        (
            "",
            "{type: Localhost, localhostProfile: missing.json}",
            Err("spec.containers[0].securityContext.seccompProfile.localhostProfile"),
        ),
        ("{type: Magic}", "", Err("spec.securityContext.seccompProfile.type")),
    ];
    for (pod_p, c_p, want) in cases {
        let pod_sc = if pod_p.is_empty() {
            String::new()
        } else {
            format!("  securityContext: {{seccompProfile: {pod_p}}}\n")
        };
        let sc = if c_p.is_empty() {
            String::new()
        } else {
            format!("    securityContext: {{seccompProfile: {c_p}}}\n")
        };
        let mut case = Case::new(pod(&format!(
            "{pod_sc}  containers:\n  - name: app\n    image: busybox\n{sc}"
        )));
        case.seccomp_dir = Some(dir.0.clone());
        match want {
            Ok(None) => assert!(case.spec()["linux"]["seccomp"].is_null(), "{pod_p} {c_p}"),
            Ok(Some("default")) => assert_eq!(case.spec()["linux"]["seccomp"], default, "{pod_p} {c_p}"),
            Ok(Some(action)) => assert_eq!(
                case.spec()["linux"]["seccomp"]["defaultAction"],
                *action,
                "{pod_p} {c_p}"
            ),
            Err(field) => assert_eq!(case.error().field(), *field, "{pod_p} {c_p}"),
        }
    }
    // Without a seccomp directory, Localhost is refused.
    let case = Case::new(one(
        "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}\n",
    ));
    assert!(case.error().to_string().contains("not configured"));
}

#[test]
fn sysctls() {
    let cases: &[(&str, bool, bool, Result<&[(&str, &str)], &str>)] = &[
        // (sysctls, hostNetwork, hostIPC, sysctl map or error field)
        (
            "[{name: net.ipv4.ip_unprivileged_port_start, value: '0'}]",
            false,
            false,
            Ok(&[("net.ipv4.ip_unprivileged_port_start", "0")]),
        ),
        (
            "[{name: net/ipv4/conf/eth0.100/forwarding, value: '1'}]",
            false,
            false,
            Ok(&[("net.ipv4.conf.eth0/100.forwarding", "1")]),
        ),
        (
            "[{name: kernel.shm_rmid_forced, value: '1'}, {name: fs.mqueue.msg_max, value: '20'}]",
            false,
            false,
            Ok(&[("fs.mqueue.msg_max", "20"), ("kernel.shm_rmid_forced", "1")]),
        ),
        (
            "[{name: net.ipv4.ip_forward, value: '1'}]",
            true,
            false,
            Err("spec.securityContext.sysctls[0].name"),
        ),
        (
            "[{name: kernel.msgmax, value: '1'}]",
            false,
            true,
            Err("spec.securityContext.sysctls[0].name"),
        ),
        (
            "[{name: kernel.msgmax, value: '1'}, {name: kernel.hostname, value: x}]",
            false,
            false,
            Err("spec.securityContext.sysctls[1].name"),
        ),
        (
            "[{name: vm.overcommit_memory, value: '1'}]",
            false,
            false,
            Err("spec.securityContext.sysctls[0].name"),
        ),
        (
            "[{name: net.core.somaxconn, value: \"1\\n2\"}]",
            false,
            false,
            Err("spec.securityContext.sysctls[0].value"),
        ),
    ];
    for (list, host_net, host_ipc, want) in cases {
        let mut case = Case::new(pod(&format!(
            "  securityContext: {{sysctls: {list}}}\n  containers:\n  - name: app\n    image: busybox\n"
        )));
        case.host_net = *host_net;
        case.host_ipc = *host_ipc;
        case.pod.spec.as_mut().expect("spec").host_network = Some(*host_net);
        case.pod.spec.as_mut().expect("spec").host_ipc = Some(*host_ipc);
        match want {
            Ok(map) => {
                let want: serde_json::Map<String, Value> =
                    map.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect();
                assert_eq!(case.spec()["linux"]["sysctl"], Value::Object(want), "{list}");
            }
            Err(field) => assert_eq!(case.error().field(), *field, "{list}"),
        }
    }
}
