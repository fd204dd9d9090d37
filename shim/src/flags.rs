//! The command line containerd gives a shim, parsed as Go's `flag` package does: single or
//! double dash, `-name value` or `-name=value`, booleans without a value, flags end at the first
//! argument that is not one (the action: `start`, `delete`; none means "serve").

use std::path::PathBuf;

use crate::error::{Error, Result};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub namespace: String,
    /// containerd's gRPC address (events are published there, the socket name derives from it).
    pub address: String,
    /// The containerd binary whose `publish` subcommand forwards events.
    pub publish_binary: String,
    pub id: String,
    pub bundle: Option<PathBuf>,
    pub debug: bool,
    pub version: bool,
    /// `-info`: the RuntimeInfo protobuf (containerd 2.x's introspection).
    pub info: bool,
    pub action: Option<String>,
}

impl Flags {
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Flags> {
        let mut flags = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                flags.action = Some(arg);
                // Go's flag package stops at the first non-flag; containerd passes nothing after it.
                if let Some(extra) = args.next() {
                    return Err(Error::flag("action", format!("unexpected argument {extra:?}")));
                }
                break;
            };
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            match name {
                "debug" | "v" | "version" | "info" => {
                    let on = match inline.as_deref() {
                        None | Some("true") | Some("1") => true,
                        Some("false") | Some("0") => false,
                        Some(v) => return Err(Error::flag(name, format!("invalid boolean {v:?}"))),
                    };
                    match name {
                        "debug" => flags.debug = on,
                        "info" => flags.info = on,
                        _ => flags.version = on,
                    }
                }
                "namespace" | "address" | "publish-binary" | "id" | "bundle" => {
                    let value = match inline {
                        Some(v) => v,
                        None => args.next().ok_or_else(|| Error::flag(name, "needs a value"))?,
                    };
                    match name {
                        "namespace" => flags.namespace = value,
                        "address" => flags.address = value,
                        "publish-binary" => flags.publish_binary = value,
                        "id" => flags.id = value,
                        _ => flags.bundle = Some(PathBuf::from(value)),
                    }
                }
                _ => return Err(Error::flag(name, "unknown flag")),
            }
        }
        Ok(flags)
    }

    /// The namespace, checked: it names a directory under the state root.
    pub fn checked_namespace(&self) -> Result<&str> {
        let ns = self.namespace.as_str();
        if ns.is_empty() || ns == "." || ns == ".." || ns.contains('/') || ns.contains('\0') {
            return Err(Error::flag("namespace", format!("invalid namespace {ns:?}")));
        }
        Ok(ns)
    }

    /// Where moor keeps the state of this namespace's containers (as the runc shim's
    /// /run/containerd/runc/<namespace>).
    pub fn state_root(&self) -> Result<PathBuf> {
        Ok(PathBuf::from("/run/containerd/moor").join(self.checked_namespace()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags> {
        Flags::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn containerd_start_command_line() {
        let f = parse(&[
            "-namespace",
            "default",
            "-address",
            "/run/containerd/containerd.sock",
            "-publish-binary",
            "/usr/bin/containerd",
            "-id",
            "c1",
            "-debug",
            "start",
        ])
        .unwrap();
        assert_eq!(f.namespace, "default");
        assert_eq!(f.address, "/run/containerd/containerd.sock");
        assert_eq!(f.publish_binary, "/usr/bin/containerd");
        assert_eq!(f.id, "c1");
        assert!(f.debug);
        assert_eq!(f.action.as_deref(), Some("start"));
    }

    #[test]
    fn equals_double_dash_and_no_action() {
        assert!(parse(&["-info"]).unwrap().info);
        let f = parse(&["--namespace=k8s.io", "-bundle=/b", "-debug=false", "-v"]).unwrap();
        assert_eq!(f.namespace, "k8s.io");
        assert_eq!(f.bundle, Some(PathBuf::from("/b")));
        assert!(!f.debug && f.version);
        assert_eq!(f.action, None);
    }

    #[test]
    fn bad_flags_are_named() {
        assert!(matches!(parse(&["-nope"]), Err(Error::Flag { flag, .. }) if flag == "nope"));
        assert!(matches!(parse(&["-id"]), Err(Error::Flag { flag, .. }) if flag == "id"));
        assert!(parse(&["start", "extra"]).is_err());
        for ns in ["", "..", "a/b"] {
            let f = Flags {
                namespace: ns.into(),
                ..Default::default()
            };
            assert!(f.state_root().is_err(), "{ns:?}");
        }
    }
}
