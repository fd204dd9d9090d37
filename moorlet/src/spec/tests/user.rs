use super::*;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nwww:x:33:33::/var/www:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
const GROUP: &str =
    "root:x:0:\ndaemon:x:1:\nwww:x:33:\napp:x:1000:\nstaff:x:50:app,www\nvideo:x:44:app\naudio:x:63:other\n";

fn rootfs() -> TempDir {
    let dir = TempDir::new("user");
    dir.write("etc/passwd", PASSWD);
    dir.write("etc/group", GROUP);
    dir
}

fn user(spec: &Value) -> (u64, u64, Vec<u64>) {
    let u = &spec["process"]["user"];
    let gids = u["additionalGids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    (
        u["uid"].as_u64().unwrap_or(999_999),
        u["gid"].as_u64().unwrap_or(999_999),
        gids,
    )
}

#[test]
fn users_and_groups() {
    let root = rootfs();
    type Want = Result<(u64, u64, &'static [u64]), &'static str>;
    let cases: &[(&str, &str, Option<&str>, Want)] = &[
        // (pod securityContext, container fields, image User, (uid, gid, additionalGids) or error field)
        ("", "", None, Ok((0, 0, &[0]))),
        ("", "", Some("1000"), Ok((1000, 1000, &[1000, 50, 44]))),
        ("", "", Some("app"), Ok((1000, 1000, &[1000, 50, 44]))),
        ("", "", Some("www:staff"), Ok((33, 50, &[50]))),
        ("", "", Some("1000:44"), Ok((1000, 44, &[44, 50]))),
        ("", "", Some("4242"), Ok((4242, 0, &[0]))),
        ("", "", Some("4242:7"), Ok((4242, 7, &[7]))),
        ("", "", Some("nobody"), Err("image config User")),
        ("", "", Some("app:nogroup"), Err("image config User")),
        ("{runAsUser: 33}", "", Some("app"), Ok((33, 33, &[33, 50]))),
        (
            "{runAsUser: 33}",
            "    securityContext: {runAsUser: 1000}\n",
            None,
            Ok((1000, 1000, &[1000, 50, 44])),
        ),
        (
            "{runAsUser: 1000, runAsGroup: 3000}",
            "",
            None,
            Ok((1000, 3000, &[3000, 50, 44])),
        ),
        (
            "{runAsGroup: 3000}",
            "    securityContext: {runAsUser: 5000, runAsGroup: 6000}\n",
            None,
            Ok((5000, 6000, &[6000])),
        ),
        (
            "{runAsUser: 5000, supplementalGroups: [4, 5000], fsGroup: 2000}",
            "",
            None,
            Ok((5000, 0, &[0, 4, 5000, 2000])),
        ),
        ("{runAsUser: -1}", "", None, Err("spec.securityContext.runAsUser")),
        (
            "",
            "    securityContext: {runAsGroup: 4294967296}\n",
            None,
            Err("spec.containers[0].securityContext.runAsGroup"),
        ),
        (
            "{supplementalGroups: [-5]}",
            "",
            None,
            Err("spec.securityContext.supplementalGroups[0]"),
        ),
    ];
    for (pod_sc, fields, image_user, want) in cases {
        let sc = if pod_sc.is_empty() {
            String::new()
        } else {
            format!("  securityContext: {pod_sc}\n")
        };
        let mut case = Case::new(pod(&format!(
            "{sc}  containers:\n  - name: app\n    image: busybox\n{fields}"
        )));
        case.rootfs = root.0.clone();
        case.image.user = image_user.map(str::to_string);
        match want {
            Ok((uid, gid, extra)) => assert_eq!(
                user(&case.spec()),
                (*uid, *gid, extra.to_vec()),
                "{pod_sc} {fields} {image_user:?}"
            ),
            Err(field) => assert_eq!(case.error().field(), *field, "{pod_sc} {fields} {image_user:?}"),
        }
    }
}

/// The kubelet's verifyRunAsNonRoot, and its messages.
#[test]
fn run_as_non_root() {
    let root = rootfs();
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        // (pod securityContext, container securityContext, image User, error message start)
        ("{runAsNonRoot: true}", "", None, Some("container has runAsNonRoot and image will run as root (pod: \"web_default(1234-5678)\", container: app)")),
        ("{runAsNonRoot: true}", "", Some("0"), Some("container has runAsNonRoot and image will run as root")),
        ("{runAsNonRoot: true}", "", Some("0:1000"), Some("container has runAsNonRoot and image will run as root")),
        ("{runAsNonRoot: true}", "", Some("1000"), None),
        ("{runAsNonRoot: true}", "", Some("app"), Some("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root")),
        ("{runAsNonRoot: true, runAsUser: 0}", "", Some("1000"), Some("container's runAsUser breaks non-root policy")),
        ("{runAsNonRoot: true}", "{runAsUser: 0}", Some("1000"), Some("container's runAsUser breaks non-root policy")),
        ("{runAsNonRoot: true}", "{runAsUser: 1000}", None, None),
        ("{runAsNonRoot: true}", "{runAsNonRoot: false}", None, None),
        ("", "{runAsNonRoot: true}", None, Some("container has runAsNonRoot and image will run as root")),
        ("{runAsNonRoot: false}", "", None, None),
    ];
    for (pod_sc, sc, image_user, want) in cases {
        let sc = if sc.is_empty() {
            String::new()
        } else {
            format!("    securityContext: {sc}\n")
        };
        let p = pod(&format!(
            "  securityContext: {pod_sc}\n  containers:\n  - name: app\n    image: busybox\n{sc}"
        ));
        let mut case = Case::new(p);
        case.rootfs = root.0.clone();
        case.image.user = image_user.map(str::to_string);
        match (case.build(), want) {
            (Ok(_), None) => {}
            (Err(e @ SpecError::NonRoot { .. }), Some(msg)) => {
                assert!(e.to_string().starts_with(msg), "{e}");
                assert!(e.field().ends_with("runAsNonRoot"), "{}", e.field());
            }
            (got, want) => panic!("{pod_sc} {sc} {image_user:?}: got {got:?}, want {want:?}"),
        }
    }
}

/// The rootfs is the image's: a symlink in it is resolved inside it, never on the host.
#[test]
fn passwd_lookups_stay_in_the_rootfs() {
    let root = TempDir::new("hostile");
    let outside = TempDir::new("outside");
    outside.write("passwd", "escape:x:4242:4242::/:/bin/sh\n");
    std::fs::create_dir_all(root.0.join("etc")).expect("etc");
    let target = outside.0.join("passwd");
    std::os::unix::fs::symlink(&target, root.0.join("etc/passwd")).expect("symlink");
    let mut case = Case::new(one(""));
    case.rootfs = root.0.clone();
    case.image.user = Some("escape".into());
    assert_eq!(case.error().field(), "image config User", "found via the host's file");

    // Relative escapes are resolved at the rootfs's root too.
    let _ = std::fs::remove_file(root.0.join("etc/passwd"));
    let up = format!("../../../../../../../..{}", target.display());
    std::os::unix::fs::symlink(&up, root.0.join("etc/passwd")).expect("symlink");
    assert_eq!(case.error().field(), "image config User");

    // A fifo (or a device) is refused, not opened.
    let _ = std::fs::remove_file(root.0.join("etc/passwd"));
    nix::unistd::mkfifo(
        &root.0.join("etc/passwd"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    let e = case.error();
    assert!(e.to_string().contains("not a regular file"), "{e}");

    // No /etc/passwd at all: numeric users still work.
    let _ = std::fs::remove_file(root.0.join("etc/passwd"));
    case.image.user = Some("1000".into());
    assert_eq!(user(&case.spec()), (1000, 0, vec![0]));
}
