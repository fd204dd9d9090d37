//! Resources as the kubelet converts them: requests.cpu → cpu shares, limits.cpu → CFS quota,
//! limits.memory → the memory limit (and as much memory+swap: no swap); and a pids limit the pod cannot lift.

use super::quantity::Quantity;
use super::{Ctx, SpecError};
use serde_json::{json, Value};

/// The CFS period the kubelet uses (µs).
const CPU_PERIOD: u64 = 100_000;
/// The pids limit every container gets (Kubernetes leaves it to the node: a fork bomb in one
/// container must not take the host's pids).
pub(crate) const PIDS_LIMIT: i64 = 4096;

/// The kubelet's MilliCPUToShares.
pub(crate) fn shares(milli: i128) -> i128 {
    if milli == 0 {
        return 2;
    }
    (milli * 1024 / 1000).clamp(2, 262_144)
}

/// The kubelet's milliCPUToQuota (0: no quota).
pub(crate) fn quota(milli: i128) -> i128 {
    if milli == 0 {
        return 0;
    }
    (milli * i128::from(CPU_PERIOD) / 1000).max(1000)
}

fn quantity(cx: &Ctx, which: &str, name: &str) -> Result<Option<Quantity>, SpecError> {
    let res = cx.container.resources.as_ref();
    let map = if which == "limits" {
        res.and_then(|r| r.limits.as_ref())
    } else {
        res.and_then(|r| r.requests.as_ref())
    };
    let Some(q) = map.and_then(|m| m.get(name)) else {
        return Ok(None);
    };
    let field = cx.field(&format!("resources.{which}.{name}"));
    match Quantity::parse(&q.0) {
        Some(v) if v.milli() >= 0 => Ok(Some(v)),
        _ => Err(SpecError::invalid(field, format!("invalid quantity {:?}", q.0))),
    }
}

pub(crate) fn resources(cx: &Ctx) -> Result<Value, SpecError> {
    let cpu_request = quantity(cx, "requests", "cpu")?.map_or(0, |q| q.milli());
    let cpu_limit = quantity(cx, "limits", "cpu")?.map_or(0, |q| q.milli());
    // As the API server defaults it: no request means the limit.
    let request = if cpu_request == 0 { cpu_limit } else { cpu_request };
    let mut cpu = json!({"shares": i64::try_from(shares(request)).unwrap_or(2)});
    let q = quota(cpu_limit);
    if q > 0 {
        cpu["quota"] = i64::try_from(q).unwrap_or(i64::MAX).into();
        cpu["period"] = CPU_PERIOD.into();
    }
    let mut out = json!({"cpu": cpu, "pids": {"limit": PIDS_LIMIT}});
    if let Some(mem) = quantity(cx, "limits", "memory")? {
        let bytes = i64::try_from(mem.value())
            .map_err(|_| SpecError::invalid(cx.field("resources.limits.memory"), "too large"))?;
        if bytes > 0 {
            // No swap beyond the limit (the kubelet's NoSwap): a container at its limit is
            // OOM-killed, as the pod's author expects, instead of swapping.
            out["memory"] = json!({"limit": bytes, "swap": bytes});
        }
    }
    Ok(out)
}
