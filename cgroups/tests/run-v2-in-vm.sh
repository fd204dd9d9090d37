#!/bin/bash
# Builds moor-cgroups' test binaries on the host and runs them as root inside a throwaway VM with
# a pure cgroup v2 hierarchy (scripts/vm-run). Exits non-zero if any test fails. The MOOR_IT_*
# variables (MOOR_IT_SKIP_LOG, MOOR_IT_REQUIRE_ROOT) reach the tests in the guest.
#   usage: cgroups/tests/run-v2-in-vm.sh [extra test-binary args, e.g. a test name filter]
set -euo pipefail
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
vmrun="$top/scripts/vm-run"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
shares=(--share "$CARGO_TARGET_DIR")
# the skip log is written from the guest
[ -n "${MOOR_IT_SKIP_LOG:-}" ] && shares+=(--share "$(dirname "$MOOR_IT_SKIP_LOG")")

cd "$top"
cargo test -p moor-cgroups --no-run >&2
bins=$(cargo test -p moor-cgroups --no-run --message-format=json 2>/dev/null |
  grep '"reason":"compiler-artifact"' | grep '"test":true' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p')
[ -n "$bins" ] || { echo "run-v2-in-vm: no test binaries found" >&2; exit 2; }

# The guest sees the host's / read-only (plus a tmpfs overlay), so the binaries run in place.
script='set -u; rc=0
echo "guest kernel: $(uname -r); cgroup fs: $(stat -f -c %T /sys/fs/cgroup)"
for b in '"$(echo $bins)"'; do
  echo "=== $b"
  "$b" --test-threads="${TEST_THREADS:-2}" --show-output "$@" || rc=1
done
exit $rc'
"$vmrun" --timeout "${VM_TIMEOUT:-900}" "${shares[@]}" -- bash -c "$script" run-v2 "$@"
