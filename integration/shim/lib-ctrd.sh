# shellcheck shell=bash
# A private containerd 1.6 for the shim's groups (cri.sh, leaks.sh) and bench/shim: its own config,
# root, state, sockets and CNI config under a temp dir, the shim under test on its PATH only.
# Source it after clients/lib.sh; call ctrd_init NAME, then ctrd_config [cri], ctrd_start.
# REFERENCE=runc: the same through containerd's io.containerd.runc.v2 shim and runc.
# ctrd_cleanup (the caller's EXIT trap) removes everything the group made: tasks, pods, the daemon,
# the shims it started, their sockets, mounts, cgroups, netns, the CNI bridge, the temp dir.

REFERENCE=${REFERENCE:-}
if [ "$REFERENCE" = runc ]; then
	SHIM_NAME=containerd-shim-runc-v2
	SHIM=$(command -v $SHIM_NAME) || skip_group "no $SHIM_NAME for the reference run"
	RTYPE=io.containerd.runc.v2
	STATE_DIR=runc
else
	SHIM_NAME=containerd-shim-moor-v2
	SHIM=${SHIM:-${CARGO_TARGET_DIR:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)/target}/debug/$SHIM_NAME}
	RTYPE=io.containerd.moor.v2
	STATE_DIR=moor
fi
IMG=moor.local/busybox:latest
PAUSE_IMG=moor.local/busybox:pause
DAEMON_PID=
CRI=0

# ctrd_init NAME: temp dir, namespace, cgroup parent, log dir, a private copy of the shim.
ctrd_init() {
	local name=$1
	[ -x "$SHIM" ] || die "SHIM=$SHIM is not an executable file (cargo build -p containerd-shim-moor-v2)"
	LOGDIR=$LOG_ROOT/shim-$name-$STATE_DIR
	rm -rf "$LOGDIR" && mkdir -p "$LOGDIR"
	T=$(mktemp -d "/tmp/moor-shim-$name.XXXXXX")
	NS=moorshim$$
	CG=/moor-shim/$name-$$
	SOCK=$T/containerd.sock
	TASKS_ROOT=$T/state/io.containerd.runtime.v2.task
	RUN_CTRD_EXISTED=0
	[ -d /run/containerd ] && RUN_CTRD_EXISTED=1
	STATE_EXISTED=0
	[ -d /run/containerd/$STATE_DIR ] && STATE_EXISTED=1
	NETNS_BEFORE=$(ls /var/run/netns 2>/dev/null | sort)
	BRIDGE=mcri$$
	mkdir -p "$T/bin" "$T/cni" "$T/ipam" || die "cannot create $T"
	# A rebuild during the run does not change the binary the daemon runs.
	cp "$SHIM" "$T/bin/$SHIM_NAME" || die "cannot copy $SHIM"
	info "shim: $SHIM_NAME from $SHIM"
}

C() { to "$CMD_TIMEOUT" ctr -a "$SOCK" -n "$NS" "$@"; }
CK() { to "$CMD_TIMEOUT" ctr -a "$SOCK" -n k8s.io "$@"; }

# Our shims carry our containerd socket on their command line.
shim_pids() {
	local p
	for p in $(pgrep -f -- "-address $SOCK" 2>/dev/null); do
		tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline" | grep -q "$SHIM_NAME .*-address $SOCK" && echo "$p"
	done
}
# The shim servers, not moor's helpers (forks with the same command line, named moor-helper).
server_pids() {
	local p
	for p in $(shim_pids); do grep -q '^Name:.*moor-helper' "/proc/$p/status" 2>/dev/null || echo "$p"; done
}
# helper_pids: the moor shims' helpers.
helper_pids() {
	local p
	for p in $(shim_pids); do grep -q '^Name:.*moor-helper' "/proc/$p/status" 2>/dev/null && echo "$p"; done
}

# ctrd_config [cri]: the daemon's config; with cri, the CRI plugin with runtime handler `moor`
# (the shim under test), a sandbox image built here, and a CNI bridge on a test subnet.
ctrd_config() {
	local disabled='"io.containerd.grpc.v1.cri", '
	if [ "${1:-}" = cri ]; then
		CRI=1
		disabled=
	fi
	cat >"$T/config.toml" <<EOC
version = 2
root = "$T/root"
state = "$T/state"
disabled_plugins = [${disabled}"io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
oom_score = 0

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  level = "${CTRD_LOG_LEVEL:-info}"
[metrics]
  address = ""
[cgroup]
  path = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$T/opt"
  [plugins."io.containerd.runtime.v2.task"]
    platforms = ["linux/amd64"]
  [plugins."io.containerd.service.v1.diff-service"]
    default = ["walking"]
EOC
	[ "$CRI" = 1 ] || return 0
	# Subnet from our pid: two groups running at once do not share one.
	local sub=10.213.$(($$ % 250)).0/24
	cat >>"$T/config.toml" <<EOC
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$PAUSE_IMG"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    enable_selinux = false
    # A sandbox asks for oom_score_adj -998 otherwise, which needs CAP_SYS_RESOURCE (not in
    # every test environment).
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "moor"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.moor]
        runtime_type = "$RTYPE"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$T/cni"
EOC
	if [ "$REFERENCE" = runc ]; then
		cat >>"$T/config.toml" <<EOC
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.moor.options]
      BinaryName = "$(command -v runc)"
EOC
	fi
	# isGateway and ipMasq off: no ip_forward sysctl, no iptables rule on the host.
	cat >"$T/cni/10-moor-test.conflist" <<EOC
{
  "cniVersion": "0.4.0",
  "name": "moor-test-$$",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$sub"}]], "dataDir": "$T/ipam"}}
  ]
}
EOC
}

ctrd_start() {
	PATH=$T/bin:$PATH containerd --config "$T/config.toml" >>"$T/containerd.log" 2>&1 &
	DAEMON_PID=$!
	for _ in $(seq 150); do
		C version >/dev/null 2>&1 && break
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! C version >/dev/null 2>&1; then
		tail -n 20 "$T/containerd.log" >&2
		die "private containerd did not come up"
	fi
}

# ctrd_stop: the daemon alone (the shims stay, as after a containerd restart).
ctrd_stop() {
	[ -n "$DAEMON_PID" ] || return 0
	kill "$DAEMON_PID" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$DAEMON_PID" 2>/dev/null
	wait "$DAEMON_PID" 2>/dev/null
	DAEMON_PID=
}

# ctrd_import NS: the busybox image (tag latest: sh; tag pause: sleeps, the CRI sandbox image).
ctrd_import() {
	local ns=$1
	if [ ! -f "$T/busybox-oci.tar" ]; then
		build_busybox_image "$T/image" "$T/busybox-oci.tar.tmp" || return 1
		# The sandbox image: the same layer, its config runs a long sleep (SIGKILL stops it).
		(
			set -e
			cd "$T/image"
			umoci config --image layout:latest --tag pause --config.entrypoint /bin/sleep \
				--config.cmd 2147483647 --history.comment "sandbox: sleep"
			rm -f "$T/busybox-oci.tar.tmp"
			tar -C layout -cf "$T/busybox-oci.tar" .
		) >>"$T/image/build.log" 2>&1 || return 1
	fi
	to "$CMD_TIMEOUT" ctr -a "$SOCK" -n "$ns" image import --base-name moor.local/busybox "$T/busybox-oci.tar" \
		>"$T/import-$ns.out" 2>&1 &&
		to "$CMD_TIMEOUT" ctr -a "$SOCK" -n "$ns" image ls -q | grep -qx "$IMG"
}

# The socket names of every task bundle this daemon made (the shims' address files).
ctrd_sockets() {
	cat "$TASKS_ROOT"/*/*/address 2>/dev/null | sed 's|^unix://||'
}

ctrd_cleanup() {
	set +e
	trap - EXIT INT TERM
	local socks id p ns
	socks=$(ctrd_sockets; cat "$T/sockets.seen" 2>/dev/null)
	if [ -n "$DAEMON_PID" ] && kill -0 "$DAEMON_PID" 2>/dev/null; then
		if [ "$CRI" = 1 ] && [ -x "${CRI_CLIENT:-}" ]; then
			for id in $(cri pods -q 2>/dev/null); do
				cri stopp "$id" >/dev/null 2>&1
				cri rmp "$id" >/dev/null 2>&1
			done
		fi
		for ns in "$NS" k8s.io; do
			for id in $(to 30 ctr -a "$SOCK" -n "$ns" task ls -q 2>/dev/null); do
				to 30 ctr -a "$SOCK" -n "$ns" task kill -s SIGKILL "$id" >/dev/null 2>&1
				sleep 0.2
				to 30 ctr -a "$SOCK" -n "$ns" task rm -f "$id" >/dev/null 2>&1
			done
			for id in $(to 30 ctr -a "$SOCK" -n "$ns" container ls -q 2>/dev/null); do
				to 30 ctr -a "$SOCK" -n "$ns" container rm "$id" >/dev/null 2>&1
			done
		done
	fi
	ctrd_stop
	for p in $(shim_pids); do kill -9 "$p" 2>/dev/null; done
	for p in $socks; do rm -f "$p"; done
	awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	cg_remove "$CG"
	rmdir /sys/fs/cgroup/*/moor-shim 2>/dev/null
	# The runtime's state of our containers (a shim killed before its delete leaves it).
	for ns in "$NS" k8s.io; do
		for id in $(ls "$TASKS_ROOT/$ns" 2>/dev/null; cat "$T/ids.seen" 2>/dev/null); do
			[ -n "$id" ] && rm -rf "/run/containerd/$STATE_DIR/$ns/$id"
		done
		rmdir "/run/containerd/$STATE_DIR/$ns" 2>/dev/null
	done
	[ "$STATE_EXISTED" = 0 ] && rmdir "/run/containerd/$STATE_DIR" 2>/dev/null
	[ "$RUN_CTRD_EXISTED" = 0 ] && rmdir /run/containerd/s /run/containerd/fifo /run/containerd 2>/dev/null
	# netns the CRI plugin made for our pods and left (rmp removes them): new cni-* entries only.
	if [ "$CRI" = 1 ]; then
		for p in $(comm -13 <(echo "$NETNS_BEFORE") <(ls /var/run/netns 2>/dev/null | sort)); do
			case $p in cni-*) grep -q "$p" "$T/netns.seen" 2>/dev/null && ip netns del "$p" 2>/dev/null ;; esac
		done
		ip link del "$BRIDGE" 2>/dev/null
	fi
	[ -f "$T/containerd.log" ] && cp "$T/containerd.log" "$LOGDIR/" 2>/dev/null
	cp "$T"/*.out "$LOGDIR/" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then info "kept $T"; else rm -rf "$T"; fi
}

# cri ARGS...: the project's CRI client against our daemon.
cri() { to "$CMD_TIMEOUT" "$CRI_CLIENT" -r "$SOCK" "$@"; }

# mem_of PID: "USS PSS RSS" in kB from /proc/PID/smaps_rollup.
mem_of() {
	awk '/^Rss:/ {r = $2} /^Pss:/ {p = $2} /^Private_(Clean|Dirty):/ {u += $2}
		END {print u + 0, p + 0, r + 0}' "/proc/$1/smaps_rollup" 2>/dev/null
}
