#!/usr/bin/env bash
# Reproduce the weights shipped in dmaster/weights/ (see docs/model_card.md).
#
#   bash recipes/shipped_weights.sh            # ~3 h on a 2-core CPU (training ~1 h, residual and policy fits ~70 min, benchmark ~15 min)
#
# 1. fetch CC/GPL music from four Debian packages and collect it in data/raw/debian_music;
# 2. train the parameter estimator and the U-Net baseline on it, side by side (degraded on
#    the fly; the train/val/test split is by track, from a hash of the track id);
# 3. copy the best checkpoints (weights, hyper-parameters, config, spec version; no optimiser
#    state) into dmaster/weights/, and fit each one's residual correction and policy next to them;
# 4. measure them on the held-out test tracks with benchmarks/quality.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PARAM_MINUTES=${PARAM_MINUTES:-62}   # side by side, one thread each
UNET_MINUTES=${UNET_MINUTES:-40}

if [ ! -d data/raw/debian_music ]; then
    mkdir -p data/raw/debian_packages
    (cd data/raw/debian_packages && apt-get download fretsonfire-songs-sectoid fretsonfire-songs-muldjord \
        hyperrogue-music wesnoth-1.16-music && for deb in *.deb; do dpkg -x "$deb" extracted; done)
    python recipes/prepare_debian_music.py data/raw/debian_packages/extracted data/raw/debian_music
fi
mkdir -p experiments

common=(--music-root data/raw/debian_music --steps 100000 --window-seconds 3 --batch-size 8 --val-every 250
        --device cpu)
# the shipped parameter model used an end-to-end loss weight of 0.5 (from 20 % of the run on)
OMP_NUM_THREADS=1 python -m dmaster.train --model param --run-name shipped_param "${common[@]}" --seed 0 \
    --max-minutes "$PARAM_MINUTES" --e2e-weight 0.5 > experiments/shipped_param.out 2>&1 &
OMP_NUM_THREADS=1 python -m dmaster.train --model unet --run-name shipped_unet "${common[@]}" --seed 0 \
    --max-minutes "$UNET_MINUTES" > experiments/shipped_unet.out 2>&1 &
wait

python recipes/export_weights.py models/shipped_param/best.pt dmaster/weights/param.pt
python recipes/export_weights.py models/shipped_unet/best.pt dmaster/weights/unet.pt
# each model's residual correction (tonal balance and level), fitted to its restorations of the train tracks,
# then each model's policy on the val tracks (the parameter model's presence calibration, inverse strengths and
# residual strength under the harm budget; the U-Net's mask and residual strengths at its strongest on degraded music)
python recipes/fit_residual.py --model dmaster/weights/param.pt
python recipes/fit_residual.py --model dmaster/weights/unet.pt
python recipes/fit_policy.py --model dmaster/weights/param.pt
python recipes/fit_policy.py --model dmaster/weights/unet.pt --clean-budget inf
python benchmarks/quality.py --music-root data/raw/debian_music --out experiments/quality
