#!/usr/bin/env bash
# The parity matrix's arm64 column: the Raspberry Pi's architecture, under emulation on this machine.
#   bash tests/arm64/run.sh [FIXTURES]          (FIXTURES: build/parity, from tests/parity/build_fixtures.py)
#
# 1. A Debian Bookworm arm64 root with Python 3.11 (Raspberry Pi OS Bookworm's Python), cached outside the
#    clone in $NEXTWORD_ARM64_CACHE (default ~/.cache/nextword-arm64), keyed by what it is built from.
#    It is debootstrap's first stage plus its packages unpacked: Python needs no maintainer script, and the
#    second stage is what takes tens of minutes under emulation.
# 2. qemu-user-static through binfmt_misc runs that root's python3.11 (QEMU_LD_PREFIX: no chroot), and any
#    process it starts (the CLI, the fuzz suite's children), as a Cortex-A72: the Raspberry Pi 4's core
#    ($NEXTWORD_ARM64_CPU: another of `qemu-aarch64-static -cpu help`; see docs/device.md for cortex-a76).
# 3. Per engine extra, nextword's wheel built from this checkout with `[tflite]` (tflite-runtime 2.14 on
#    numpy<2, the Pi's), `[litert]` and `[onnx]`, installed from aarch64 wheels by this machine's pip
#    (--platform --target: no compiling, no pip under emulation), then, in the root: every parity cell of
#    that engine for the fixtures in matrix.ARM64_MODELS, on 256 of each fixture's text contexts plus every
#    edge case (tests/parity/test_parity.py: same tolerances as every other column; emulation costs ~10x a
#    context), without the two Hypothesis checks (pure-Python tokenizing; engines against each other, one
#    engine per environment here), the device checks
#    (tests/arm64/test_device.py: predict, inspect, keyboard in pipe mode, a session with a profile), and on
#    tflite-runtime the fuzz suite's short run.
# A missing prerequisite (not root, no binfmt_misc, no registry) skips the column: one line saying why,
# written to FIXTURES/arm64-skipped.txt, which tests/parity/matrix.py prints.
set -euo pipefail
cd "$(dirname "$0")/../.."
fixtures=$(realpath "${1:-build/parity}")
cache=${NEXTWORD_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nextword-arm64}
work=build/arm64
python=.venv/bin/python
rm -f "$fixtures/arm64-skipped.txt" "$fixtures"/rows-arm64-*.jsonl

skip() {
    echo "arm64 column skipped: $*" | tee "$fixtures/arm64-skipped.txt"
    exit 0
}

[ -f "$fixtures/manifest.json" ] || { echo "tests/arm64/run.sh: no parity fixtures in $fixtures" >&2; exit 1; }
[ "$(uname -m)" != aarch64 ] || skip "this machine is arm64 itself: its own columns are the arm64 ones"
[ "$(id -u)" = 0 ] || skip "debootstrap and binfmt_misc need root (run as root, or in CI)"

# -- prerequisites: qemu-user-static and debootstrap from Debian, binfmt_misc with aarch64 registered
if ! command -v qemu-aarch64-static > /dev/null || ! command -v debootstrap > /dev/null; then
    command -v apt-get > /dev/null || skip "qemu-user-static and debootstrap are missing and there is no apt-get"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        qemu-user-static debootstrap > /dev/null; } 2>&1 | tail -3 || true
    command -v qemu-aarch64-static > /dev/null && command -v debootstrap > /dev/null \
        || skip "apt-get could not install qemu-user-static and debootstrap (no route to Debian's packages?)"
fi
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount binfmt_misc -t binfmt_misc "$binfmt" 2> /dev/null \
    || skip "binfmt_misc is not mounted and cannot be (a container without the privilege?)"
if [ ! -e "$binfmt/qemu-aarch64" ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    { [ -f "$conf" ] && cat "$conf" > "$binfmt/register"; } 2> /dev/null \
        || skip "could not register qemu-aarch64 with binfmt_misc"
fi
grep -q enabled "$binfmt/qemu-aarch64" || skip "binfmt_misc's qemu-aarch64 entry is disabled"

# -- the root: cached by suite, mirror, packages and this recipe's version
mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2> /dev/null | grep -v security | head -1)
mirror=${mirror:-http://deb.debian.org/debian}
recipe="bookworm arm64 minbase python3 $mirror unpacked-v1"
key=$(printf '%s' "$recipe" | sha256sum | cut -c1-16)
root="$cache/root-$key"
started=$(date +%s)
if [ ! -x "$root/usr/bin/python3.11" ]; then
    echo "== arm64: building the Bookworm root ($recipe) in $root"
    mkdir -p "$cache"
    rm -rf "$root.partial"
    debootstrap --foreign --arch=arm64 --variant=minbase --include=python3 bookworm "$root.partial" "$mirror" \
        > "$cache/debootstrap.log" 2>&1 || { tail -5 "$cache/debootstrap.log"; skip "debootstrap failed (log: $cache/debootstrap.log)"; }
    for deb in "$root.partial"/var/cache/apt/archives/*.deb; do dpkg-deb -x "$deb" "$root.partial"; done
    rm -f "$root.partial"/var/cache/apt/archives/*.deb
    mv "$root.partial" "$root"  # only a whole root is ever used
fi
export QEMU_LD_PREFIX="$root" QEMU_CPU="${NEXTWORD_ARM64_CPU:-cortex-a72}"
# qemu-user 7.2 shows an arm64 program this machine's own /proc/cpuinfo (x86), and ai-edge-litert's CPU
# detection crashes on it; qemu reads paths under QEMU_LD_PREFIX first, so the root gets the Pi's own.
cpuinfo="tests/arm64/cpuinfo-$QEMU_CPU.txt"
[ -f "$cpuinfo" ] || { echo "tests/arm64/run.sh: no $cpuinfo for the CPU $QEMU_CPU (cortex-a72: Pi 4, cortex-a76: Pi 5)" >&2; exit 1; }
mkdir -p "$root/proc"
cp "$cpuinfo" "$root/proc/cpuinfo"
arm_python="$root/usr/bin/python3.11"
echo "== arm64: $("$arm_python" -c 'import platform, sys; print(platform.machine(), "Python", sys.version.split()[0])') on $QEMU_CPU under $(qemu-aarch64-static --version | head -1) ($(( $(date +%s) - started )) s)"

# -- nextword from this checkout, per engine extra, from aarch64 wheels
rm -rf "$work"
mkdir -p "$work"
rm -rf build/lib build/bdist.*  # setuptools would package stale files left there
"$python" -m pip wheel -q --no-deps -w "$work/wheel" . > "$work/wheel.log" 2>&1 || { tail -20 "$work/wheel.log"; exit 1; }
wheel=$(ls "$work"/wheel/nextword-*.whl)
models=$("$python" -c "import sys; sys.path.insert(0, 'tests/parity'); import matrix; print(','.join(matrix.ARM64_MODELS))")
platforms=(--platform manylinux2014_aarch64)
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done  # glibc 2.36: Bookworm's
for env in tflite litert onnx; do
    site="$work/site-$env"
    if ! "$python" -m pip install -q --target "$site" "${platforms[@]}" --python-version 3.11 --implementation cp \
            --abi cp311 --only-binary=:all: "$wheel[$env]" "pytest>=8" "hypothesis>=6.100" > "$work/pip-$env.log" 2>&1; then
        grep -v "^WARNING: Location" "$work/pip-$env.log" | tail -5
        grep -q -i -E "connection|resolve|network|timed out" "$work/pip-$env.log" \
            && skip "pip could not reach the package registry for the aarch64 wheels"
        echo "tests/arm64/run.sh: the aarch64 wheels of nextword[$env] could not be installed (a finding: see above)" >&2
        exit 1
    fi
    suites=(tests/parity/test_parity.py tests/arm64/test_device.py)
    [ "$env" = tflite ] && suites+=(tests/parity/test_fuzz.py)
    echo "== arm64 environment [$env]: $(PYTHONPATH="$site" "$arm_python" -c 'import numpy; from nextword.engines import installed_engines as e; print("engines", e("tflite") + e("onnx"), "numpy", numpy.__version__)')"
    PYTHONPATH="$site" NEXTWORD_PARITY_DIR="$fixtures" NEXTWORD_PARITY_OUT="$fixtures/rows-arm64-$env.jsonl" \
        NEXTWORD_PARITY_MODELS="$models" NEXTWORD_PARITY_CONTEXTS=256 NEXTWORD_EXPECT_MACHINE=aarch64 \
        "$arm_python" -m pytest "${suites[@]}" -q -p no:cacheprovider --durations=5 \
        -k "not test_tokenization_in_the_model_file and not test_float32_suggestions_agree_across_engines"
done
echo "== arm64 column: $(( $(date +%s) - started )) s"
