#!/usr/bin/env bash
# The retraining of recipes/retrain.sh in ONE prepared call on a lent GPU machine, built so that the
# device time cannot be lost without learning why: every stage has a time limit, a stage that hangs is stopped
# with SIGABRT so that Python's faulthandler prints where it hung, and the weights are exported (without
# optimiser state: a checkpoint with it is over the 16 MB a file may bring back) even when training stops early.
#
#   bash recipes/device_retrain.sh prepare     # HERE, first: wheels for the device's Python 3.12 into .whl/
#                                              # and the 8 s excerpts of the corpus (about 40 MB)
#   then the device tool: run(command="OUT=$OUT bash recipes/device_retrain.sh", timeout_s=600,
#                             carry=[".whl", "data/raw/debian_music_excerpts"])
#   back HERE, with the two files from $OUT: mkdir -p models/retrained && cp FILES_AT/{param,unet}.pt models/retrained/
#   and `bash recipes/retrain.sh` (CPU) fits each one's residual correction and the policy; then benchmarks/quality.py.
#
# The device's image has Python 3.12 with PyTorch, numba, numpy, scipy, einops, matplotlib, tqdm and PyYAML;
# soundfile, soxr, pyloudnorm, torchcomp and dasp-pytorch travel as wheels, torchlpc (source only on PyPI) as
# its pure Python package without the compiled extension (it falls back to its numba kernels). The machine has
# no plain `python`, so one that runs python3 is put first on PATH (a symbolic link would lose its environment).
# One call may run 600 s and a session has 15 device minutes with the start: MINUTES (default 6) of training
# leaves time for the start, the checks and the export inside one call.
set -uo pipefail
cd "$(dirname "$0")/.."
WHEELS=(soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0 pyloudnorm==0.2.0
        torchcomp==0.2.1 dasp-pytorch==0.0.1)  # the versions this project is tested with here

if [ "${1:-}" = prepare ]; then
    set -e
    rm -rf .whl && mkdir -p .whl/pure
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$p")
    done
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" -d .whl "${WHEELS[@]}"
    lpc=$(python -c "import torchlpc, os; print(os.path.dirname(torchlpc.__file__))")
    cp -r "$lpc" .whl/pure/torchlpc
    rm -rf .whl/pure/torchlpc/_C*.so .whl/pure/torchlpc/__pycache__
    STAGE=excerpts bash recipes/retrain.sh
    du -sh .whl data/raw/debian_music_excerpts
    exit 0
fi

OUT=${OUT:-experiments/device}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-6}
mkdir -p "$OUT" /tmp/bin
export PYTHONUNBUFFERED=1 PYTHONFAULTHANDLER=1 NUMBA_CACHE_DIR=/tmp/numba_cache
printf '#!/bin/sh\nexec python3 "$@"\n' > /tmp/bin/python && chmod +x /tmp/bin/python
export PATH=/tmp/bin:$PATH
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "the wheels did not install"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD/.whl/pure:$PWD
fi

stage() {  # stage NAME SECONDS COMMAND...: run it under a limit, its output in $OUT/NAME.log as well
    local name=$1 limit=$2
    shift 2
    echo "== $name (at most ${limit} s): $*"
    local started=$SECONDS
    timeout -s ABRT -k 10 "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
    local status=$?
    echo "== $name: exit $status after $(( SECONDS - started )) s"
    return $status
}

stage imports 120 python -c "import torch, soundfile, soxr, pyloudnorm, torchlpc, torchcomp, dasp_pytorch, dmaster.train
print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())" || exit 1
# the compressor's numba kernels compile on their first call; a few steps of each model show that training runs
for kind in param unet; do
    stage "smoke_$kind" 180 python -m dmaster.train --model "$kind" --data synthetic --steps 3 --batch-size 2 \
        --val-every 3 --val-batches 1 --warmup-steps 1 --device "$DEVICE" --run-name "device_smoke_$kind" \
        --models-dir /tmp/models --logs-dir /tmp/logs || exit 1
done
hours=$(python3 -c "print($MINUTES / 60)")
stage train $(( MINUTES * 60 + 150 )) env DEVICE="$DEVICE" STAGE=train HOURS="$hours" PARAM_BATCH="${PARAM_BATCH:-64}" \
    UNET_BATCH="${UNET_BATCH:-32}" INIT_PARAM="${INIT_PARAM:-dmaster/weights/param.pt}" \
    INIT_UNET="${INIT_UNET:-dmaster/weights/unet.pt}" bash recipes/retrain.sh
for kind in param unet; do
    cp "experiments/retrain_$kind.out" "$OUT/" 2>/dev/null
    [ -f "models/retrain_$kind/best.pt" ] && stage "export_$kind" 60 python recipes/export_weights.py \
        "models/retrain_$kind/best.pt" "$OUT/$kind.pt"
done
ls -la "$OUT"
