use super::*;

#[test]
fn the_default_profile_denies_by_default() {
    let p = runtime_default_seccomp();
    assert_eq!(p.default_action(), oci_spec::runtime::LinuxSeccompAction::ScmpActErrno);
}
