# shellcheck shell=bash
# Shared helpers for the real-client end-to-end groups (containerd.sh, podman.sh).
# Source it; it defines no traps and starts nothing by itself.

CLIENTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# The runtime under test. moor's debug build unless RUNTIME says otherwise.
RUNTIME=${RUNTIME:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)/target/debug/moor}
# Where logs are kept after the run (the temp dirs are removed by each group's trap).
LOG_ROOT=${LOG_ROOT:-/tmp/moor-clients-logs}
# Per-command deadline in seconds.
CMD_TIMEOUT=${CMD_TIMEOUT:-60}

N_PASS=0
N_FAIL=0
N_SKIP=0

pass() { N_PASS=$((N_PASS + 1)); echo "PASS $1"; }
fail() {
	N_FAIL=$((N_FAIL + 1))
	local name=$1
	shift
	# Keep a FAIL on one line; long details go to the group's log dir.
	local why
	why=$(printf '%s' "$*" | tr '\n' ' ' | cut -c1-600)
	echo "FAIL $name: $why"
}
skip() { N_SKIP=$((N_SKIP + 1)); echo "SKIP $1: $2"; }
info() { echo "# $*"; }

# summary: last line of every group. Exit status is non-zero when something failed.
summary() {
	echo "$N_PASS passed, $N_FAIL failed ($N_SKIP skipped)"
	[ "$N_FAIL" -eq 0 ]
}

# A loud skip of the whole group, for when a client package cannot be installed.
skip_group() {
	echo "=================================================================="
	echo "SKIP GROUP $(basename "$0"): $*"
	echo "=================================================================="
	echo "0 passed, 0 failed (group skipped)"
	exit 0
}

die() { echo "ERROR: $*" >&2; exit 2; }

need_root() { [ "$(id -u)" -eq 0 ] || skip_group "needs root"; }

# ensure_pkgs "cmd:package" ...: install the Debian package when cmd is missing.
ensure_pkgs() {
	local missing=() spec
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null 2>&1 || missing+=("${spec#*:}")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	info "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y "${missing[@]}" >/dev/null 2>&1; then
		apt-get update >/dev/null 2>&1 || true
		apt-get install -y "${missing[@]}" >/dev/null 2>&1 ||
			skip_group "cannot install ${missing[*]} with apt-get"
	fi
	for spec in "$@"; do
		command -v "${spec%%:*}" >/dev/null 2>&1 ||
			skip_group "${spec%%:*} still missing after installing ${spec#*:}"
	done
}

check_runtime() {
	[ -x "$RUNTIME" ] || die "RUNTIME=$RUNTIME is not an executable file"
	case $RUNTIME in /*) ;; *) RUNTIME=$(command -v "$RUNTIME") || die "RUNTIME not found" ;; esac
	info "runtime: $RUNTIME ($("$RUNTIME" --version 2>&1 | head -n1))"
}

# to SECONDS cmd...: run with a deadline (SIGKILL 5 s after SIGTERM).
to() { local t=$1; shift; timeout -k 5 "$t" "$@"; }

# build_busybox_image WORKDIR OUT_TAR: an OCI image archive (layout tarred, tag "latest") holding a
# static busybox with every applet as a hard link in /bin, built offline with umoci.
build_busybox_image() {
	local work=$1 out=$2 bb=${BUSYBOX:-/bin/busybox}
	[ -x "$bb" ] || die "no busybox at $bb"
	file -L "$bb" 2>/dev/null | grep -q 'statically linked' || info "warning: $bb may not be static"
	rm -rf "$work" && mkdir -p "$work" || return 1
	(
		set -e
		cd "$work"
		umoci init --layout layout
		umoci new --image layout:latest
		umoci unpack --image layout:latest bundle >/dev/null
		local r=bundle/rootfs
		mkdir -p "$r/bin" "$r/etc" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/root" "$r/var" "$r/run"
		chmod 1777 "$r/tmp"
		cp "$bb" "$r/bin/busybox"
		chmod 0755 "$r/bin/busybox"
		local a
		for a in $("$r/bin/busybox" --list); do
			[ "$a" = busybox ] && continue
			[ -e "$r/bin/$a" ] || ln "$r/bin/busybox" "$r/bin/$a"
		done
		printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
		printf 'root:x:0:\nnobody:x:65534:\n' >"$r/etc/group"
		umoci repack --image layout:latest bundle >/dev/null
		umoci config --image layout:latest --config.cmd /bin/sh \
			--config.env PATH=/bin:/usr/bin:/sbin:/usr/sbin --config.workingdir / \
			--author moor-integration --history.comment "static busybox"
		umoci gc --layout layout
		tar -C layout -cf "$out" .
	) >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; return 1; }
}

# cg_remove PATH: remove a cgroup subtree (absolute, relative to each hierarchy root) on every mounted
# v1 controller and on the unified mount. Only for cgroups this group created: anything still in them
# belongs to the group's own containers and is killed first.
cg_remove() {
	local rel=${1#/} base d
	[ -n "$rel" ] || return 0
	case $rel in process_api* | */process_api*) return 0 ;; esac
	for base in /sys/fs/cgroup/*/; do
		[ -d "$base$rel" ] || continue
		# deepest first
		find "$base$rel" -depth -type d 2>/dev/null | while read -r d; do
			if [ -f "$d/cgroup.procs" ]; then
				local p
				for p in $(cat "$d/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
			fi
			[ -f "$d/freezer.state" ] && echo THAWED >"$d/freezer.state" 2>/dev/null
			rmdir "$d" 2>/dev/null || { sleep 0.3; rmdir "$d" 2>/dev/null; }
		done
	done
}

# cg_file PATH FILE: print the first existing /sys/fs/cgroup/<controller>/PATH/FILE's contents.
cg_read() {
	local rel=${1#/} file=$2 base
	for base in /sys/fs/cgroup/*/; do
		if [ -f "$base$rel/$file" ]; then cat "$base$rel/$file"; return 0; fi
	done
	return 1
}

# with_pty CMD...: run CMD under a pseudo-terminal, feed it stdin from $PTY_INPUT (written after a
# short delay, line by line), print everything it writes. Exits with CMD's status.
with_pty() {
	PTY_INPUT=${PTY_INPUT:-} "${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}" - "$@" <<'EOF'
import os, pty, sys, time, select, signal
argv = sys.argv[1:]
data = os.environ.get("PTY_INPUT", "")
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
out = b""
sent = False
start = time.time()
deadline = start + float(os.environ.get("PTY_TIMEOUT", "30"))
status = None
while True:
    if not sent and time.time() - start > 1.5:
        for line in data.splitlines(True):
            os.write(fd, line.encode())
            time.sleep(0.2)
        sent = True
    r, _, _ = select.select([fd], [], [], 0.2)
    if r:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        out += chunk
    wpid, st = os.waitpid(pid, os.WNOHANG)
    if wpid:
        status = st
        # drain what is left
        while True:
            r, _, _ = select.select([fd], [], [], 0.2)
            if not r:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        break
    if time.time() > deadline:
        os.kill(pid, signal.SIGKILL)
        sys.stdout.write(out.decode(errors="replace"))
        sys.stdout.write("\n[with_pty: timeout]\n")
        sys.exit(124)
if status is None:
    _, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else (status >> 8))
EOF
}

# make_runtime_wrapper DIR: with TRACE=1, a transparent exec wrapper logging every runtime call to
# $LOGDIR/runtime-calls.log; otherwise the runtime itself. Prints the path to use.
make_runtime_wrapper() {
	local dir=$1
	if [ "${TRACE:-0}" = 1 ]; then
		cat >"$dir/runtime-trace" <<EOF
#!/bin/sh
echo "\$(date +%T.%N) \$*" >>"$LOGDIR/runtime-calls.log"
exec "$RUNTIME" "\$@"
EOF
		chmod 0755 "$dir/runtime-trace"
		echo "$dir/runtime-trace"
	else
		echo "$RUNTIME"
	fi
}
