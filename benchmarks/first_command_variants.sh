#!/usr/bin/env bash
# The README's first command (adapt the shipped theta to The Starry Night: 100 steps at 128 px, style 256 px,
# batches of 2; stylize the nine embedded photos at 512 px) under variants of the adaptation, each scored by the
# judge: benchmarks/results/picture_quality_first_command_variant_NAME.{md,json,jpg}. Outputs go to runs/variants/.
#   bash benchmarks/first_command_variants.sh [NAME ...]      (default: all of them, about 4 minutes each)
#   SUFFIX=_s26 bash benchmarks/first_command_variants.sh random   (results ..._variant_random_s26: a later objective)
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A FLAGS=(
  [theta]=""                                  # the README's command itself
  [theta_tv100]="--set loss.tv=100"           # total variation x10
  [theta_tv1000]="--set loss.tv=1000"         # x100
  [theta_lr3e-4]="--set lr=3e-4"              # Adam's learning rate (the paper and the official code: 1e-3)
  [theta_lr1e-4]="--set lr=1e-4"
  [theta_only_in]="--set only_in=True"        # instance-norm scale and shift only, as the inner loop
  [theta_warmup0]="--warmup 0"                # no warmup: the paper's and the official code's adaptation
  [theta_warmup20]="--warmup 20"              # the learning rate rising over the first 20 steps (the default)
  [theta_warmup50]="--warmup 50"              # ... over the first 50
  [theta_style512]="--style-size 512"         # the painting 4x the content's side (its strokes 2x larger)
  [random]="--random-init"                    # Johnson et al.: the same 100 steps from random initialization
)
names=("$@")
[ ${#names[@]} -eq 0 ] && names=(theta theta_tv100 theta_tv1000 theta_lr3e-4 theta_lr1e-4 theta_only_in theta_warmup0 theta_warmup50 theta_style512 random)
for name in "${names[@]}"; do
  [ -n "${FLAGS[$name]+x}" ] || { echo "unknown variant: $name (one of: ${!FLAGS[*]})" >&2; exit 2; }
  out=runs/variants/$name${SUFFIX:-}
  # shellcheck disable=SC2086
  python -m metastyle_jax.adapt --style embedded:starry_night --size 128 --style-size 256 --batch-size 2 \
      --steps 100 ${FLAGS[$name]} --out "$out/model" --force
  python -m metastyle_jax.stylize --model "$out/model" --content embedded --size 512 --out "$out/stylized" --force
  python -m benchmarks.picture_quality --first-command "$out/stylized" --name "first_command_variant_$name${SUFFIX:-}"
done
