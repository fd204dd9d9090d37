#!/bin/bash
# Runs the cgroup-sensitive part of the black-box suite against moor inside a throwaway VM with
# a pure cgroup v2 hierarchy (scripts/vm-run): lifecycle (cgroup create/remove, the
# /sys/fs/cgroup mount), cgroups (resources, pause, update, ps, events, devices), exec (joining
# the cgroup with CLONE_INTO_CGROUP), namespaces (cgroup namespace), runtime_spec_1_3 (netDevices
# with a dummy link, which the host kernel lacks), rootless (a cgroup the user cannot write is
# skipped, a delegated one is used), shared_cgroup (two containers in one cgroup) and
# events_stats (stats and OOM events), inspect (v2 limits and device rules) and checkpoint (CRIU,
# whose `criu check` fails on kernels like the development host's). The emulated VM is slow,
# so the rest of the suite (cgroup-independent) runs on the host only. Binaries are built on the
# host; the guest sees the host's / read-only and the work tree read-write. The MOOR_IT_*
# variables (MOOR_IT_SKIP_LOG, MOOR_IT_REQUIRE_ROOT) reach the tests in the guest.
#   usage: integration/run-v2-in-vm.sh [test-binary args, e.g. a name filter]
set -euo pipefail
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
vmrun="$top/scripts/vm-run"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
shares=(--share "$CARGO_TARGET_DIR")
# the skip log is written from the guest
[ -n "${MOOR_IT_SKIP_LOG:-}" ] && shares+=(--share "$(dirname "$MOOR_IT_SKIP_LOG")")

cd "$top"
cargo build -q -p moor-cli >&2
bins=$(cargo test -p moor-integration --no-run --message-format=json 2>/dev/null |
  grep '"reason":"compiler-artifact"' | grep '"test":true' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' |
  grep -E '/(lifecycle|cgroups|exec|namespaces|runtime_spec_1_3|rootless|shared_cgroup|events_stats|inspect|checkpoint)-[0-9a-f]+$')
[ -n "$bins" ] || { echo "run-v2-in-vm: no test binaries found" >&2; exit 2; }

script='set -u; rc=0
echo "guest kernel: $(uname -r); cgroup fs: $(stat -f -c %T /sys/fs/cgroup)"
export RUNTIME='"$CARGO_TARGET_DIR"'/debug/moor
export MOOR_IT_CMD_TIMEOUT=300
for b in '"$(echo $bins)"'; do
  echo "=== $b"
  "$b" --test-threads="${TEST_THREADS:-2}" "$@" || rc=1
done
exit $rc'
"$vmrun" --mem 3G --timeout "${VM_TIMEOUT:-1500}" "${shares[@]}" -- bash -c "$script" run-v2 "$@"
