use super::*;

const POD: &str =
    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: app\n    image: busybox\n";

#[test]
fn a_pod_parses() {
    let objects = parse(POD).expect("parse");
    assert_eq!(objects.len(), 1);
    assert_eq!(
        (objects[0].kind(), objects[0].name(), objects[0].namespace()),
        ("Pod", "web", "default")
    );
}
