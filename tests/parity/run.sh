#!/usr/bin/env bash
# The parity suite across three real environments, built from the repo's own files:
#   1. training (.venv: the `train` extra): fixture models, every export, Keras references;
#   2. .venv-litert: runtime only, ai-edge-litert + onnxruntime on numpy 2;
#   3. .venv-tflite: runtime only, tflite-runtime 2.14 on numpy<2 (Python 3.11);
#   4. .venv with Debian's Chromium: the ONNX files in the web client's ONNX Runtime Web (wasm);
#   5. arm64 (tests/arm64/run.sh): a Raspberry Pi OS Bookworm root under emulation, each Python engine.
# Environments 2, 3 and 5 measure every file on their engines against the references; the matrix of all
# cells is printed last. Run from anywhere after .venv exists (the README's test command does it).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/parity
python=$(command -v python3.11 || command -v python3)
rm -rf "$out"
mkdir -p "$out"

echo "== parity environment 1 (training): fixtures, exports, Keras references"
.venv/bin/python tests/parity/build_fixtures.py "$out" > "$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 1; }
tail -1 "$out/build.log"

for env in litert tflite; do
    venv=".venv-$env"
    extras="tflite,dev"
    [ "$env" = litert ] && extras="litert,onnx,dev"
    echo "== parity environment $venv: pip install -e \".[$extras]\" (no TensorFlow)"
    "$python" -m venv "$venv"
    if ! "$venv/bin/pip" install -q -e ".[$extras]" > "$out/pip-$env.log" 2>&1; then
        grep -v "^WARNING: Location" "$out/pip-$env.log" | tail -20
        exit 1
    fi
    "$venv/bin/python" -c "import sys, numpy; import nextword; assert 'tensorflow' not in sys.modules; print('python', sys.version.split()[0], 'numpy', numpy.__version__)"
    NEXTWORD_PARITY_DIR="$out" NEXTWORD_PARITY_OUT="$out/rows-$env.jsonl" \
        "$venv/bin/python" -m pytest tests/parity -q -p no:cacheprovider --ignore=tests/parity/test_web_parity.py
done

echo "== parity environment .venv + Chromium: ONNX Runtime Web (wasm), the web client's engine"
NEXTWORD_PARITY_DIR="$out" NEXTWORD_PARITY_OUT="$out/rows-web.jsonl" \
    .venv/bin/python -m pytest tests/parity/test_web_parity.py -q -p no:cacheprovider

echo "== parity environment arm64: Raspberry Pi OS Bookworm (Python 3.11) under qemu-user-static"
bash tests/arm64/run.sh "$out"

.venv/bin/python tests/parity/matrix.py "$out"
