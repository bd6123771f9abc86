#!/usr/bin/env bash
# One prepared GPU session: meta-train at the paper's settings (resuming), then the GPU benchmarks.
#
# A session lent a GPU through the device tool (15 device minutes, <= 10 per command) does:
#
#   1. here, in the repository root (CPU machine):
#        bash benchmarks/gpu_session.sh stage [PREVIOUS_FILES_AT]
#      copies ../shared/styles/*.jpg into runs/gpu_stage/styles/, downloads the wheels the GPU image lacks
#      (ml_collections, tensorboardX) into runs/gpu_stage/wheels/ and, given the files_at folder of an earlier
#      session's run, joins its ckpt.tgz.part-* into runs/gpu_stage/resume.tgz (runs/ is git-ignored: nothing
#      of this goes into git; stage 1.5 MB + checkpoint 19 MB + vgg_weights/ 30 MB fit the tool's 64 MiB). The converted VGG16 (vgg_weights/hed.npz) must exist (any command
#      that loads the VGG makes it).
#   2. device tool, benchmarks first (the figures matter most), then training with what time is left:
#        run(command="bash benchmarks/gpu_session.sh bench", carry=["runs/gpu_stage", "vgg_weights"], timeout_s=590)
#        run(command="TRAIN_SECONDS=300 bash benchmarks/gpu_session.sh train",
#            carry=["runs/gpu_stage", "vgg_weights"], timeout_s=420)
#      ("all" does both in one command: TRAIN_SECONDS=150 bash benchmarks/gpu_session.sh all, timeout_s=590.)
#   3. here: bash benchmarks/gpu_session.sh unpack FILES_AT
#      puts the result JSONs into benchmarks/results/ (commit them), the training log and curves into
#      runs/gpu_results/, and the checkpoint into runs/gpu_stage/resume.tgz for the next session.
#
# On the GPU machine everything it writes that matters lands in $OUT (at most 8 files, 16 MiB each):
# results.tgz (benchmarks/results/*_gpu.json, training metrics, loss curves, logs), session.log, and the
# latest training checkpoint as ckpt.tgz.part-aa, -ab, ... (15 MiB pieces). Training resumes from it exactly
# (metastyle_jax.train --resume: state, step, data order); each session adds TRAIN_STEPS iterations
# (default 1000) or stops at TRAIN_SECONDS (SIGINT; a checkpoint every 50 iterations), whichever comes first.
#
#   bash benchmarks/gpu_session.sh smoke
# runs every step on this CPU at 32 px into runs/gpu_smoke/: stage, "all" (3 iterations of configs/tiny.py, then
# the benchmarks at 1 style x 1 content, 1 repeat), unpack, and a second "train" session that resumes from the
# unpacked checkpoint. Its smoke_* result files are moved out of benchmarks/results/ into runs/gpu_smoke/results/.
# TORCH_COMPILE=0 leaves out the torch.compile column (its inductor build takes ~10 min on the shared CPU).
set -uo pipefail

MODE=${1:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
STAGE=${STAGE:-runs/gpu_stage}
RUN=${RUN:-runs/gpu_run}
TRAIN_STEPS=${TRAIN_STEPS:-1000}
TRAIN_SECONDS=${TRAIN_SECONDS:-300}
SMOKE=${SMOKE:-0}
TORCH_COMPILE=${TORCH_COMPILE:-1}  # the torch.compile column of benchmarks.torch_vs_jax (0: leave it out)
SCALE=${SCALE:-1}  # multiplies the benchmark timeouts (smoke: the loaded 2-core CPU compiles slowly)
PY=${PY:-python3}
WHEELS=("ml_collections==1.1.0" "tensorboardX==2.6.4")

log() { echo "[$(date -u +%H:%M:%S)] $*"; }

stage() {  # here: paintings, wheels, and the previous session's checkpoint
    local previous=${1:-}
    mkdir -p "$STAGE/styles" "$STAGE/wheels"
    if compgen -G "../shared/styles/*.jpg" >/dev/null; then
        cp ../shared/styles/*.jpg "$STAGE/styles/"
    else
        log "no ../shared/styles: the run will use scikit-image pictures as styles only"
    fi
    if ! compgen -G "$STAGE/wheels/*.whl" >/dev/null; then
        "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$STAGE/wheels" "${WHEELS[@]}" \
            || log "warning: could not download ${WHEELS[*]}: the GPU run needs them unless its image has them"
    fi
    if [ -n "$previous" ]; then
        if compgen -G "$previous/ckpt.tgz.part-*" >/dev/null; then
            cat "$previous"/ckpt.tgz.part-* > "$STAGE/resume.tgz" && log "resume checkpoint: $STAGE/resume.tgz"
        else
            log "no ckpt.tgz.part-* in $previous: training starts from iteration 0"
        fi
    fi
    [ -f vgg_weights/hed.npz ] || log "warning: vgg_weights/hed.npz missing: run any command that loads the VGG first"
    du -sh "$STAGE" vgg_weights 2>/dev/null
}

setup_gpu() {  # on the GPU machine: packages the image lacks, output folder, run folder with data
    OUT=${OUT:-$RUN/out}
    mkdir -p "$OUT" "$RUN"
    # JAX and PyTorch share the GPU in benchmarks.torch_vs_jax: JAX must not take 75% of it up front
    export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
    if ! "$PY" -c "import ml_collections, tensorboardX" 2>/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
            "$STAGE"/wheels/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    fi
    mkdir -p "$RUN/styles"
    cp "$STAGE"/styles/* "$RUN/styles/" 2>/dev/null
    "$PY" - "$RUN/styles" <<'EOF'
import sys
from metastyle_jax import data, images
for name in data.FALLBACK_STYLES:  # scikit-image colour pictures bundled in its wheel
    images.save_image(f"{sys.argv[1]}/skimage_{name}.png", data.skimage_image(name) / 255.0)
EOF
    if [ -f "$STAGE/resume.tgz" ] && [ ! -f "$RUN/meta/config.json" ]; then
        mkdir -p "$RUN/meta" && tar xzf "$STAGE/resume.tgz" -C "$RUN/meta" && log "checkpoint restored into $RUN/meta"
    fi
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
    "$PY" -c "import jax, torch; print('jax', jax.__version__, jax.devices(), '| torch', torch.__version__, \
torch.cuda.is_available())"
}

latest_step() {
    ls "$RUN/meta/checkpoints" 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -1
}

train() {
    local start resume=() config=metastyle extra=()
    start=$(latest_step); start=${start:-0}
    [ -f "$RUN/meta/config.json" ] && resume=(--resume)
    if [ "$SMOKE" = 1 ]; then config=tiny; extra=(--set sample_every=0 --set eval_every=0); fi
    log "meta-training from iteration $start to $((start + TRAIN_STEPS)) (at most $TRAIN_SECONDS s)"
    timeout -s INT -k 30 "$TRAIN_SECONDS" "$PY" -m metastyle_jax.train --config "$config" --workdir "$RUN/meta" \
        "${resume[@]}" --set num_steps=$((start + TRAIN_STEPS)) --set checkpoint_every=50 --set keep_checkpoints=1 \
        --set data.styles="$RUN/styles" --set log_every=10 "${extra[@]}" 2>&1 | tr '\r' '\n' | grep -v '^\s*$' \
        | tail -40
    log "training stopped at iteration $(latest_step)"
}

bench() {
    local prefix="" size=256 sizes=(256 512) common=() repeats=5 adapt_steps=200 style_size=512 model=()
    if [ "$SMOKE" = 1 ]; then
        prefix=smoke_ size=32 sizes=(32) common=(--styles 1 --batch-size 1) repeats=1 adapt_steps=2 style_size=32
    fi
    local tvj="benchmarks/results/${prefix}torch_vs_jax_gpu.json"
    log "benchmarks.torch_vs_jax (size $size)"
    timeout $((330 * SCALE)) "$PY" -m benchmarks.torch_vs_jax --size "$size" "${common[@]}" --repeats "$repeats" --warmup 2 \
        $([ "$TORCH_COMPILE" = 1 ] && echo --torch-compile) --name "${prefix}torch_vs_jax_gpu"
    if [ "$SMOKE" = 1 ]; then  # the counts at smoke size (on the GPU, flops.json is the committed paper-size one)
        timeout $((300 * SCALE)) "$PY" -m benchmarks.flops --sizes "${sizes[@]}" --meta-size "$size" --adapt-size "$size" \
            "${common[@]}" --name smoke_flops
    fi
    log "benchmarks.flops: stylization timing and fractions of peak"
    timeout $((120 * SCALE)) "$PY" -m benchmarks.flops --counts "benchmarks/results/${prefix}flops.json" --sizes "${sizes[@]}" \
        --meta-size "$size" --adapt-size "$size" "${common[@]}" --time --runs 20 --timings "$tvj" \
        --name "${prefix}flops"
    [ -d "$RUN/meta/theta" ] && model=(--model "$RUN/meta/theta")
    log "benchmarks.adapt_time ($adapt_steps steps${model:+, from the meta-trained theta})"
    timeout $((120 * SCALE)) "$PY" -m benchmarks.adapt_time --steps "$adapt_steps" --size "$size" --style-size "$style_size" \
        --style "$(ls "$RUN"/styles/* | head -1)" "${model[@]}" --name "${prefix}adapt_gpu" | tail -8
}

pack() {  # everything that matters into $OUT, at most 8 files
    local files=()
    for f in benchmarks/results/*_gpu.json benchmarks/results/smoke_*.json; do [ -f "$f" ] && files+=("$f"); done
    for f in config.json metrics.jsonl loss_curves.png; do [ -f "$RUN/meta/$f" ] && files+=("$RUN/meta/$f"); done
    tar czf "$OUT/results.tgz" "${files[@]}" 2>/dev/null
    if [ -n "$(latest_step)" ]; then
        tar czf - -C "$RUN/meta" --exclude theta --exclude samples --exclude tb . | split -b 15m - "$OUT/ckpt.tgz.part-"
    fi
    log "packed into $OUT: $(ls "$OUT" | tr '\n' ' ')"
}

gpu() {  # bench | train | all, on the GPU machine
    setup_gpu
    trap pack EXIT
    case "$1" in
        bench) bench ;;
        train) train ;;
        all) train; bench ;;
    esac
}

unpack() {  # here: results into benchmarks/results, checkpoint into the stage for the next session
    local from=$1 dest=$2
    mkdir -p "$dest"
    tar xzf "$from/results.tgz" -C "$dest"
    if [ "$SMOKE" != 1 ]; then cp "$dest"/benchmarks/results/*.json benchmarks/results/ 2>/dev/null; fi
    [ -f "$from/session.log" ] && cp "$from/session.log" "$dest/"
    if compgen -G "$from/ckpt.tgz.part-*" >/dev/null; then
        mkdir -p "$STAGE" && cat "$from"/ckpt.tgz.part-* > "$STAGE/resume.tgz" && log "next session resumes from $STAGE/resume.tgz"
    fi
    log "unpacked $from into $dest: $(cd "$dest" && find . -type f | tr '\n' ' ')"
}

case "$MODE" in
    stage) stage "${2:-}" ;;
    bench|train|all)
        OUT=${OUT:-$RUN/out}; mkdir -p "$OUT"
        gpu "$MODE" 2>&1 | tee "$OUT/session.log" ;;
    unpack) unpack "${2:?usage: gpu_session.sh unpack FILES_AT [DEST]}" "${3:-runs/gpu_results}" ;;
    smoke)
        export SMOKE=1 STAGE=runs/gpu_smoke/stage RUN=runs/gpu_smoke/run TRAIN_STEPS=3 TRAIN_SECONDS=900 \
            OUT=runs/gpu_smoke/out PY=python SCALE=4 TORCH_COMPILE=${TORCH_COMPILE:-1}
        rm -rf runs/gpu_smoke
        stage
        bash "$0" all
        mkdir -p runs/gpu_smoke/results
        mv benchmarks/results/smoke_* runs/gpu_smoke/results/ 2>/dev/null
        bash "$0" unpack runs/gpu_smoke/out runs/gpu_smoke/unpacked
        log "second session: resume from the packed checkpoint"
        rm -rf "$RUN" && bash "$0" train
        ;;
    *) sed -n '2,32p' "$0"; exit 2 ;;
esac
