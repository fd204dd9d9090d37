use super::*;

/// The kubelet's conversions: shares = milliCPU*1024/1000 (at least 2, the request defaulting
/// to the limit), quota = milliCPU*100000/1000 (at least 1000) with period 100000, memory.
#[test]
fn requests_and_limits() {
    type Want = Result<(i64, Option<i64>, Option<i64>), &'static str>;
    let cases: &[(&str, Want)] = &[
        // (resources, (shares, quota, memory limit) or error field)
        ("{}", Ok((2, None, None))),
        ("{requests: {cpu: 250m}}", Ok((256, None, None))),
        ("{requests: {cpu: 1}}", Ok((1024, None, None))),
        ("{requests: {cpu: 1m}}", Ok((2, None, None))),
        (
            "{requests: {cpu: '0.5'}, limits: {cpu: '2'}}",
            Ok((512, Some(200_000), None)),
        ),
        ("{limits: {cpu: 500m}}", Ok((512, Some(50_000), None))),
        ("{limits: {cpu: 5m}}", Ok((5, Some(1000), None))),
        ("{requests: {cpu: '1000'}}", Ok((262_144, None, None))),
        ("{limits: {memory: 128Mi}}", Ok((2, None, Some(134_217_728)))),
        (
            "{limits: {memory: 1G}, requests: {memory: 1k}}",
            Ok((2, None, Some(1_000_000_000))),
        ),
        (
            "{limits: {memory: lots}}",
            Err("spec.containers[0].resources.limits.memory"),
        ),
        (
            "{requests: {cpu: -1}}",
            Err("spec.containers[0].resources.requests.cpu"),
        ),
    ];
    for (res, want) in cases {
        let case = Case::new(one(&format!("    resources: {res}\n")));
        match want {
            Ok((shares, quota, memory)) => {
                let r = &case.spec()["linux"]["resources"];
                assert_eq!(r["cpu"]["shares"].as_i64(), Some(*shares), "{res}");
                assert_eq!(r["cpu"]["quota"].as_i64(), *quota, "{res}");
                assert_eq!(r["cpu"]["period"].as_i64(), quota.map(|_| 100_000), "{res}");
                assert_eq!(r["memory"]["limit"].as_i64(), *memory, "{res}");
                assert_eq!(r["memory"]["swap"].as_i64(), *memory, "no swap: {res}");
                assert_eq!(
                    r["pids"]["limit"].as_i64(),
                    Some(crate::spec::resources::PIDS_LIMIT),
                    "{res}"
                );
            }
            Err(field) => assert_eq!(case.error().field(), *field, "{res}"),
        }
    }
}
