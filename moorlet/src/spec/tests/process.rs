use super::*;
use crate::spec::env::expand;

fn list(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

/// Kubernetes' table ("Define a Command and Arguments for a Container", notes on Entrypoint
/// and Cmd): command replaces the Entrypoint and drops the Cmd; args alone replaces the Cmd.
#[test]
fn command_and_args_against_entrypoint_and_cmd() {
    let cases: &[(&str, &[&str], &[&str], &[&str])] = &[
        // (container fields, image Entrypoint, image Cmd, argv)
        ("", &["/ep-1"], &["foo", "bar"], &["/ep-1", "foo", "bar"]),
        ("    command: [/cmd]\n", &["/ep-1"], &["foo", "bar"], &["/cmd"]),
        (
            "    args: [zoo, boo]\n",
            &["/ep-1"],
            &["foo", "bar"],
            &["/ep-1", "zoo", "boo"],
        ),
        (
            "    command: [/cmd]\n    args: [zoo, boo]\n",
            &["/ep-1"],
            &["foo", "bar"],
            &["/cmd", "zoo", "boo"],
        ),
        ("", &[], &["sh", "-c", "x"], &["sh", "-c", "x"]),
        ("    args: [a]\n", &[], &["sh"], &["a"]),
        ("    command: []\n    args: []\n", &["/ep"], &["c"], &["/ep", "c"]),
    ];
    for (fields, ep, cmd, want) in cases {
        let mut case = Case::new(one(fields));
        case.image = ImageDefaults {
            entrypoint: list(ep),
            cmd: list(cmd),
            ..ImageDefaults::default()
        };
        assert_eq!(strings(&case.spec()["process"]["args"]), list(want), "{fields:?}");
    }
    let mut case = Case::new(one(""));
    case.image = ImageDefaults::default();
    let e = case.error();
    assert_eq!(e.field(), "spec.containers[0].command");
}

/// Kubernetes' expansion rules (pkg/kubelet/container's tests of third_party expansion).
#[test]
fn dollar_expansion() {
    let vars = [
        ("VAR_A", "A"),
        ("VAR_B", "B"),
        ("VAR_EMPTY", ""),
        ("VAR_REF", "$(VAR_A)"),
    ];
    let lookup = |n: &str| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
    let cases = [
        ("$(VAR_A)", "A"),
        ("___$(VAR_B)___", "___B___"),
        ("$(VAR_A)-$(VAR_A)", "A-A"),
        ("$(VAR_EMPTY)", ""),
        ("$(VAR_REF)", "$(VAR_A)"),
        ("$(UNKNOWN)", "$(UNKNOWN)"),
        ("$$(VAR_A)", "$(VAR_A)"),
        ("$$$(VAR_A)", "$A"),
        ("$$$$(VAR_A)", "$$(VAR_A)"),
        ("$$", "$"),
        ("$", "$"),
        ("a$", "a$"),
        ("$(VAR_A", "$(VAR_A"),
        ("$(", "$("),
        ("$()", "$()"),
        ("$VAR_A", "$VAR_A"),
        ("${VAR_A}", "${VAR_A}"),
        ("$(VAR_A)$(VAR_B)$", "AB$"),
        ("héllo $(VAR_A) wörld", "héllo A wörld"),
        ("$($(VAR_A))", "$($(VAR_A))"),
    ];
    for (input, want) in cases {
        assert_eq!(expand(input, lookup), want, "{input:?}");
    }
}

#[test]
fn command_args_see_the_pod_env_but_not_the_image_env() {
    let fields = "    command: [echo, $(GREETING), $(FROM_IMAGE), $$(GREETING)]\n    args: [$(NAME)]\n    env:\n    - {name: GREETING, value: hello}\n    - {name: NAME, value: $(GREETING)-world}\n";
    let mut case = Case::new(one(fields));
    case.image.env = vec!["FROM_IMAGE=img".into()];
    let args = strings(&case.spec()["process"]["args"]);
    assert_eq!(args, ["echo", "hello", "$(FROM_IMAGE)", "$(GREETING)", "hello-world"]);
}

#[test]
fn working_dir() {
    let cases: &[(&str, Option<&str>, Result<&str, &str>)] = &[
        ("", None, Ok("/")),
        ("", Some("/srv"), Ok("/srv")),
        ("    workingDir: /app\n", Some("/srv"), Ok("/app")),
        ("    workingDir: app\n", None, Err("spec.containers[0].workingDir")),
        ("", Some("srv"), Err("image config WorkingDir")),
    ];
    for (fields, image, want) in cases {
        let mut case = Case::new(one(fields));
        case.image.working_dir = image.map(str::to_string);
        match want {
            Ok(dir) => assert_eq!(case.spec()["process"]["cwd"], *dir),
            Err(field) => assert_eq!(case.error().field(), *field),
        }
    }
}

#[test]
fn environment_order_image_then_pod() {
    let fields = "    env:\n    - {name: PATH, value: /pod/bin}\n    - {name: ONLY_POD, value: p}\n    - {name: SHARED, value: pod}\n";
    let mut case = Case::new(one(fields));
    case.image.env = vec!["SHARED=image".into(), "ONLY_IMAGE=i".into(), "BROKEN".into()];
    let env = strings(&case.spec()["process"]["env"]);
    assert_eq!(
        env,
        [
            "PATH=/pod/bin",
            "HOSTNAME=web",
            "SHARED=pod",
            "ONLY_IMAGE=i",
            "ONLY_POD=p"
        ]
    );

    // No PATH anywhere: the runtime's default.
    let env = strings(&Case::new(one("")).spec()["process"]["env"]);
    assert_eq!(
        env[0],
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    // The image's PATH wins over the default.
    let mut case = Case::new(one(""));
    case.image.env = vec!["PATH=/img".into()];
    assert_eq!(strings(&case.spec()["process"]["env"])[0], "PATH=/img");
}
