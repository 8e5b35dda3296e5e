#!/usr/bin/env bash
# Reproduce the weights shipped in dmaster/weights/ (see the model card in README.md).
#
#   bash recipes/shipped_weights.sh            # ~4 h on a 2-core CPU, minutes on a GPU
#
# 1. fetch CC/GPL music from four Debian packages and collect it in data/raw/debian_music;
# 2. train the parameter estimator and the U-Net baseline on it (degraded on the fly; the
#    train/val/test split is by track, from a hash of the track id): a first run of each side
#    by side, then a fine-tuning run of each (fresh optimiser and schedule; the parameter
#    model with a stronger end-to-end loss, its inverse weighted by the presence probability
#    as in master());
# 3. copy the best checkpoints of the fine-tuning runs (weights, hyper-parameters, config,
#    spec version; no optimiser state) into dmaster/weights/;
# 4. measure them on the held-out test tracks with benchmarks/quality.py.
set -euo pipefail
cd "$(dirname "$0")/.."
FIRST_MINUTES=${FIRST_MINUTES:-62}   # first runs, side by side, one thread each
PARAM_MINUTES=${PARAM_MINUTES:-85}   # fine-tuning runs, one after the other, two threads each
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
# first runs (the shipped ones used an end-to-end loss weight of 0.5, from 20 % of the run on)
OMP_NUM_THREADS=1 python -m dmaster.train --model param --run-name shipped_param "${common[@]}" --seed 0 \
    --max-minutes "$FIRST_MINUTES" --e2e-weight 0.5 > experiments/shipped_param.out 2>&1 &
OMP_NUM_THREADS=1 python -m dmaster.train --model unet --run-name shipped_unet "${common[@]}" --seed 0 \
    --max-minutes "$FIRST_MINUTES" > experiments/shipped_unet.out 2>&1 &
wait

# fine-tuning runs
tune=(--seed 1 --learning-rate 5e-4 --warmup-steps 50)
OMP_NUM_THREADS=2 python -m dmaster.train --model param --run-name param_ft "${common[@]}" "${tune[@]}" \
    --init-from models/shipped_param/last.pt --max-minutes "$PARAM_MINUTES" \
    --e2e-weight 0.2 --e2e-items 4 --e2e-start 0 > experiments/param_ft.out 2>&1
OMP_NUM_THREADS=2 python -m dmaster.train --model unet --run-name unet_ft "${common[@]}" "${tune[@]}" \
    --init-from models/shipped_unet/last.pt --max-minutes "$UNET_MINUTES" > experiments/unet_ft.out 2>&1

python recipes/export_weights.py models/param_ft/best.pt dmaster/weights/param.pt
python recipes/export_weights.py models/unet_ft/best.pt dmaster/weights/unet.pt
python benchmarks/quality.py --music-root data/raw/debian_music --out experiments/quality
