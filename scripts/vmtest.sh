#!/usr/bin/env bash
# vmtest.sh - the second-kernel test stage: boot Debian's stock kernel (linux-image-amd64,
# which has kprobes, fentry/fexit and BPF LSM support that the development machines lack)
# under QEMU with scripts/run-in-vm.sh and run the tests marked `vmtest` in it.
#
# usage: scripts/vmtest.sh [KERNEL] [-- PYTEST ARGS...]
#   KERNEL      a run-in-vm.sh kernel spec (default: linux-image-amd64)
#   PYTEST ARGS replace the default selection (-m vmtest and the test files that use it)
#
# needs (as root): qemu-system-x86 busybox-static cpio kmod xz-utils (see .ci/run).
# Exit status: pytest's (5, no test collected, counts as a failure), or run-in-vm's
# 124/125 for a timeout (after a second attempt) or a dead guest.
set -euo pipefail
cd "$(dirname "$0")/.."

KERNEL=linux-image-amd64
if (($#)) && [[ $1 != -- ]]; then KERNEL=$1; shift; fi
[[ ${1:-} == -- ]] && shift

# the real interpreter (not a shim): the guest sees the host's file system at the same paths
PY=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
if (($#)); then
    ARGS=("$@")
else
    # collecting only the files that have vmtest tests keeps the guest's (slow, emulated)
    # Python start-up short; -m vmtest then picks the tests
    mapfile -t FILES < <(grep -l 'pytest.mark.vmtest' tests/test_*.py)
    ARGS=(-m vmtest "${FILES[@]}")
fi
export PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONDONTWRITEBYTECODE=1
# The whole selection takes about 12 minutes under emulation (bpftrace's own kprobe tools
# run under both bpftrace and pybpf trace account for most of it), hence a 25-minute
# limit per attempt.
# A guest under TCG emulation can stall outright (a soft lockup with "timer handling"
# RCU stalls, before the first test; seen in 2 of 12 runs on a loaded 2-CPU host; they pass in about
# 110 s otherwise): a run that times out (124) is tried once more, and says so.
for attempt in 1 2; do
    start=$(date +%s)
    set +e
    scripts/run-in-vm.sh --timeout "${VMTEST_TIMEOUT:-1500}" "$KERNEL" -- \
        "$PY" -m pytest -q -p no:cacheprovider -rs "${ARGS[@]}"
    rc=$?
    set -e
    echo "vmtest: kernel $KERNEL, attempt $attempt, $(( $(date +%s) - start )) s, exit $rc"
    if ((rc != 124)); then break; fi
    echo "vmtest: the guest timed out (an emulator stall); trying once more" >&2
done
exit $rc
