#!/bin/bash
# Runs the systemd cgroup driver group (integration/tests/systemd.rs) under a real systemd: in
# the throwaway cgroup v2 VM (scripts/vm-run), systemd 252 and dbus-daemon boot as pid 1
# of a new pid, mount and cgroup namespace (container mode, its own delegated cgroup), and the
# test binary runs as one of its services, the way a containerd service calls a runtime.
# Binaries are built on the host. Everything lives in the VM's throw-away overlay.
# LAYOUT=hybrid gives systemd v1 controllers and a hybrid hierarchy instead of pure v2.
# systemd starts the service with a clean environment: TEST_THREADS and the MOOR_IT_* variables
# (MOOR_IT_SKIP_LOG, MOOR_IT_REQUIRE_ROOT) are written into it.
#   usage: [LAYOUT=unified|hybrid] integration/run-systemd-in-vm.sh [test-binary args]
#          (RUNTIME=/usr/sbin/runc to check runc)
set -euo pipefail
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
vmrun="$top/scripts/vm-run"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
shares=(--share "$CARGO_TARGET_DIR")
# the skip log is written from the guest
[ -n "${MOOR_IT_SKIP_LOG:-}" ] && shares+=(--share "$(dirname "$MOOR_IT_SKIP_LOG")")
[ -x /lib/systemd/systemd ] && [ -x /usr/bin/dbus-daemon ] ||
  { echo "run-systemd-in-vm: needs the systemd and dbus packages" >&2; exit 2; }

cd "$top"
cargo build -q -p moor-cli >&2
bin=$(cargo test -p moor-integration --test systemd --no-run --message-format=json 2>/dev/null |
  grep '"reason":"compiler-artifact"' | grep '"test":true' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$bin" ] || { echo "run-systemd-in-vm: no test binary found" >&2; exit 2; }

work=$(mktemp -d "$CARGO_TARGET_DIR/systemd-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
runtime=${RUNTIME:-$CARGO_TARGET_DIR/debug/moor}
layout=${LAYOUT:-unified}
args=$(printf '%q ' "$@")
passed_env=$(for v in ${!MOOR_IT_@}; do printf 'export %s=%q\n' "$v" "${!v}"; done)

# The service: run the tests, keep the exit status, then shut this systemd down.
cat >"$work/tests.sh" <<EOT
#!/bin/bash
$passed_env
echo "systemd \$(systemctl --version | head -1); $layout cgroups; runtime $runtime"
RUNTIME=$runtime MOOR_IT_CMD_TIMEOUT=300 "$bin" --test-threads=${TEST_THREADS:-2} $args
echo \$? > "$work/rc"
EOT

set +e
"$vmrun" --mem 3G --timeout "${VM_TIMEOUT:-1200}" "${shares[@]}" -- \
  "$top/integration/systemd-vm/boot.sh" "$layout" "$work/tests.sh" "$work/log"
vm=$?
set -e
cat "$work/log" 2>/dev/null || true
if [ ! -f "$work/rc" ]; then
  echo "run-systemd-in-vm: the tests did not finish (vm-run exit $vm)" >&2
  exit 1
fi
exit "$(cat "$work/rc")"
