#!/bin/bash
# Runs the systemd cgroup driver group (integration/tests/systemd.rs) under a real systemd: in
# the throwaway cgroup v2 VM (../shared/tools/vm-run), systemd 252 and dbus-daemon boot as pid 1
# of a new pid, mount and cgroup namespace (container mode, its own delegated cgroup), and the
# test binary runs as one of its services, the way a containerd service calls a runtime.
# Binaries are built on the host. Everything lives in the VM's throw-away overlay.
#   usage: integration/run-systemd-in-vm.sh [test-binary args]   (RUNTIME=/usr/sbin/runc to check runc)
set -euo pipefail
top=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
vmrun="$top/../shared/tools/vm-run"
[ -x "$vmrun" ] || { echo "run-systemd-in-vm: $vmrun not found" >&2; exit 2; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$top/target}
[ -x /lib/systemd/systemd ] && [ -x /usr/bin/dbus-daemon ] ||
  { echo "run-systemd-in-vm: needs the systemd and dbus packages" >&2; exit 2; }

cd "$top"
cargo build -q -p moor >&2
bin=$(cargo test -p moor-integration --test systemd --no-run --message-format=json 2>/dev/null |
  grep '"reason":"compiler-artifact"' | grep '"test":true' |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -1)
[ -n "$bin" ] || { echo "run-systemd-in-vm: no test binary found" >&2; exit 2; }

work=$(mktemp -d "$CARGO_TARGET_DIR/systemd-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
runtime=${RUNTIME:-$CARGO_TARGET_DIR/debug/moor}
args=$(printf '%q ' "$@")

# The service: run the tests, keep the exit status, then shut this systemd down.
cat >"$work/tests.sh" <<EOT
#!/bin/bash
echo "systemd \$(systemctl --version | head -1); runtime $runtime"
RUNTIME=$runtime MOOR_IT_CMD_TIMEOUT=300 "$bin" --test-threads=\${TEST_THREADS:-2} $args
echo \$? > "$work/rc"
EOT

# In the VM: systemd as pid 1 of new namespaces, its root cgroup a fresh child of the VM's.
cat >"$work/boot.sh" <<EOT
set -eu
units=/etc/systemd/system
mkdir -p \$units
cat >\$units/moor-test.target <<UNIT
[Unit]
Description=moor systemd-driver tests
Wants=dbus.socket dbus.service moor-tests.service
UNIT
cat >\$units/moor-tests.service <<UNIT
[Unit]
After=dbus.socket dbus.service
Requires=dbus.socket
[Service]
Type=exec
WorkingDirectory=$top
ExecStart=/bin/bash $work/tests.sh
StandardOutput=append:$work/log
StandardError=append:$work/log
ExecStopPost=/bin/systemctl --no-block exit
UNIT
mkdir /sys/fs/cgroup/moor-systemd
unshare --pid --fork --mount --propagation private sh -c '
  echo \$\$ > /sys/fs/cgroup/moor-systemd/cgroup.procs
  exec unshare --cgroup sh -c "umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && mount -t proc proc /proc && exec env -i container=moor-test /lib/systemd/systemd --unit=moor-test.target --show-status=no"'
EOT

set +e
"$vmrun" --mem 3G --timeout "${VM_TIMEOUT:-1200}" --share "$CARGO_TARGET_DIR" -- bash "$work/boot.sh"
vm=$?
set -e
cat "$work/log" 2>/dev/null || true
if [ ! -f "$work/rc" ]; then
  echo "run-systemd-in-vm: the tests did not finish (vm-run exit $vm)" >&2
  exit 1
fi
exit "$(cat "$work/rc")"
