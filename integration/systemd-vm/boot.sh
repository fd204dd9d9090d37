#!/bin/bash
# Runs inside the throwaway VM (see ../run-systemd-in-vm.sh): boots systemd and dbus-daemon as
# pid 1 of new pid, mount and cgroup namespaces, in a cgroup of its own, with the unit
# moor-tests.service running TESTS_SCRIPT; systemd exits when that service ends.
#   usage: boot.sh unified|hybrid TESTS_SCRIPT LOG
# hybrid: the VM's cgroup2 root gives up its controllers, and this namespace mounts them as v1
# hierarchies plus name=systemd, with cgroup2 at /sys/fs/cgroup/unified, as a hybrid host does.
set -eu
layout=$1 tests=$2 log=$3
v1_hierarchies="cpu,cpuacct memory pids devices freezer blkio cpuset net_cls,net_prio perf_event hugetlb"

# The new namespace's hierarchies, mounted at their usual places.
mount_hierarchies() {
  if [ "$layout" = unified ]; then
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    return
  fi
  mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
  for c in $v1_hierarchies; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
  done
  mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
  mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
  mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
}

case ${MOOR_SD_STAGE:-0} in
0) # In the VM: the units, the hierarchy, then new pid and mount namespaces.
units=/etc/systemd/system  # in the VM's throw-away overlay
mkdir -p $units
cat >$units/moor-test.target <<UNIT
[Unit]
Description=moor systemd-driver tests
Wants=dbus.socket dbus.service moor-tests.service
UNIT
cat >$units/moor-tests.service <<UNIT
[Unit]
After=dbus.socket dbus.service
Requires=dbus.socket
[Service]
Type=exec
WorkingDirectory=$PWD
ExecStart=/bin/bash $tests
StandardOutput=append:$log
StandardError=append:$log
ExecStopPost=/bin/systemctl --no-block exit
UNIT

if [ "$layout" = hybrid ]; then
  ctrls=$(cat /sys/fs/cgroup/cgroup.subtree_control)
  echo "$(for c in $ctrls; do printf -- '-%s ' "$c"; done)" >/sys/fs/cgroup/cgroup.subtree_control
fi
exec unshare --pid --fork --mount --propagation private env MOOR_SD_STAGE=1 "$0" "$@"
;;
1) # pid 1 of the new namespaces: move into moor-systemd in every hierarchy.
  umount -l /sys/fs/cgroup
  mount_hierarchies
  for top in /sys/fs/cgroup /sys/fs/cgroup/*/; do
    [ -f "$top/cgroup.procs" ] || continue
    mkdir -p "$top/moor-systemd"
    for f in cpuset.cpus cpuset.mems; do
      [ -f "$top/$f" ] && [ ! -f "$top/cgroup.controllers" ] && cat "$top/$f" >"$top/moor-systemd/$f"
    done
    echo $$ >"$top/moor-systemd/cgroup.procs"
  done
  exec unshare --cgroup env MOOR_SD_STAGE=2 "$0" "$@"
;;
2) # In a cgroup namespace rooted there: the mounts above still show the old root, so mount
   # the hierarchies again, and become systemd.
  for m in $(awk '$2 ~ "^/sys/fs/cgroup" {print $2}' /proc/self/mounts | sort -r); do umount -l "$m"; done
  mount_hierarchies
  mount -t proc proc /proc
  exec env -i container=moor-test /lib/systemd/systemd --unit=moor-test.target --show-status=no
;;
esac
