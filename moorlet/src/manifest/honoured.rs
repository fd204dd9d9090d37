//! What moorlet honours, as a tree of field names; `unhonoured_fields` names every field set in
//! an object that falls outside it, so that `moorlet validate --strict` never lets a user
//! believe a field took effect when it did not. Probes are part 2.

use super::Object;
use serde_json::Value;

/// A node of the allow-list.
enum Node {
    /// The field and everything under it is honoured.
    Any,
    /// An object: these fields, each with its own node.
    Fields(&'static [(&'static str, Node)]),
    /// A list: each item checked against the node.
    Each(&'static Node),
    /// A map with free keys (`resources.limits`): only these keys are honoured.
    Keys(&'static [&'static str]),
}

use Node::{Any, Each, Fields, Keys};

const METADATA: Node = Fields(&[
    ("name", Any),
    ("namespace", Any),
    ("labels", Any),
    ("annotations", Any),
    ("uid", Any),
]);

const KEY_REF: Node = Fields(&[("name", Any), ("key", Any), ("optional", Any)]);
const FIELD_REF: Node = Fields(&[("fieldPath", Any), ("apiVersion", Any)]);
const RESOURCE_REF: Node = Fields(&[("resource", Any), ("containerName", Any), ("divisor", Any)]);
const ENV: Node = Fields(&[
    ("name", Any),
    ("value", Any),
    (
        "valueFrom",
        Fields(&[
            ("configMapKeyRef", KEY_REF),
            ("secretKeyRef", KEY_REF),
            ("fieldRef", FIELD_REF),
            ("resourceFieldRef", RESOURCE_REF),
        ]),
    ),
]);
const NAME_REF: Node = Fields(&[("name", Any), ("optional", Any)]);
const ENV_FROM: Node = Fields(&[("prefix", Any), ("configMapRef", NAME_REF), ("secretRef", NAME_REF)]);
const CPU_MEMORY: Node = Keys(&["cpu", "memory"]);
const SECCOMP: Node = Fields(&[("type", Any), ("localhostProfile", Any)]);
const CONTAINER_SECURITY: Node = Fields(&[
    ("runAsUser", Any),
    ("runAsGroup", Any),
    ("runAsNonRoot", Any),
    ("readOnlyRootFilesystem", Any),
    ("privileged", Any),
    ("allowPrivilegeEscalation", Any),
    ("capabilities", Fields(&[("add", Any), ("drop", Any)])),
    ("seccompProfile", SECCOMP),
]);
const HANDLER: Node = Fields(&[
    ("exec", Fields(&[("command", Any)])),
    (
        "httpGet",
        Fields(&[
            ("path", Any),
            ("port", Any),
            ("host", Any),
            ("scheme", Any),
            ("httpHeaders", Any),
        ]),
    ),
    ("sleep", Fields(&[("seconds", Any)])),
]);
const CONTAINER: Node = Fields(&[
    ("name", Any),
    ("image", Any),
    ("imagePullPolicy", Any),
    ("command", Any),
    ("args", Any),
    ("workingDir", Any),
    ("env", Each(&ENV)),
    ("envFrom", Each(&ENV_FROM)),
    (
        "ports",
        Each(&Fields(&[
            ("containerPort", Any),
            ("hostPort", Any),
            ("hostIP", Any),
            ("protocol", Any),
            ("name", Any),
        ])),
    ),
    ("resources", Fields(&[("limits", CPU_MEMORY), ("requests", CPU_MEMORY)])),
    ("securityContext", CONTAINER_SECURITY),
    (
        "volumeMounts",
        Each(&Fields(&[
            ("name", Any),
            ("mountPath", Any),
            ("readOnly", Any),
            ("subPath", Any),
            ("subPathExpr", Any),
            ("mountPropagation", Any),
        ])),
    ),
    (
        "lifecycle",
        Fields(&[("preStop", HANDLER), ("postStart", HANDLER), ("stopSignal", Any)]),
    ),
    ("terminationMessagePath", Any),
    ("restartPolicy", Any),
]);
const ITEMS: Node = Each(&Fields(&[("key", Any), ("path", Any), ("mode", Any)]));
const DOWNWARD_ITEMS: Node = Each(&Fields(&[
    ("path", Any),
    ("fieldRef", FIELD_REF),
    ("resourceFieldRef", RESOURCE_REF),
    ("mode", Any),
]));
const CONFIG_MAP_VOLUME: Node = Fields(&[("name", Any), ("items", ITEMS), ("defaultMode", Any), ("optional", Any)]);
const SECRET_VOLUME: Node = Fields(&[
    ("secretName", Any),
    ("items", ITEMS),
    ("defaultMode", Any),
    ("optional", Any),
]);
const VOLUME: Node = Fields(&[
    ("name", Any),
    ("emptyDir", Fields(&[("medium", Any), ("sizeLimit", Any)])),
    ("hostPath", Fields(&[("path", Any), ("type", Any)])),
    ("configMap", CONFIG_MAP_VOLUME),
    ("secret", SECRET_VOLUME),
    (
        "downwardAPI",
        Fields(&[("items", DOWNWARD_ITEMS), ("defaultMode", Any)]),
    ),
    (
        "projected",
        Fields(&[
            (
                "sources",
                Each(&Fields(&[
                    (
                        "configMap",
                        Fields(&[("name", Any), ("items", ITEMS), ("optional", Any)]),
                    ),
                    ("secret", Fields(&[("name", Any), ("items", ITEMS), ("optional", Any)])),
                    ("downwardAPI", Fields(&[("items", DOWNWARD_ITEMS)])),
                ])),
            ),
            ("defaultMode", Any),
        ]),
    ),
    (
        "persistentVolumeClaim",
        Fields(&[("claimName", Any), ("readOnly", Any)]),
    ),
]);
const POD_SECURITY: Node = Fields(&[
    ("runAsUser", Any),
    ("runAsGroup", Any),
    ("runAsNonRoot", Any),
    ("supplementalGroups", Any),
    ("fsGroup", Any),
    ("sysctls", Any),
    ("seccompProfile", SECCOMP),
]);
const POD: Node = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    (
        "spec",
        Fields(&[
            ("containers", Each(&CONTAINER)),
            ("initContainers", Each(&CONTAINER)),
            ("volumes", Each(&VOLUME)),
            ("restartPolicy", Any),
            ("terminationGracePeriodSeconds", Any),
            ("hostname", Any),
            ("hostAliases", Any),
            ("hostNetwork", Any),
            ("hostPID", Any),
            ("hostIPC", Any),
            ("shareProcessNamespace", Any),
            ("securityContext", POD_SECURITY),
        ]),
    ),
    // Written by moorlet, not by the user: ignored on input.
    ("status", Any),
]);
const CONFIG: Node = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    ("data", Any),
    ("binaryData", Any),
    ("stringData", Any),
    ("type", Any),
    ("immutable", Any),
]);
const CLAIM: Node = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    // A claim is a local directory: the requested size is accepted as a request, not enforced.
    (
        "spec",
        Fields(&[
            ("accessModes", Any),
            ("resources", Fields(&[("requests", Keys(&["storage"]))])),
            ("volumeMode", Any),
        ]),
    ),
    ("status", Any),
]);
/// Deployment and Service: parsed, served in part 2.
const PART_TWO: Node = Fields(&[
    ("apiVersion", Any),
    ("kind", Any),
    ("metadata", METADATA),
    ("status", Any),
]);

/// Every field set in `object` that moorlet does not honour, by path
/// (`spec.containers[0].readinessProbe`), sorted by path within each object.
pub fn unhonoured_fields(object: &Object) -> Vec<String> {
    let (value, node) = match object {
        Object::Pod(o) => (serde_json::to_value(o), &POD),
        Object::ConfigMap(o) => (serde_json::to_value(o), &CONFIG),
        Object::Secret(o) => (serde_json::to_value(o), &CONFIG),
        Object::PersistentVolumeClaim(o) => (serde_json::to_value(o), &CLAIM),
        Object::Deployment(o) => (serde_json::to_value(o), &PART_TWO),
        Object::Service(o) => (serde_json::to_value(o), &PART_TWO),
    };
    let mut out = Vec::new();
    match value {
        Ok(v) => walk(&v, node, "", &mut out),
        // Serializing a parsed object cannot fail; should it, nothing can be said to be honoured.
        Err(_) => out.push(String::new()),
    }
    out
}

/// Fields whose Kubernetes default is what moorlet does anyway: written out by tools
/// (`kubectl ... -o yaml`), they ask for nothing moorlet ignores.
const DEFAULTS: &[(&str, &str)] = &[
    ("dnsPolicy", "ClusterFirst"),
    ("terminationMessagePolicy", "File"),
    ("schedulerName", "default-scheduler"),
    ("procMount", "Default"),
    ("enableServiceLinks", "true"),
    ("enableServiceLinks", "false"),
    ("automountServiceAccountToken", "false"),
    ("stdin", "false"),
    ("tty", "false"),
    ("stdinOnce", "false"),
    ("priority", "0"),
    ("hostUsers", "true"),
    ("setHostnameAsFQDN", "false"),
];

fn is_default(key: &str, v: &Value) -> bool {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        _ => return false,
    };
    DEFAULTS.iter().any(|(k, d)| *k == key && *d == text)
}

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(v: &Value, node: &Node, path: &str, out: &mut Vec<String>) {
    match (node, v) {
        (Any, _) => {}
        (Fields(fields), Value::Object(o)) => {
            for (k, child) in o {
                if !is_set(child) || is_default(k, child) {
                    continue;
                }
                match fields.iter().find(|(name, _)| name == k) {
                    Some((_, n)) => walk(child, n, &join(path, k), out),
                    None => out.push(join(path, k)),
                }
            }
        }
        (Each(n), Value::Array(a)) => {
            for (i, item) in a.iter().enumerate() {
                walk(item, n, &format!("{path}[{i}]"), out);
            }
        }
        (Keys(keys), Value::Object(o)) => {
            for (k, child) in o {
                if is_set(child) && !keys.contains(&k.as_str()) {
                    out.push(join(path, k));
                }
            }
        }
        // A shape the allow-list does not expect: the whole field is unknown to moorlet.
        _ => out.push(path.to_string()),
    }
}
