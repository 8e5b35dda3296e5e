#!/usr/bin/env bash
# Measure the shipped models on music from other sources than the training corpus: CC/GPL game
# soundtracks that no model was trained, fitted or tuned on (benchmarks/README.md, sets (b)–(d) of the quality section).
#
#   bash recipes/external_music.sh     # ~240 MB download; the benchmark ~30 minutes on a 2-core CPU
#
# 1. fetch singularity-music (CC BY-SA 3.0), planetblupi-music-ogg (GPL-3+) and nexuiz-music (GPL-2+)
#    and collect their tracks (≥ 25 s, ≥ 32 kHz) in data/raw/debian_music_external;
# 2. run benchmarks/quality.py's sets on them: (b) degraded by the project's chain, (c) by an independent
#    pedalboard chain, (d) clean, as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
DRAWS=${DRAWS:-2}

if [ ! -d data/raw/debian_music_external ]; then
    mkdir -p data/raw/debian_packages_external
    (cd data/raw/debian_packages_external && apt-get download singularity-music planetblupi-music-ogg nexuiz-music \
        && for deb in *.deb; do dpkg -x "$deb" extracted; done)
    python recipes/prepare_debian_music.py data/raw/debian_packages_external/extracted data/raw/debian_music_external
fi
python benchmarks/quality.py --sets b c d --external-root data/raw/debian_music_external --draws "$DRAWS" \
    --out experiments/quality_external
