#!/usr/bin/env bash
# The GPU stage of the shipped weights (see docs/model_card.md): fine-tune the best
# checkpoints of the CPU stage (recipes/shipped_weights.sh) on one GPU, both models side by side,
# for 10 minutes; export the U-Net into dmaster/weights/ and measure. (The parameter model's GPU
# stage gave no measurable gain on validation and was not shipped; it stays in models/gpu_param.)
#
#   bash recipes/gpu_finetune.sh            # ~11 min on one H200, then the benchmark on the CPU
#
# The shipped run had to carry its music to the GPU machine in 64 MiB, so it trained on 45 s
# Vorbis excerpts of the train and val tracks (from 20 s in), made by recipes/excerpt_corpus.py;
# this script does the same. It ran in two legs (5.6 minutes, then --resume up to 10 minutes);
# one leg of 10 minutes follows the same schedule. Give each process its share of the CPU cores:
# with 16 threads each, the two processes fought over 16 cores and a parameter-model step took
# 1.3 s instead of 0.27 s.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${MINUTES:-10}
[ -f models/shipped_param/best.pt ] || { echo "run recipes/shipped_weights.sh first (the CPU stage)"; exit 1; }
[ -d data/raw/debian_music_excerpts ] || python recipes/excerpt_corpus.py data/raw/debian_music \
    data/raw/debian_music_excerpts --seconds 45 --offset 20 --quality 0.5
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / 2 ))}
common=(--music-root data/raw/debian_music_excerpts --track-seconds 45 --device cuda --steps 100000
        --max-minutes "$MINUTES" --window-seconds 3 --val-every 100 --val-batches 4 --warmup-steps 50 --seed 1
        --learning-rate 3e-4)
mkdir -p experiments
python -m dmaster.train --model param --run-name gpu_param "${common[@]}" --batch-size 48 \
    --init-from models/shipped_param/best.pt --e2e-weight 0.2 --e2e-start 0 --e2e-items 8 > experiments/gpu_param.out 2>&1 &
python -m dmaster.train --model unet --run-name gpu_unet "${common[@]}" --batch-size 32 \
    --init-from models/shipped_unet/best.pt > experiments/gpu_unet.out 2>&1 &
wait
python recipes/export_weights.py models/gpu_unet/best.pt dmaster/weights/unet.pt
python recipes/fit_residual.py --model dmaster/weights/unet.pt   # on the full tracks in data/raw/debian_music
python benchmarks/quality.py --music-root data/raw/debian_music --out experiments/quality
