#!/bin/bash
# End-to-end checks of a runc-compatible runtime under podman 4.3 (conmon).
#
#   RUNTIME=/usr/sbin/runc integration/clients/podman.sh     # the reference
#   integration/clients/podman.sh                            # moor (target/debug/moor)
#
# Private configuration only (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF,
# --root/--runroot, tmp_dir, network config dir, events file, all under a temp dir): overlay storage,
# no registries, netns none, cgroupfs manager, default_ulimits. Containers and pods get the absolute
# cgroup parent /moor-clients/podman-<pid>. The EXIT trap removes containers, pods and images, stops
# any conmon left from this run, unmounts storage, removes the cgroups and the temp dir.
# Env: RUNTIME, LOG_ROOT, CMD_TIMEOUT, TRACE=1 (log every runtime call), KEEP=1 (keep the temp dir).
set -u
. "$(dirname "$0")/lib.sh"

need_root
ensure_pkgs podman:podman conmon:conmon umoci:umoci python3:python3
check_runtime

RT_NAME=$(basename "$RUNTIME")
LOGDIR=$LOG_ROOT/podman-$RT_NAME
rm -rf "$LOGDIR" && mkdir -p "$LOGDIR"
T=$(mktemp -d /tmp/moor-clients-podman.XXXXXX)
CGP=/moor-clients/podman-$$
IMG=moor.local/busybox:latest
RT=$(make_runtime_wrapper "$T")
# podman's lock segment is host-wide (/dev/shm/libpod_lock); remove it afterwards if we made it.
SHM_LOCK_EXISTED=0
[ -e /dev/shm/libpod_lock ] && SHM_LOCK_EXISTED=1
# podman 4.3 also makes /run/containers/networks and /var/lib/containers/cache (blob info cache)
# whatever the configuration says: remove them afterwards if they were not there.
RUN_CONTAINERS_EXISTED=0 VAR_CONTAINERS_EXISTED=0
[ -e /run/containers ] && RUN_CONTAINERS_EXISTED=1
[ -e /var/lib/containers ] && VAR_CONTAINERS_EXISTED=1

export CONTAINERS_CONF=$T/containers.conf
export CONTAINERS_STORAGE_CONF=$T/storage.conf
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
unset CONTAINER_HOST CONTAINER_CONNECTION

P() { to "$CMD_TIMEOUT" podman --root "$T/graph" --runroot "$T/runroot" --runtime "$RT" \
	--cgroup-manager cgroupfs "$@"; }
# prun [podman run flags...]: `podman run` with our cgroup parent
prun() { P run --cgroup-parent "$CGP" "$@"; }

cleanup() {
	set +e
	trap - EXIT INT TERM
	if [ -f "$T/storage.conf" ]; then
		P pod rm -af -t 0 >/dev/null 2>&1
		P rm -af -t 0 >/dev/null 2>&1
		P rmi -af >/dev/null 2>&1
	fi
	# conmon processes of this run carry our temp dir on their command line
	local p
	for p in $(pgrep -x conmon 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- "$T/" && kill -9 "$p" 2>/dev/null
	done
	awk -v t="$T" 'index($2, t) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	cg_remove "$CGP"
	if ! pgrep -x podman >/dev/null; then
		[ "$SHM_LOCK_EXISTED" = 0 ] && rm -f /dev/shm/libpod_lock
		[ "$RUN_CONTAINERS_EXISTED" = 0 ] && rmdir /run/containers/networks /run/containers 2>/dev/null
		[ "$VAR_CONTAINERS_EXISTED" = 0 ] && rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb &&
			rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null
	fi
	rmdir /sys/fs/cgroup/*/moor-clients 2>/dev/null
	[ -f "$T/events.log" ] && cp "$T/events.log" "$LOGDIR/" 2>/dev/null
	cp "$T"/*.out "$T"/*.err "$T"/*.json "$LOGDIR/" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ]; then info "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$T/tmp" "$T/net" "$T/volumes"
cat >"$CONTAINERS_CONF" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$T/events.log"
tmp_dir = "$T/tmp"
volume_path = "$T/volumes"
[network]
network_config_dir = "$T/net"
EOF
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "${STORAGE_DRIVER:-overlay}"
runroot = "$T/runroot"
graphroot = "$T/graph"
EOF
echo 'unqualified-search-registries = []' >"$CONTAINERS_REGISTRIES_CONF"
info "podman $(podman --version | awk '{print $3}'), storage $T, cgroup parent $CGP"

# ---------------------------------------------------------------- image
if build_busybox_image "$T/image" "$T/busybox-oci.tar" &&
	P load -i "$T/busybox-oci.tar" >"$T/load.out" 2>&1 &&
	P tag localhost/latest:latest "$IMG" >>"$T/load.out" 2>&1 &&
	P image exists "$IMG"; then
	pass image-load
else
	fail image-load "$(cat "$T/load.out" 2>/dev/null)"
	summary
	exit 1
fi

o() { tr -d '\r' <"$T/$1.out"; }
# check NAME EXPECTED [podman run flags...] -- CMD...: `podman run --rm`, stdout must equal EXPECTED.
check() {
	local name=$1 want=$2
	shift 2
	local flags=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
	shift
	prun --rm "${flags[@]}" "$IMG" "$@" </dev/null >"$T/$name.out" 2>"$T/$name.err"
	local rc=$?
	if [ $rc -eq 0 ] && [ "$(o "$name")" = "$want" ]; then
		pass "$name"
	else
		fail "$name" "rc=$rc stdout: $(o "$name" | head -c 300) stderr: $(head -c 500 "$T/$name.err")"
	fi
}
state() { P inspect --format '{{.State.Status}}' "$1" 2>/dev/null; }
wait_state() { # NAME STATE [tries]
	local i
	for i in $(seq "${3:-50}"); do
		[ "$(state "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
# host_cg PID CONTROLLER FILE: the file of the container's cgroup, read on the host
host_cg() {
	local rel
	rel=$(awk -F: -v c="$2" '$2 == c || $2 ~ "(^|,)"c"(,|$)" {print $3}' "/proc/$1/cgroup")
	cat "/sys/fs/cgroup/$2$rel/$3" 2>/dev/null
}

# ---------------------------------------------------------------- run --rm
check run-output hello-from-podman -- echo hello-from-podman
check run-env v=bar-baz -e MOOR_TEST=bar-baz -- sh -c 'echo "v=$MOOR_TEST"'
check run-user 65534:65534 --user 65534:65534 -- sh -c 'echo "$(id -u):$(id -g)"'
check run-hostname-workdir moorhost:/tmp --hostname moorhost --workdir /tmp -- sh -c 'echo "$(hostname):$(pwd)"'
check default-ulimits 1024 -- sh -c 'ulimit -n'

# the container's log holds only what the container wrote: conmon hands the container's stdout/stderr
# pipes to the runtime's create as its own stdio, so anything the runtime prints there (warnings,
# since podman passes no --log) lands in the container's output
name=quiet-run
prun --name $name "$IMG" true </dev/null >"$T/$name.run" 2>&1
rc=$?
P logs $name >"$T/$name.out" 2>&1
if [ $rc -eq 0 ] && [ ! -s "$T/$name.out" ]; then
	pass $name
else
	fail $name "rc=$rc, podman logs: $(head -c 400 "$T/$name.out")"
fi
P rm -f $name >/dev/null 2>&1

name=exit-code
prun --rm "$IMG" sh -c 'exit 3' </dev/null >"$T/$name.out" 2>"$T/$name.err"
rc=$?
if [ $rc -eq 3 ]; then pass $name; else fail $name "podman exited $rc, want 3: $(cat "$T/$name.err")"; fi

name=tty
PTY_INPUT=$'echo hi-$((6*7))\nexit\n' with_pty podman --root "$T/graph" --runroot "$T/runroot" \
	--runtime "$RT" --cgroup-manager cgroupfs run --rm -it --cgroup-parent "$CGP" "$IMG" sh \
	>"$T/$name.out" 2>&1
rc=$?
if [ $rc -eq 0 ] && o $name | grep -q '^hi-42$'; then
	pass $name
else
	fail $name "rc=$rc output: $(o $name | tail -c 400)"
fi

# ---------------------------------------------------------------- detached: exec, pause, stop
name=d1
prun -d --name $name -e IN_CTR=yes "$IMG" sh -c 'trap "exit 0" TERM; while :; do sleep 0.1; done' \
	>"$T/$name.out" 2>&1
if wait_state $name running; then
	pass detached-running
	P exec $name sh -c 'echo "exec-out $IN_CTR"' >"$T/e1.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ "$(o e1)" = "exec-out yes" ]; then
		pass exec-output
	else
		fail exec-output "rc=$rc output: $(o e1)"
	fi
	P exec $name sh -c 'exit 5' >"$T/e2.out" 2>&1
	rc=$?
	if [ $rc -eq 5 ]; then pass exec-exit-code; else fail exec-exit-code "rc=$rc, want 5: $(o e2)"; fi
	P exec --user 65534 --workdir /tmp $name sh -c 'echo "$(id -u):$(pwd)"' >"$T/e3.out" 2>&1
	if [ "$(o e3)" = "65534:/tmp" ]; then pass exec-user-workdir; else fail exec-user-workdir "$(o e3)"; fi
	PTY_INPUT=$'echo ex-$((7*6))\nexit\n' with_pty podman --root "$T/graph" --runroot "$T/runroot" \
		--runtime "$RT" --cgroup-manager cgroupfs exec -it $name sh >"$T/e4.out" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && o e4 | grep -q '^ex-42$'; then
		pass exec-tty
	else
		fail exec-tty "rc=$rc output: $(o e4 | tail -c 300)"
	fi

	if P pause $name >"$T/pause.out" 2>&1 && [ "$(state $name)" = paused ]; then
		pass pause
	else
		fail pause "state=$(state $name): $(cat "$T/pause.out")"
	fi
	if P unpause $name >"$T/unpause.out" 2>&1 && [ "$(state $name)" = running ]; then
		pass unpause
	else
		fail unpause "state=$(state $name): $(cat "$T/unpause.out")"
	fi

	# podman top reads /proc of the container's processes; `ps` via the runtime is not used here
	if P top $name pid args >"$T/top.out" 2>&1 && grep -q 'sh -c' "$T/top.out"; then
		pass top
	else
		fail top "$(head -c 300 "$T/top.out")"
	fi

	# stop: SIGTERM, the trap exits 0 well before the 10 s timeout
	start=$(date +%s)
	if P stop $name >"$T/stop.out" 2>&1 && wait_state $name exited; then
		code=$(P inspect --format '{{.State.ExitCode}}' $name)
		took=$(($(date +%s) - start))
		if [ "$code" = 0 ] && [ $took -lt 8 ]; then
			pass stop-sigterm
		else
			fail stop-sigterm "exit code $code (want 0), took ${took}s: $(cat "$T/stop.out")"
		fi
	else
		fail stop-sigterm "state=$(state $name): $(cat "$T/stop.out")"
	fi
	# restart the stopped container (new create/start for the same id)
	if P start $name >"$T/restart.out" 2>&1 && wait_state $name running; then
		pass restart
	else
		fail restart "state=$(state $name): $(cat "$T/restart.out")"
	fi
	if P rm -f -t 2 $name >"$T/rm.out" 2>&1 && ! P container exists $name; then
		pass rm-force
	else
		fail rm-force "$(cat "$T/rm.out")"
	fi
else
	fail detached-running "state=$(state $name): $(cat "$T/$name.out")"
	P rm -f -t 0 $name >/dev/null 2>&1
fi

# stop falls back to SIGKILL for a pid 1 that ignores SIGTERM: exit code 137
name=d2
prun -d --name $name "$IMG" sleep 1000 >"$T/$name.out" 2>&1
if wait_state $name running && P stop -t 1 $name >"$T/$name.stop" 2>&1 && wait_state $name exited; then
	code=$(P inspect --format '{{.State.ExitCode}}' $name)
	if [ "$code" = 137 ]; then pass stop-sigkill; else fail stop-sigkill "exit code $code, want 137"; fi
else
	fail stop-sigkill "state=$(state $name): $(cat "$T/$name.out" "$T/$name.stop" 2>/dev/null)"
fi
P rm -f -t 0 $name >/dev/null 2>&1

name=d3
prun -d --name $name "$IMG" sleep 1000 >"$T/$name.out" 2>&1
if wait_state $name running && P kill -s KILL $name >"$T/$name.kill" 2>&1 && wait_state $name exited; then
	code=$(P inspect --format '{{.State.ExitCode}}' $name)
	if [ "$code" = 137 ]; then pass kill-sigkill; else fail kill-sigkill "exit code $code, want 137"; fi
else
	fail kill-sigkill "state=$(state $name): $(cat "$T/$name.out" "$T/$name.kill" 2>/dev/null)"
fi
P rm -f -t 0 $name >/dev/null 2>&1

# ---------------------------------------------------------------- pod: shared network namespace
POD=moorpod$$
if P pod create --name $POD --cgroup-parent "$CGP" >"$T/pod.out" 2>&1 && P pod start $POD >>"$T/pod.out" 2>&1; then
	pass pod-create-start
	P run -d --pod $POD --name p1 "$IMG" sleep 1000 >"$T/p1.out" 2>&1
	P run --rm --pod $POD "$IMG" readlink /proc/self/ns/net >"$T/p2.out" 2>>"$T/pod.err"
	n1=$(P exec p1 readlink /proc/self/ns/net 2>>"$T/pod.err")
	n2=$(o p2)
	hostnet=$(readlink /proc/self/ns/net)
	case $n1 in
	net:*)
		if [ "$n1" = "$n2" ] && [ "$n1" != "$hostnet" ]; then
			pass pod-shared-netns
		else
			fail pod-shared-netns "p1=$n1 p2=$n2 host=$hostnet"
		fi
		;;
	*) fail pod-shared-netns "p1: $n1 $(cat "$T/p1.out") p2: $n2" ;;
	esac
	u1=$(P exec p1 readlink /proc/self/ns/uts 2>>"$T/pod.err")
	u2=$(P run --rm --pod $POD "$IMG" readlink /proc/self/ns/uts 2>>"$T/pod.err")
	m1=$(P exec p1 readlink /proc/self/ns/mnt 2>>"$T/pod.err")
	m2=$(P run --rm --pod $POD "$IMG" readlink /proc/self/ns/mnt 2>>"$T/pod.err")
	if [ "$u1" = "$u2" ] && [ "$m1" != "$m2" ]; then
		pass pod-shared-uts-private-mnt
	else
		fail pod-shared-uts-private-mnt "uts $u1 vs $u2, mnt $m1 vs $m2; $(tail -c 300 "$T/pod.err")"
	fi
	if P pod stop -t 2 $POD >"$T/podstop.out" 2>&1 && P pod rm -f $POD >>"$T/podstop.out" 2>&1; then
		pass pod-stop-rm
	else
		fail pod-stop-rm "$(cat "$T/podstop.out")"
	fi
else
	fail pod-create-start "$(cat "$T/pod.out")"
fi
P pod rm -f -t 0 $POD >/dev/null 2>&1

# ---------------------------------------------------------------- resources and security
# --memory / --pids-limit: inside the container (its cgroup mounted at /sys/fs/cgroup) and on the host
check memory-limit-inside 67108864 --memory 64m -- cat /sys/fs/cgroup/memory/memory.limit_in_bytes
check pids-limit-inside 50 --pids-limit 50 -- cat /sys/fs/cgroup/pids/pids.max
name=limits
prun -d --name $name --memory 64m --pids-limit 50 "$IMG" sleep 1000 >"$T/$name.out" 2>&1
if wait_state $name running; then
	pid=$(P inspect --format '{{.State.Pid}}' $name)
	mem=$(host_cg "$pid" memory memory.limit_in_bytes)
	pids=$(host_cg "$pid" pids pids.max)
	cgline=$(grep ':memory:' "/proc/$pid/cgroup")
	if [ "$mem" = 67108864 ]; then pass memory-limit-host; else fail memory-limit-host "memory.limit_in_bytes=$mem ($cgline)"; fi
	if [ "$pids" = 50 ]; then pass pids-limit-host; else fail pids-limit-host "pids.max=$pids"; fi
	case $cgline in
	*":$CGP/"*) pass cgroup-parent ;;
	*) fail cgroup-parent "container's cgroup: $cgline, want under $CGP" ;;
	esac
else
	fail memory-limit-host "container did not start: $(cat "$T/$name.out")"
fi
P rm -f -t 0 $name >/dev/null 2>&1

name=oom-kill
prun --rm --memory 32m --memory-swap 32m "$IMG" tail /dev/zero </dev/null >"$T/$name.out" 2>&1
rc=$?
if [ $rc -eq 137 ]; then pass $name; else fail $name "podman exited $rc, want 137: $(o $name | tail -c 300)"; fi

name=read-only
prun --rm --read-only "$IMG" sh -c 'touch /x 2>&1; echo rc=$?; touch /tmp/ok && echo tmp-ok' \
	</dev/null >"$T/$name.out" 2>&1
if o $name | grep -qi 'read-only file system' && o $name | grep -q '^rc=1' && o $name | grep -q tmp-ok; then
	pass $name
else
	fail $name "$(o $name | head -c 400)"
fi

check cap-drop-all "CapEff:	0000000000000000" --cap-drop ALL -- grep CapEff /proc/self/status
check cap-default-has-chown yes -- sh -c 'chown 65534 /tmp && echo yes'
check cap-drop-chown no --cap-drop CHOWN -- sh -c 'chown 65534 /tmp 2>/dev/null && echo yes || echo no'

cat >"$T/seccomp-deny-mkdir.json" <<'EOF'
{
  "defaultAction": "SCMP_ACT_ALLOW",
  "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
  ]
}
EOF
name=seccomp-deny-mkdir
prun --rm --security-opt seccomp="$T/seccomp-deny-mkdir.json" "$IMG" \
	sh -c 'mkdir /tmp/d 2>&1; echo rc=$?; touch /tmp/f && echo touch-ok' </dev/null >"$T/$name.out" 2>&1
if o $name | grep -q 'Operation not permitted' && o $name | grep -q '^rc=1' && o $name | grep -q touch-ok; then
	pass $name
else
	fail $name "$(o $name | head -c 400)"
fi
check seccomp-default-allows-mkdir made -- sh -c 'mkdir /tmp/d && echo made'
check no-new-privileges "NoNewPrivs:	1" --security-opt no-new-privileges -- grep NoNewPrivs /proc/self/status
check masked-kcore "" -- sh -c 'cat /proc/kcore 2>/dev/null | head -c 1'
mkdir -p "$T/vol"
check volume-bind hello-vol -v "$T/vol:/data" -- sh -c 'echo hello-vol >/data/f && cat /data/f'

summary
