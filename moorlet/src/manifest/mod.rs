//! Manifests: the YAML or JSON a user would give `kubectl apply`, parsed into k8s-openapi objects.
//!
//! The text is hostile: its size, nesting, aliases and documents are bounded before any of it
//! becomes an object, and every error names the document, the object and the field. Fields
//! Kubernetes does not know are errors (kubectl's default `--validate=strict`), so a typo such
//! as `comand:` is not silently ignored.

mod honoured;
mod validate;

pub use honoured::unhonoured_fields;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use serde_json::Value;

/// The largest manifest accepted, in bytes: far above any real pod, far below what would
/// hurt the agent.
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;
/// The most objects one manifest (documents and List items together) may hold.
pub const MAX_OBJECTS: usize = 1024;
/// The deepest nesting accepted (a Pod is about 12 levels deep).
const MAX_DEPTH: usize = 48;

/// One Kubernetes object moorlet reads. Deployment and Service are parsed (so that the YAML a
/// user keeps for a cluster is accepted by `validate`), and served in part 2.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Pod(Pod),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Deployment(Deployment),
    Service(Service),
}

impl Object {
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::PersistentVolumeClaim(_) => "PersistentVolumeClaim",
            Object::Deployment(_) => "Deployment",
            Object::Service(_) => "Service",
        }
    }

    fn metadata(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Object::Pod(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::PersistentVolumeClaim(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
        }
    }

    /// metadata.name (parse refuses objects without one).
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// metadata.namespace, `default` when unset.
    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or("default")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("the manifest is {size} bytes, more than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("the manifest holds more than {limit} objects")]
    TooManyObjects { limit: usize },
    #[error("{doc}: {message}")]
    Syntax { doc: String, message: String },
    #[error("{doc}: not a Kubernetes object (a mapping with apiVersion and kind)")]
    NotAnObject { doc: String },
    #[error("{doc}: field {field} is required")]
    Missing { doc: String, field: &'static str },
    #[error("{doc} ({kind} {name}): kind {kind} of apiVersion {api_version} is not supported (moorlet reads v1 Pod, ConfigMap, Secret, PersistentVolumeClaim, Service, List and apps/v1 Deployment)")]
    UnknownKind {
        doc: String,
        api_version: String,
        kind: String,
        name: String,
    },
    #[error("{doc} ({kind} {name}): field {field}: {message}")]
    Field {
        doc: String,
        kind: String,
        name: String,
        field: String,
        message: String,
    },
}

/// Parses a manifest: JSON (one or more objects), or multi-document YAML; a v1 `List` is
/// unfolded into its items. Empty documents are skipped.
pub fn parse(text: &str) -> Result<Vec<Object>, ManifestError> {
    if text.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            size: text.len(),
            limit: MAX_MANIFEST_BYTES,
        });
    }
    // JSON is read as JSON (exact numbers, its own errors); `{...}` documents between YAML
    // separators are YAML.
    let documents = if text.trim_start().starts_with('{') {
        match json_documents(text) {
            Err(ManifestError::Syntax { .. }) => yaml_documents(text)?,
            other => other?,
        }
    } else {
        yaml_documents(text)?
    };
    let mut objects = Vec::new();
    for (i, doc) in documents.into_iter().enumerate() {
        let label = format!("document {}", i + 1);
        if doc.get("kind").and_then(Value::as_str) == Some("List") {
            let Some(items) = doc.get("items").and_then(Value::as_array) else {
                return Err(ManifestError::Missing {
                    doc: label,
                    field: "items",
                });
            };
            for (j, item) in items.iter().enumerate() {
                push(&mut objects, object(item, &format!("{label} items[{j}]"))?)?;
            }
        } else {
            push(&mut objects, object(&doc, &label)?)?;
        }
    }
    Ok(objects)
}

fn push(objects: &mut Vec<Object>, object: Object) -> Result<(), ManifestError> {
    if objects.len() >= MAX_OBJECTS {
        return Err(ManifestError::TooManyObjects { limit: MAX_OBJECTS });
    }
    objects.push(object);
    Ok(())
}

fn json_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut docs = Vec::new();
    // serde_json bounds nesting itself (128 levels); depth() below applies moorlet's bound.
    for (i, doc) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let doc = doc.map_err(|e| ManifestError::Syntax {
            doc: format!("document {}", i + 1),
            message: e.to_string(),
        })?;
        check_shape(&doc, i)?;
        docs.push(doc);
        if docs.len() > MAX_OBJECTS {
            return Err(ManifestError::TooManyObjects { limit: MAX_OBJECTS });
        }
    }
    Ok(docs)
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, ManifestError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_MANIFEST_BYTES),
            max_depth: MAX_DEPTH,
            max_documents: MAX_OBJECTS,
            max_nodes: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_total_scalar_bytes: MAX_MANIFEST_BYTES,
        },
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        // YAML 1.2's booleans: a container or volume named `n` or `no` stays a name.
        strict_booleans: true,
        // A snippet of the input could hold a Secret's data: errors carry positions only.
        with_snippet: false,
    };
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut docs = Vec::new();
    for (i, doc) in serde_saphyr::read_with_options::<_, Value>(&mut reader, options).enumerate() {
        let doc = doc.map_err(|e| ManifestError::Syntax {
            doc: format!("document {}", i + 1),
            message: e.to_string(),
        })?;
        check_shape(&doc, i)?;
        docs.push(doc);
        if docs.len() > MAX_OBJECTS {
            return Err(ManifestError::TooManyObjects { limit: MAX_OBJECTS });
        }
    }
    Ok(docs)
}

fn check_shape(doc: &Value, index: usize) -> Result<(), ManifestError> {
    let label = format!("document {}", index + 1);
    if !doc.is_object() {
        return Err(ManifestError::NotAnObject { doc: label });
    }
    if depth(doc, 0) > MAX_DEPTH {
        return Err(ManifestError::Syntax {
            doc: label,
            message: format!("nested more than {MAX_DEPTH} levels deep"),
        });
    }
    Ok(())
}

/// Nesting depth, stopping as soon as the bound is passed (so that the walk is bounded too).
fn depth(v: &Value, level: usize) -> usize {
    if level > MAX_DEPTH {
        return level;
    }
    let children: Box<dyn Iterator<Item = &Value>> = match v {
        Value::Array(a) => Box::new(a.iter()),
        Value::Object(o) => Box::new(o.values()),
        _ => return level,
    };
    children.map(|c| depth(c, level + 1)).max().unwrap_or(level)
}

fn object(doc: &Value, label: &str) -> Result<Object, ManifestError> {
    let text = |field: &str| doc.get(field).and_then(Value::as_str).map(str::to_string);
    let api_version = text("apiVersion").ok_or_else(|| ManifestError::Missing {
        doc: label.to_string(),
        field: "apiVersion",
    })?;
    let kind = text("kind").ok_or_else(|| ManifestError::Missing {
        doc: label.to_string(),
        field: "kind",
    })?;
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ctx = Ctx {
        doc: label,
        kind: &kind,
        name: &name,
    };
    let object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Pod") => Object::Pod(typed(doc, &ctx)?),
        ("v1", "ConfigMap") => Object::ConfigMap(typed(doc, &ctx)?),
        ("v1", "Secret") => Object::Secret(typed(doc, &ctx)?),
        ("v1", "PersistentVolumeClaim") => Object::PersistentVolumeClaim(typed(doc, &ctx)?),
        ("v1", "Service") => Object::Service(typed(doc, &ctx)?),
        ("apps/v1", "Deployment") => Object::Deployment(typed(doc, &ctx)?),
        _ => {
            return Err(ManifestError::UnknownKind {
                doc: label.to_string(),
                api_version,
                kind,
                name,
            })
        }
    };
    validate::object(&object).map_err(|(field, message)| ctx.error(field, message))?;
    Ok(object)
}

pub(crate) struct Ctx<'a> {
    doc: &'a str,
    kind: &'a str,
    name: &'a str,
}

impl Ctx<'_> {
    fn error(&self, field: String, message: String) -> ManifestError {
        ManifestError::Field {
            doc: self.doc.to_string(),
            kind: self.kind.to_string(),
            name: self.name.to_string(),
            field,
            message,
        }
    }
}

/// The document as a typed object; a field the type does not know is an error, found by
/// comparing the document with the object serialized back.
fn typed<T>(doc: &Value, ctx: &Ctx) -> Result<T, ManifestError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let object: T = serde_path_to_error::deserialize(doc).map_err(|e| {
        let field = e.path().to_string();
        // serde's messages quote the value; a Secret's never reaches an error (or a log).
        let message = if ctx.kind == "Secret" {
            "invalid value (not shown)".to_string()
        } else {
            e.into_inner().to_string()
        };
        ctx.error(field, message)
    })?;
    let back = serde_json::to_value(&object).map_err(|e| ctx.error(String::new(), e.to_string()))?;
    if let Some(field) = unknown_field(doc, &back, String::new()) {
        return Err(ctx.error(field, "unknown field".to_string()));
    }
    Ok(object)
}

fn unknown_field(doc: &Value, back: &Value, path: String) -> Option<String> {
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => d.iter().find_map(|(k, v)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            match b.get(k) {
                None if !v.is_null() => Some(p),
                None => None,
                Some(bv) => unknown_field(v, bv, p),
            }
        }),
        (Value::Array(d), Value::Array(b)) => d
            .iter()
            .zip(b.iter())
            .enumerate()
            .find_map(|(i, (dv, bv))| unknown_field(dv, bv, format!("{path}[{i}]"))),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
