#!/usr/bin/env bash
# The demo model: phantom cohorts -> `mome train` -> `mome evaluate-model` (docs/demo_model.md).
#
#   bash scripts/train_demo.sh                                      # everything under runs/demo/
#   EXPORT=resources/demo.safetensors bash scripts/train_demo.sh    # ... and ship it
#
# Trained on synthetic phantoms, not for clinical use. Deterministic: every cohort has a fixed seed and
# training has --seed; on the same machine, CPU kernels and thread count a re-run reproduces the weights
# bitwise (the .safetensors bytes and so their sha256 can differ, as safetensors writes its metadata
# entries in hash-map order).
# Re-running only the training and evaluation on the same cohorts (cases already written are not
# generated again):
#   WORK=runs/demo_repro COHORTS=runs/demo/cohorts CACHE=runs/demo/cache bash scripts/train_demo.sh
#
# What it does: generates training cohorts of two site profiles (ds1, ds2) and a validation mix, trains
# (checkpoint with the best validation AUROC), evaluates on held-out test cohorts of every site profile
# (ds1, ds2 and ds3; ds3 is never seen in training) with 1000x bootstrap CIs, and with CHECKS=1 runs every
# test study through the inference engine (global Shapley, IG pointing game, the BI-RADS 4 threshold
# calibrated on the ds1 test cohort and applied to ds2/ds3). N_TEST_LARGE adds the 1000-study ds1 test
# cohort (seed 6001; 0 skips it). Everything is written into the model card.
#
# Recipe: the paper's (Adam, cosine lr -> 1e-6 per epoch, batch 1 with accumulation, random pad + flip,
# unweighted CE for malignancy, best-val-AUROC checkpoint) with these changes for training from scratch on
# a few hundred cases (why: docs/demo_model.md):
#   * --scratch-init xavier: the authors' init (made for fine-tuning BEiT-3 weights) leaves a fresh
#     network's output constant for hundreds of steps.
#   * --weight-decay 0: coupled L2 inside Adam only shrinks the weights of a fresh network.
#   * accumulation 1 instead of 32.
#   * --crop dce dwi t2: DWI is cut to the breast box like DCE and T2 (recorded in the card; the Predictor
#     and evaluate-model prepare studies the same way).
#   * --branch-warmup / --single-loss: the first epochs show DWI and T2 only, and every sample's loss adds
#     the mean loss of each present sequence alone.
#   * --t2-warmup / --token-head: of those epochs the first show T2 alone, and a training-only head (never
#     exported) reads the class from the maximum of the T2 tokens, so that the T2 branch learns to find
#     the lesion on T2 (docs/demo_world_v2.md).
#   * --shared-pad: one random pad per sample for every sequence, so positions line up.
#   * --poe-loss 1: a product-of-experts target for the fused output.
# The cohorts come from the phantom world v2 (lesions with their breast-MRI T2 appearance).
#
# Costs on a 2-core machine (2 threads): cohorts ~4 min, training ~60 min including ~5 min of
# preprocessing, the checks ~20 min; the uncompressed cohorts take ~40 GB of disk and the preprocessing
# cache ~7.5 GB (the larger ds1 test cohort adds 28 GB and 5.5 GB).

set -euo pipefail
cd "$(dirname "$0")/.."

MOME=${MOME:-.venv/bin/mome}
WORK=${WORK:-runs/demo}
COHORTS=${COHORTS:-$WORK/cohorts}
CACHE=${CACHE:-$WORK/cache}
WORKERS=${WORKERS:-2}          # processes for phantom generation and preprocessing
THREADS=${THREADS:-2}          # torch threads (the shipped model used 2; bitwise reproduction needs the same)
SEED=${SEED:-0}                # training seed
N_TRAIN_DS1=${N_TRAIN_DS1:-600}
N_TRAIN_DS2=${N_TRAIN_DS2:-300}
N_VAL=${N_VAL:-60}             # per site (ds1, ds2)
N_TEST=${N_TEST:-150}          # per site (ds1, ds2, ds3)
N_TEST_LARGE=${N_TEST_LARGE:-1000}  # the larger ds1 test cohort (with CHECKS=1; 0 = none)
WORLD=${WORLD:-v2}             # phantom world (mome phantom --world; v2: lesions with their breast-MRI T2 appearance)
SHARED_PAD=${SHARED_PAD:-1}    # 1: one random pad per sample for every sequence (--shared-pad)
T2_WARMUP=${T2_WARMUP:-4}      # first epochs of the branch warm-up shown with T2 alone (--t2-warmup)
TOKEN_HEAD=${TOKEN_HEAD:-1}    # weight of the training-only T2 token head (--token-head; 0 = none)
EPOCHS=${EPOCHS:-15}
ACCUM=${ACCUM:-1}
LR=${LR:-1e-4}
MODALITY_DROPOUT=${MODALITY_DROPOUT:-0}  # share of samples shown with a random proper subset of sequences
SINGLE_LOSS=${SINGLE_LOSS:-1}  # weight of the auxiliary loss of each sequence alone (--single-loss)
BRANCH_WARMUP=${BRANCH_WARMUP:-5}  # first epochs shown without DCE (--branch-warmup)
POE_LOSS=${POE_LOSS:-1}        # weight of the product-of-experts target for the fused output (--poe-loss)
EMA=${EMA:-0}                  # decay of the weight average that is validated and shipped (--ema; 0 = off)
BALANCE_BY=${BALANCE_BY:-}      # cohort column the training sampler balances against the label (--balance-by)
BALANCE_FROM=${BALANCE_FROM:-0}  # first epoch (0-based) of the balanced sampler (--balance-from)
CROP=${CROP:-dce dwi t2}       # sequences cut to the breast box (--crop; the paper crops dce t2)
IG_STEPS=${IG_STEPS:-16}
CHECKS=${CHECKS:-1}            # 0: AUROCs into $WORK/eval only (no checks, card untouched, no export)
EXPORT=${EXPORT:-$WORK/demo.safetensors}

C=$COHORTS
cohort() {  # n site seed name
  "$MOME" phantom --n "$1" --site "$2" --seed "$3" --out "$C/$4" --formats nifti --uncompressed \
    --workers "$WORKERS" --world "$WORLD" --no-progress
}
start=$(date +%s)
cohort "$N_TRAIN_DS1" ds1 1001 train_ds1
cohort "$N_TRAIN_DS2" ds2 1002 train_ds2
cohort "$N_VAL" ds1 2001 val_ds1
cohort "$N_VAL" ds2 2002 val_ds2
cohort "$N_TEST" ds1 3001 test_ds1
cohort "$N_TEST" ds2 3002 test_ds2
cohort "$N_TEST" ds3 3003 test_ds3
if [ "$CHECKS" = 1 ] && [ "$N_TEST_LARGE" -gt 0 ]; then cohort "$N_TEST_LARGE" ds1 6001 test_ds1_large; fi
echo "cohorts: $(( $(date +%s) - start )) s" >&2

extra=()
if [ "$SHARED_PAD" = 1 ]; then extra+=(--shared-pad); fi
if [ "$T2_WARMUP" -gt 0 ]; then extra+=(--t2-warmup "$T2_WARMUP"); fi
if [ "$TOKEN_HEAD" != 0 ]; then extra+=(--token-head "$TOKEN_HEAD" --token-head-on t2); fi
if [ -n "$BALANCE_BY" ]; then extra+=(--balance-by "$BALANCE_BY" --balance-from "$BALANCE_FROM"); fi
t_train=$(date +%s)
"$MOME" train --preset demo --task malignancy --scratch-init xavier --weight-decay 0 --crop $CROP \
  --train-csv "$C/train_ds1/cohort.csv" "$C/train_ds2/cohort.csv" \
  --val-csv "$C/val_ds1/cohort.csv" "$C/val_ds2/cohort.csv" \
  --epochs "$EPOCHS" --accumulation "$ACCUM" --lr "$LR" --modality-dropout "$MODALITY_DROPOUT" \
  --single-loss "$SINGLE_LOSS" --branch-warmup "$BRANCH_WARMUP" --poe-loss "$POE_LOSS" --ema "$EMA" --seed "$SEED" \
  "${extra[@]}" \
  --workers "$WORKERS" --threads "$THREADS" --cache "$CACHE" --out "$WORK/model" --resume
echo "train (incl. preprocessing): $(( $(date +%s) - t_train )) s" >&2

# Held-out cohorts of every site: AUROC multiparametric and DCE only with 1000x bootstrap 95% CIs,
# BI-RADS 4 threshold (ds1 test) and downgrades (ds2, ds3), global Shapley, IG pointing game -> card.
if [ "$CHECKS" = 1 ]; then
  checks=(--checks --calibrate-on ds1_test --ig-steps "$IG_STEPS" --update-card --export "$EXPORT" --export-name mome-demo)
else
  checks=()
fi
"$MOME" evaluate-model "$WORK/model/best.safetensors" \
  --cohort "ds1_test=$C/test_ds1/cohort.csv" --cohort "ds2_test=$C/test_ds2/cohort.csv" \
  --cohort "ds3_test=$C/test_ds3/cohort.csv" \
  --bootstrap 1000 --seed 0 --workers "$WORKERS" --threads "$THREADS" --cache "$CACHE" --out "$WORK/eval" \
  "${checks[@]}" \
  --reproduce "bash scripts/train_demo.sh (SEED=$SEED N_TRAIN_DS1=$N_TRAIN_DS1 N_TRAIN_DS2=$N_TRAIN_DS2 N_VAL=$N_VAL N_TEST=$N_TEST N_TEST_LARGE=$N_TEST_LARGE EPOCHS=$EPOCHS ACCUM=$ACCUM LR=$LR MODALITY_DROPOUT=$MODALITY_DROPOUT SINGLE_LOSS=$SINGLE_LOSS BRANCH_WARMUP=$BRANCH_WARMUP POE_LOSS=$POE_LOSS EMA=$EMA BALANCE_BY=$BALANCE_BY BALANCE_FROM=$BALANCE_FROM CROP=\"$CROP\" WORLD=$WORLD SHARED_PAD=$SHARED_PAD T2_WARMUP=$T2_WARMUP TOKEN_HEAD=$TOKEN_HEAD THREADS=$THREADS)"
# The larger ds1 test cohort: AUROCs only, into the exported card's test_ds1_large entry.
if [ "$CHECKS" = 1 ] && [ "$N_TEST_LARGE" -gt 0 ]; then
  "$MOME" evaluate-model "$EXPORT" --cohort "ds1_test_large=$C/test_ds1_large/cohort.csv" \
    --bootstrap 1000 --seed 0 --workers "$WORKERS" --threads "$THREADS" --cache "$CACHE" \
    --out "$WORK/eval_ds1_large" --update-card --card-section test_ds1_large
fi
echo "total: $(( $(date +%s) - start )) s" >&2
