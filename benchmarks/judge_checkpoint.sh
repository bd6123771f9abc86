#!/usr/bin/env bash
# The README's first command (adapt to The Starry Night: 100 steps at 128 px, style 256 px, batches of 2; stylize
# the nine embedded photos at 512 px) from one checkpoint of a running meta-training campaign, scored by the judge:
# benchmarks/results/picture_quality_first_command_NAME.{md,json,jpg}. Models and pictures go to runs/judge/NAME/.
#   bash benchmarks/judge_checkpoint.sh WORKDIR STEP NAME [ADAPT FLAGS...]     (about 4 minutes on 2 cores)
# WORKDIR may also be a theta model (e.g. benchmarks/campaign/theta6). Flags after NAME go to the adapt command.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: bash benchmarks/judge_checkpoint.sh WORKDIR STEP NAME [ADAPT FLAGS...]" >&2; exit 2; }
cd "$(dirname "$0")/.."
workdir=$1 step=$2 name=$3 out=runs/judge/$3
shift 3
theta=$out/theta
if [ -f "$workdir/meta.json" ]; then theta=$workdir  # a theta model already (STEP is then only a label)
else python -m benchmarks.ship_theta --workdir "$workdir" --step "$step" --out "$theta" --export-only; fi
python -m metastyle_jax.stylize --model "$theta" --content embedded --size 512 --out "$out/neutral" --force
python -m metastyle_jax.adapt --model "$theta" --style embedded:starry_night --size 128 --style-size 256 \
    --batch-size 2 --steps 100 --out "$out/model" --force "$@"
python -m metastyle_jax.stylize --model "$out/model" --content embedded --size 512 --out "$out/stylized" --force
python -m benchmarks.picture_quality --first-command "$out/stylized" --name "first_command_$name"
