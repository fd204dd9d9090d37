#!/bin/bash
# Leaks and fork safety of moor's shim under containerd 1.6 (issue 15).
#
#   integration/shim/leaks.sh                     # the shim of this repository's debug build
#   REFERENCE=runc integration/shim/leaks.sh      # the same through io.containerd.runc.v2 + runc
#
# - RUNS (200) sequential `ctr run --rm IMAGE ID /bin/true`: every one exits 0, and then no shim
#   process, shim socket, bundle, mount, runtime state or cgroup is left.
# - containerd restarted (SIGTERM, start again) while three containers run (two in one pod, one
#   alone): their shims and processes survive, the new daemon still manages the tasks (state, exec,
#   kill, delete), and then nothing is left.
# - Fork safety: in one pod (one shim), 50 parallel `ctr task exec` into a running container while
#   20 more containers of that pod start: every command ends within its deadline (no hang), every
#   exec's exit code and output are its own, all 20 containers run; then nothing is left.
# A private containerd (integration/shim/lib-ctrd.sh); cgroups under /moor-shim/leaks-<pid>/.
# Env: SHIM, RUNS, EXECS, STARTS, LOG_ROOT, CMD_TIMEOUT, KEEP=1.
set -u
. "$(dirname "$0")/../clients/lib.sh"
. "$(dirname "$0")/lib-ctrd.sh"

need_root
if ! command -v containerd >/dev/null 2>&1 || ! command -v ctr >/dev/null 2>&1; then
	skip_group "containerd is not installed (this group needs the real containerd 1.6: apt-get install containerd)"
fi
ensure_pkgs umoci:umoci
RUNS=${RUNS:-200}
EXECS=${EXECS:-50}
STARTS=${STARTS:-20}

ctrd_init leaks
trap ctrd_cleanup EXIT
trap 'exit 130' INT TERM
ctrd_config
ctrd_start
info "containerd $(containerd --version | awk '{print $3}') at $SOCK, runtime $RTYPE, cgroups $CG"
if ctrd_import "$NS"; then pass image-import; else
	fail image-import "$(cat "$T/import-$NS.out" 2>/dev/null)"
	summary
	exit 1
fi
FIFO=(--fifo-dir "$T/fifo")
errs() { grep -E 'level=(error|warning)' "$T/containerd.log" | tail -n 3; }
sock_of() { echo "/run/containerd/s/$(printf '%s' "$SOCK/$NS/$1" | sha256sum | cut -d' ' -f1)"; }
task_status() { C task ls 2>/dev/null | awk -v id="$1" '$1 == id {print $3}'; }
wait_status() { # ID STATUS
	local i
	for i in $(seq 100); do [ "$(task_status "$1")" = "$2" ] && return 0; sleep 0.1; done
	return 1
}
# left GROUP...: what is left of the groups (shim sockets) and of every container of this daemon.
left() {
	local left="" g d
	for _ in $(seq 50); do [ -z "$(shim_pids)" ] && break; sleep 0.1; done
	[ -n "$(shim_pids)" ] && left="shim pids $(shim_pids | xargs); "
	for g in "$@"; do [ -e "$(sock_of "$g")" ] && left="${left}socket of $g; "; done
	[ "$(ls "$TASKS_ROOT/$NS" 2>/dev/null | wc -l)" -eq 0 ] || left="${left}bundles $(ls "$TASKS_ROOT/$NS" | head -n 5 | xargs); "
	awk -v t="$T/state" 'index($2, t) == 1' /proc/self/mounts | grep -q . &&
		left="${left}mounts $(awk -v t="$T/state" 'index($2, t) == 1 {print $2}' /proc/self/mounts | head -n 3 | xargs); "
	[ "$(ls "/run/containerd/$STATE_DIR/$NS" 2>/dev/null | wc -l)" -eq 0 ] ||
		left="${left}runtime state $(ls "/run/containerd/$STATE_DIR/$NS" | head -n 5 | xargs); "
	for d in /sys/fs/cgroup/*/"${CG#/}"; do
		[ -d "$d" ] && [ -n "$(find "$d" -mindepth 1 -type d | head -n 1)" ] && left="${left}cgroups in $d; "
	done
	[ -n "$(C task ls -q 2>/dev/null)" ] && left="${left}tasks $(C task ls -q | xargs); "
	[ -n "$(C container ls -q 2>/dev/null)" ] && left="${left}containers $(C container ls -q | head -n 5 | xargs); "
	printf '%s' "$left"
}
remove() { # ID...
	local id
	for id in "$@"; do C task kill -s SIGKILL "$id" >/dev/null 2>&1; done
	for id in "$@"; do
		wait_status "$id" STOPPED
		C task rm "$id" >/dev/null 2>&1
		C container rm "$id" >/dev/null 2>&1
	done
}
fds_of() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

# ---------------------------------------------------------------- RUNS x ctr run --rm
fds0=$(fds_of "$DAEMON_PID")
bad="" t0=$(date +%s)
for i in $(seq "$RUNS"); do
	C run "${FIFO[@]}" --rm --runtime "$RTYPE" --cgroup "$CG/r$i" "$IMG" "r$i" /bin/true </dev/null \
		>"$T/run.out" 2>&1 || bad="$bad r$i:rc=$?:$(head -c 200 "$T/run.out")"
	[ -n "$bad" ] && [ "${#bad}" -gt 2000 ] && break
done
info "$RUNS runs in $(($(date +%s) - t0)) s"
if [ -z "$bad" ]; then pass "run-rm-x$RUNS"; else fail "run-rm-x$RUNS" "$bad; $(errs)"; fi
groups=$(seq -f 'r%g' "$RUNS")
# shellcheck disable=SC2086
l=$(left $groups)
if [ -z "$l" ]; then pass "run-rm-x$RUNS-nothing-left"; else fail "run-rm-x$RUNS-nothing-left" "$l"; fi
# Not the shim's: containerd's own descriptors, for the record (a leaked shim connection shows here).
info "containerd fds: $fds0 before the runs, $(fds_of "$DAEMON_PID") after"

# ---------------------------------------------------------------- containerd restart
POD=pod-$$
ok=1
for id in k1 k2; do
	C run "${FIFO[@]}" -d --runtime "$RTYPE" --cgroup "$CG/$id" --annotation "io.kubernetes.cri.sandbox-id=$POD" \
		"$IMG" $id sleep 1000 >"$T/$id.out" 2>&1 || ok=0
done
C run "${FIFO[@]}" -d --runtime "$RTYPE" --cgroup "$CG/k3" "$IMG" k3 sleep 1000 >"$T/k3.out" 2>&1 || ok=0
if [ $ok = 1 ] && wait_status k1 RUNNING && wait_status k2 RUNNING && wait_status k3 RUNNING; then
	shims=$(server_pids | sort | xargs)
	pids="$(C task ls | awk '$1 ~ /^k[123]$/ {print $2}' | xargs)"
	ctrd_stop
	sleep 1
	alive=1
	for p in $shims $pids; do kill -0 "$p" 2>/dev/null || alive=0; done
	if [ $alive = 1 ] && [ "$(echo "$shims" | wc -w)" -eq 2 ]; then
		pass shims-survive-containerd-stop
	else
		fail shims-survive-containerd-stop "shims [$shims] pids [$pids]: some gone (or not 2 shims)"
	fi
	ctrd_start
	st="$(task_status k1) $(task_status k2) $(task_status k3)"
	if [ "$st" = "RUNNING RUNNING RUNNING" ] && [ "$(server_pids | sort | xargs)" = "$shims" ]; then
		pass tasks-managed-after-restart
	else
		fail tasks-managed-after-restart "states [$st] shims [$(server_pids | xargs)] were [$shims]; $(errs)"
	fi
	C task exec "${FIFO[@]}" --exec-id rx k1 sh -c 'echo after-restart; exit 6' </dev/null >"$T/rx.out" 2>&1
	rc=$?
	if [ $rc -eq 6 ] && [ "$(cat "$T/rx.out")" = after-restart ]; then
		pass exec-after-restart
	else
		fail exec-after-restart "rc=$rc (want 6) $(cat "$T/rx.out"); $(errs)"
	fi
	remove k1 k2 k3
	l=$(left "$POD" k3)
	if [ -z "$l" ]; then pass restart-deleted-nothing-left; else fail restart-deleted-nothing-left "$l"; fi
else
	fail restart-setup "$(cat "$T"/k?.out); $(errs)"
	remove k1 k2 k3
fi

# ---------------------------------------------------------------- fork safety
# All in one pod: one shim creates containers and execs processes at the same time.
POD=fs-$$
C run "${FIFO[@]}" -d --runtime "$RTYPE" --cgroup "$CG/fs-target" --annotation "io.kubernetes.cri.sandbox-id=$POD" \
	"$IMG" fs-target sleep 1000 >"$T/fs-target.out" 2>&1
if wait_status fs-target RUNNING; then
	mkdir -p "$T/fs"
	pids=()
	t0=$(date +%s)
	for i in $(seq "$STARTS"); do
		(
			to 90 ctr -a "$SOCK" -n "$NS" run "${FIFO[@]}" -d --runtime "$RTYPE" --cgroup "$CG/fs-$i" \
				--annotation "io.kubernetes.cri.sandbox-id=$POD" "$IMG" "fs-$i" sleep 1000 \
				</dev/null >"$T/fs/start-$i.out" 2>&1
			echo $? >"$T/fs/start-$i.rc"
		) &
		pids+=($!)
	done
	for i in $(seq "$EXECS"); do
		(
			to 90 ctr -a "$SOCK" -n "$NS" task exec "${FIFO[@]}" --exec-id "x$i" fs-target \
				sh -c "echo out-$i; exit $((i % 100 + 1))" </dev/null >"$T/fs/exec-$i.out" 2>&1
			echo $? >"$T/fs/exec-$i.rc"
		) &
		pids+=($!)
	done
	wait "${pids[@]}"
	info "$STARTS starts and $EXECS execs in $(($(date +%s) - t0)) s"
	hung="" wrong=""
	for i in $(seq "$STARTS"); do
		rc=$(cat "$T/fs/start-$i.rc")
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && hung="$hung start-$i"
		[ "$rc" = 0 ] || wrong="$wrong start-$i:rc=$rc:$(head -c 150 "$T/fs/start-$i.out")"
	done
	for i in $(seq "$EXECS"); do
		rc=$(cat "$T/fs/exec-$i.rc")
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && hung="$hung exec-$i"
		[ "$rc" = $((i % 100 + 1)) ] && [ "$(cat "$T/fs/exec-$i.out")" = "out-$i" ] ||
			wrong="$wrong exec-$i:rc=$rc:$(head -c 150 "$T/fs/exec-$i.out")"
	done
	if [ -z "$hung" ]; then pass fork-safety-no-hang; else fail fork-safety-no-hang "timed out:$hung"; fi
	if [ -z "$wrong" ]; then
		pass "fork-safety-$EXECS-exec-exit-codes-and-output"
	else
		fail "fork-safety-$EXECS-exec-exit-codes-and-output" "$(echo "$wrong" | head -c 800); $(errs)"
	fi
	n=0
	for i in $(seq "$STARTS"); do [ "$(task_status "fs-$i")" = RUNNING ] && n=$((n + 1)); done
	if [ $n -eq "$STARTS" ]; then pass "fork-safety-$STARTS-started"; else fail "fork-safety-$STARTS-started" "$n running"; fi
	n=$(server_pids | wc -l)
	if [ "$n" -eq 1 ]; then pass fork-safety-one-shim; else fail fork-safety-one-shim "$n shim servers"; fi
	# shellcheck disable=SC2046
	remove fs-target $(seq -f 'fs-%g' "$STARTS")
	l=$(left "$POD")
	if [ -z "$l" ]; then pass fork-safety-nothing-left; else fail fork-safety-nothing-left "$l"; fi
else
	fail fork-safety-setup "$(cat "$T/fs-target.out"); $(errs)"
fi

summary
