#!/bin/bash
# CRI through containerd 1.6's CRI plugin with moor's shim (issue 15): a runtime handler `moor` whose
# runtime_type is io.containerd.moor.v2, driven through the CRI API by the project's own client
# (integration/cri-client: Debian ships no crictl) as a kubelet would: runp, create, start, logs,
# exec (streaming, over the CRI streaming server's websocket), exec -s (ExecSync), stop, rm, stopp, rmp.
#
#   integration/shim/cri.sh                       # the shim of this repository's debug build
#   REFERENCE=runc integration/shim/cri.sh        # handler `moor` pointed at io.containerd.runc.v2 + runc
#
# A private containerd (integration/shim/lib-ctrd.sh) with the CRI plugin, its own root, state and
# sockets; the sandbox image is the offline busybox image with `sleep` as its command; pods get a
# network namespace from a CNI bridge of our own (test subnet, no gateway, no masquerade: no sysctl,
# no iptables rule). Each pod has the absolute cgroup parent /moor-shim/cri-<pid>/<pod>.
# Checks: one shim per pod (two containers in a pod, one shim; a second pod, a second shim), the
# pod's IP, log content (stdout and stderr), exec output and exit codes both ways, states after stop,
# and after rmp: no shim, socket, bundle, mount, runtime state, container cgroup or netns left.
# Env: SHIM, CRI_CLIENT, LOG_ROOT, CMD_TIMEOUT, KEEP=1.
set -u
. "$(dirname "$0")/../clients/lib.sh"
. "$(dirname "$0")/lib-ctrd.sh"

need_root
if ! command -v containerd >/dev/null 2>&1 || ! command -v ctr >/dev/null 2>&1; then
	skip_group "containerd is not installed (this group needs the real containerd 1.6: apt-get install containerd)"
fi
ensure_pkgs umoci:umoci ip:iproute2
[ -x /usr/lib/cni/bridge ] || ensure_pkgs /usr/lib/cni/bridge:containernetworking-plugins
CRI_CLIENT=${CRI_CLIENT:-${CARGO_TARGET_DIR:-$(git -C "$(dirname "$0")" rev-parse --show-toplevel)/target}/debug/cri-client}
[ -x "$CRI_CLIENT" ] || die "CRI_CLIENT=$CRI_CLIENT is not an executable file (cargo build -p moor-cri-client)"

ctrd_init cri
trap ctrd_cleanup EXIT
trap 'exit 130' INT TERM
ctrd_config cri
ctrd_start
info "containerd $(containerd --version | awk '{print $3}') at $SOCK, handler moor -> $RTYPE, cgroups $CG"
if ctrd_import k8s.io && CK image ls -q | grep -qx "$PAUSE_IMG"; then
	pass image-import
else
	fail image-import "$(cat "$T/import-k8s.io.out" 2>/dev/null)"
	summary
	exit 1
fi

if v=$(cri version 2>&1) && [ -n "$v" ]; then pass "cri-version ($v)"; else fail cri-version "$v"; fi

errs() { grep -E 'level=(error|warning)' "$T/containerd.log" | tail -n 3; }
netns_now() { ls /var/run/netns 2>/dev/null | sort; }
# runp NAME: a pod on handler moor; prints its id, records its new netns.
runp() {
	local before id
	before=$(netns_now)
	id=$(cri runp --pod-name "$1" --pod-uid "uid-$1" --log-dir "$T/logs/$1" --cgroup-parent "$CG/$1" \
		--runtime moor 2>"$T/runp-$1.err") || return 1
	comm -13 <(echo "$before") <(netns_now) >>"$T/netns.seen"
	echo "$id" >>"$T/ids.seen"
	echo "$id"
}
# create POD_ID POD_NAME NAME CMD...: prints the container id.
create() {
	local pod=$1 pname=$2 name=$3 id
	shift 3
	id=$(cri create "$pod" --pod-name "$pname" --pod-uid "uid-$pname" --log-dir "$T/logs/$pname" \
		--cgroup-parent "$CG/$pname" --name "$name" --image "$IMG" --log-path "$name.log" -- "$@" \
		2>"$T/create-$name.err") || return 1
	echo "$id" >>"$T/ids.seen"
	echo "$id"
}
cstate() { cri ps -a 2>/dev/null | awk -v id="$1" '$1 == id {print $4}'; }
wait_cstate() { # ID STATE
	for _ in $(seq 50); do [ "$(cstate "$1")" = "$2" ] && return 0; sleep 0.1; done
	return 1
}
wait_file_has() { # FILE PATTERN
	for _ in $(seq 50); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# ---------------------------------------------------------------- a pod of two containers
mkdir -p "$T/logs"
if P1=$(runp p1); then
	pass runp
else
	fail runp "$(cat "$T/runp-p1.err"); $(errs)"
	summary
	exit 1
fi
line=$(cri pods | awk -v id="$P1" '$1 == id')
if [ "$(echo "$line" | awk '{print $3, $4}')" = "SANDBOX_READY moor" ]; then
	pass pod-ready-on-handler-moor
else
	fail pod-ready-on-handler-moor "pods: $(cri pods 2>&1)"
fi
ip=$(cri inspectp "$P1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["network"]["ip"])' 2>/dev/null)
if [ "${ip%.*}" = "10.213.$(($$ % 250))" ]; then pass "pod-ip-from-cni ($ip)"; else fail pod-ip-from-cni "ip=$ip: $(cri inspectp "$P1" 2>&1 | head -c 400)"; fi

C1=$(create "$P1" p1 c1 sh -c 'echo out-line; echo err-line >&2; exec sleep 1000') &&
	C2=$(create "$P1" p1 c2 sleep 1000)
rc=$?
if [ $rc -eq 0 ] && cri start "$C1" 2>"$T/start.err" && cri start "$C2" 2>>"$T/start.err" &&
	wait_cstate "$C1" CONTAINER_RUNNING && wait_cstate "$C2" CONTAINER_RUNNING; then
	pass create-start-2-containers
else
	fail create-start-2-containers "rc=$rc $(cat "$T"/create-c*.err "$T/start.err" 2>/dev/null); ps: $(cri ps -a 2>&1); $(errs)"
	summary
	exit 1
fi
n=$(cri ps --pod "$P1" -q | wc -l)
if [ "$n" -eq 2 ]; then pass ps-pod-filter; else fail ps-pod-filter "$n containers listed in pod $P1"; fi
n=$(server_pids | wc -l)
if [ "$n" -eq 1 ]; then pass one-shim-for-pod-of-2; else fail one-shim-for-pod-of-2 "$n shim servers: $(server_pids | xargs)"; fi

# logs: the CRI plugin writes the container's stdio to LOG_DIR/LOG_PATH in the CRI log format.
wait_file_has "$T/logs/p1/c1.log" err-line
cri logs "$C1" >"$T/logs.out" 2>"$T/logs.err"
if [ "$(cat "$T/logs.out")" = out-line ] && [ "$(cat "$T/logs.err")" = err-line ]; then
	pass logs-stdout-stderr
else
	fail logs-stdout-stderr "stdout [$(cat "$T/logs.out")] stderr [$(cat "$T/logs.err")]"
fi

# exec -s (ExecSync): output and exit code.
cri exec -s "$C1" -- sh -c 'echo sync-out; echo sync-err >&2; exit 7' >"$T/xs.out" 2>"$T/xs.err"
rc=$?
if [ $rc -eq 7 ] && [ "$(cat "$T/xs.out")" = sync-out ] && [ "$(cat "$T/xs.err")" = sync-err ]; then
	pass exec-sync-output-exit-code
else
	fail exec-sync-output-exit-code "rc=$rc (want 7) out [$(cat "$T/xs.out")] err [$(cat "$T/xs.err")]; $(errs)"
fi
cri exec -s "$C2" -- cat /proc/1/cmdline 2>&1 | tr '\0' ' ' >"$T/xs2.out"
if [ "$(cat "$T/xs2.out")" = "sleep 1000 " ]; then
	pass exec-sync-in-second-container
else
	fail exec-sync-in-second-container "$(head -c 300 "$T/xs2.out")"
fi
# exec through the streaming server.
cri exec "$C1" -- sh -c 'echo stream-out; echo stream-err >&2; exit 4' >"$T/xe.out" 2>"$T/xe.err"
rc=$?
if [ $rc -eq 4 ] && [ "$(cat "$T/xe.out")" = stream-out ] && [ "$(cat "$T/xe.err")" = stream-err ]; then
	pass exec-stream-output-exit-code
else
	fail exec-stream-output-exit-code "rc=$rc (want 4) out [$(cat "$T/xe.out")] err [$(cat "$T/xe.err")]; $(errs)"
fi
cri exec "$C1" -- true >"$T/xt.out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then pass exec-stream-exit-0; else fail exec-stream-exit-0 "rc=$rc $(cat "$T/xt.out")"; fi
# The exec'd process shares the container's pid namespace: it sees the container's sleep as pid 1.
out=$(cri exec -s "$C1" -- sh -c 'cat /proc/1/comm; hostname')
if [ "$out" = $'sleep\np1' ]; then pass exec-in-container-namespaces; else fail exec-in-container-namespaces "[$out]"; fi

# ---------------------------------------------------------------- a second pod: its own shim
if P2=$(runp p2) && C3=$(create "$P2" p2 c3 sh -c 'echo pod2; exec sleep 1000') && cri start "$C3" &&
	wait_cstate "$C3" CONTAINER_RUNNING; then
	n=$(server_pids | wc -l)
	if [ "$n" -eq 2 ]; then pass one-shim-per-pod-2-pods; else fail one-shim-per-pod-2-pods "$n shim servers for 2 pods"; fi
else
	fail second-pod "$(cat "$T/runp-p2.err" "$T/create-c3.err" 2>/dev/null); $(errs)"
fi

ctrd_sockets >>"$T/sockets.seen"

# ---------------------------------------------------------------- stop, rm, stopp, rmp
cri stop -t 2 "$C1" 2>"$T/stop.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(cstate "$C1")" = CONTAINER_EXITED ] && [ "$(cstate "$C2")" = CONTAINER_RUNNING ]; then
	pass stop-one-container
else
	fail stop-one-container "rc=$rc c1=$(cstate "$C1") c2=$(cstate "$C2") $(cat "$T/stop.err"); $(errs)"
fi
code=$(cri inspect "$C1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["exit_code"])' 2>/dev/null)
# sleep, as pid 1, ignores SIGTERM; the stop timeout ends it with SIGKILL.
if [ "$code" = 137 ]; then pass stop-exit-code-137; else fail stop-exit-code-137 "exit_code=$code"; fi
if cri rm "$C1" 2>"$T/rm.err" && [ -z "$(cstate "$C1")" ]; then pass rm; else fail rm "$(cat "$T/rm.err")"; fi
if [ "$(server_pids | wc -l)" -eq 2 ]; then pass shim-stays-while-pod-runs; else fail shim-stays-while-pod-runs "$(server_pids | xargs)"; fi

# left_behind POD C...: what the pod's removal left.
left_behind() {
	local pod=$1 left="" id d
	shift
	for id in "$pod" "$@"; do
		[ -e "$TASKS_ROOT/k8s.io/$id" ] && left="${left}bundle $id; "
		grep -q " $TASKS_ROOT/k8s.io/$id/" /proc/self/mounts && left="${left}mount of $id; "
		[ -e "/run/containerd/$STATE_DIR/k8s.io/$id" ] && left="${left}runtime state $id; "
		for d in /sys/fs/cgroup/*/"${CG#/}"/*/"$id"; do [ -d "$d" ] && left="${left}cgroup $d; "; done
		CK task ls -q 2>/dev/null | grep -qx "$id" && left="${left}task $id; "
	done
	grep -q "/sandboxes/$pod/" /proc/self/mounts && left="${left}sandbox mount (shm); "
	cri pods -q | grep -qx "$pod" && left="${left}pod listed; "
	printf '%s' "$left"
}

# stopp with a container still running, then rmp: the pod's shim goes.
cri stopp "$P1" 2>"$T/stopp.err"
rc=$?
if [ $rc -eq 0 ] && [ "$(cstate "$C2")" = CONTAINER_EXITED ] &&
	[ "$(cri pods | awk -v id="$P1" '$1 == id {print $3}')" = SANDBOX_NOTREADY ]; then
	pass stopp
else
	fail stopp "rc=$rc c2=$(cstate "$C2") pods: $(cri pods 2>&1) $(cat "$T/stopp.err")"
fi
cri rm "$C2" >/dev/null 2>&1
if cri rmp "$P1" 2>"$T/rmp.err"; then pass rmp; else fail rmp "$(cat "$T/rmp.err"); $(errs)"; fi
for _ in $(seq 30); do [ "$(server_pids | wc -l)" -le 1 ] && break; sleep 0.1; done
left=$(left_behind "$P1" "$C1" "$C2")
n=$(server_pids | wc -l)
[ "$n" -eq 1 ] || left="${left}$n shim servers (want 1: pod p2's); "
if [ -z "$left" ]; then pass pod1-nothing-left; else fail pod1-nothing-left "$left"; fi

# rmp of a pod whose container still runs (kubelet stops first; rmp must cope anyway).
cri stopp "$P2" >/dev/null 2>&1
if cri rmp "$P2" 2>"$T/rmp2.err"; then pass rmp-second-pod; else fail rmp-second-pod "$(cat "$T/rmp2.err")"; fi

# Nothing at all left: shims, sockets, bundles, mounts, state, cgroups, netns, pods, containers.
for _ in $(seq 30); do [ -z "$(shim_pids)" ] && break; sleep 0.1; done
left=$(left_behind "$P2" "$C3")
[ -n "$(shim_pids)" ] && left="${left}shim pids $(shim_pids | xargs); "
for s in $(cat "$T/sockets.seen" 2>/dev/null); do [ -e "$s" ] && left="${left}socket $s; "; done
[ -n "$(cri ps -a -q)" ] && left="${left}containers $(cri ps -a -q | xargs); "
[ -n "$(cri pods -q)" ] && left="${left}pods $(cri pods -q | xargs); "
for ns in $(cat "$T/netns.seen"); do [ -e "/var/run/netns/$ns" ] && left="${left}netns $ns; "; done
# shellcheck disable=SC2011
[ "$(ls "$TASKS_ROOT/k8s.io" 2>/dev/null | wc -l)" -eq 0 ] || left="${left}bundles $(ls "$TASKS_ROOT/k8s.io" | xargs); "
awk -v t="$T/state" 'index($2, t) == 1' /proc/self/mounts | grep -q . && left="${left}mounts under state: $(awk -v t="$T/state" 'index($2, t) == 1 {print $2}' /proc/self/mounts | xargs); "
if [ -z "$left" ]; then pass nothing-left-after-rmp; else fail nothing-left-after-rmp "$left"; fi

summary
