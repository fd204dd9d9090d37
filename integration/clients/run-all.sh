#!/bin/bash
# Runs the real-client groups (containerd.sh, podman.sh) for RUNTIME and, with REFERENCE=1, also for
# runc as the reference; prints a summary table.
#
#   integration/clients/run-all.sh                         # moor (target/debug/moor)
#   REFERENCE=1 integration/clients/run-all.sh             # moor and /usr/sbin/runc
#   RUNTIME=target/release/moor CLIENT_GROUPS="podman" integration/clients/run-all.sh
#
# Env: RUNTIME (default <repo>/target/debug/moor), REFERENCE=1, REFERENCE_RUNTIME
# (default /usr/sbin/runc), CLIENT_GROUPS (default "containerd podman"), SNAPSHOT=0 to run the binary in
# place instead of a private copy (the copy keeps a rebuild during the run from changing it),
# LOG_ROOT (default /tmp/moor-clients-logs), plus what the groups take (TRACE=1, CMD_TIMEOUT, KEEP=1).
# Exit status: 0 when nothing failed (a group skipped because its client cannot be installed counts
# as not failed, loudly).
set -u
DIR=$(cd "$(dirname "$0")" && pwd)
RUNTIME=${RUNTIME:-$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)/target/debug/moor}
REFERENCE_RUNTIME=${REFERENCE_RUNTIME:-/usr/sbin/runc}
GROUPS_TO_RUN=${CLIENT_GROUPS:-containerd podman}
export LOG_ROOT=${LOG_ROOT:-/tmp/moor-clients-logs}
mkdir -p "$LOG_ROOT"

[ "$(id -u)" -eq 0 ] || { echo "run-all.sh: needs root"; exit 2; }
[ -x "$RUNTIME" ] || { echo "run-all.sh: RUNTIME=$RUNTIME is not executable"; exit 2; }

BIN_DIR=
cleanup() { [ -n "$BIN_DIR" ] && rm -rf "$BIN_DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

runtimes=("$RUNTIME")
if [ "${SNAPSHOT:-1}" = 1 ]; then
	BIN_DIR=$(mktemp -d /tmp/moor-clients-bin.XXXXXX)
	cp "$RUNTIME" "$BIN_DIR/$(basename "$RUNTIME")"
	runtimes=("$BIN_DIR/$(basename "$RUNTIME")")
fi
[ "${REFERENCE:-0}" = 1 ] && runtimes+=("$REFERENCE_RUNTIME")

rows=()
failed_names=()
status=0
for rt in "${runtimes[@]}"; do
	for g in $GROUPS_TO_RUN; do
		log=$LOG_ROOT/run-all-$(basename "$rt")-$g.txt
		echo "=== $g with $rt"
		RUNTIME=$rt bash "$DIR/$g.sh" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
		last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
		p=$(echo "$last" | awk '{print $1}')
		f=$(echo "$last" | awk '{print $3}')
		s=$(echo "$last" | sed -n 's/.*(\([0-9]*\) skipped).*/\1/p')
		if grep -q '^SKIP GROUP' "$log"; then
			res=SKIPPED
		elif [ "$rc" -eq 0 ] && [ -n "$last" ]; then
			res=ok
		else
			res=FAILED
			status=1
		fi
		rows+=("$(printf '%-11s %-10s %6s %6s %7s  %s' "$g" "$(basename "$rt")" "${p:--}" "${f:--}" "${s:-0}" "$res")")
		while read -r n; do
			[ -n "$n" ] && failed_names+=("$g/$(basename "$rt"): $n")
		done < <(sed -n 's/^FAIL \([^:]*\):.*/\1/p' "$log")
	done
done

echo
echo "=================== summary ==================="
printf '%-11s %-10s %6s %6s %7s  %s\n' group runtime passed failed skipped result
for r in "${rows[@]}"; do echo "$r"; done
if [ ${#failed_names[@]} -gt 0 ]; then
	echo
	echo "failed checks:"
	for n in "${failed_names[@]}"; do echo "  $n"; done
fi
echo "logs: $LOG_ROOT"
exit $status
