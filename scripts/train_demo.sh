#!/usr/bin/env bash
# The demo model (issue 5, deliverable 3): phantom cohorts -> `mome train` -> `mome evaluate-model`.
#
#   bash scripts/train_demo.sh                                      # everything under runs/demo/
#   EXPORT=resources/demo.safetensors bash scripts/train_demo.sh    # ... and ship it
#
# Trained on synthetic phantoms, not for clinical use. Deterministic: every cohort has a fixed seed and
# training has --seed; on the same machine and thread count a re-run reproduces the weights bitwise (measured:
# all 926 tensors equal, identical test predictions; the .safetensors bytes and so their sha256 can differ, as
# safetensors writes its metadata entries in hash-map order).
# Re-running only the training and evaluation on the same cohorts (e.g. to check reproduction):
#   WORK=runs/demo_repro COHORTS=runs/demo/cohorts CACHE=runs/demo/cache bash scripts/train_demo.sh
#
# Design: train on a DS1+DS2 mix (DS1-like internal site, DS2-like second site), validate on a DS1+DS2
# mix (best-validation-AUROC checkpoint), test on held-out cohorts of every site profile (ds1, ds2, ds3;
# ds3 is never seen in training). The BI-RADS 4 threshold is calibrated on the ds1 test cohort and its
# downgrade rate measured on ds2/ds3; global Shapley and the IG pointing game run through the product's
# inference engine on the test studies as read from disk.
#
# Recipe: the paper's (Adam, cosine lr -> 1e-6 per epoch, batch 1 with accumulation, random pad + flip,
# unweighted CE for malignancy, best-val-AUROC checkpoint) with three changes for training from scratch on
# a few hundred cases, each measured on pilots (120 train / 40 val phantoms, demo preset):
#   * --scratch-init xavier: with the authors' init (made for fine-tuning BEiT-3 weights: Linear weights
#     cut at +-0.02, head x 0.001) the output stayed constant (p within 1e-3 across cases) and the loss at
#     ln 2 for 480-840 steps at lr 1e-4 ... 1e-3; with Xavier weights it moves from the first epoch.
#   * --weight-decay 0: coupled L2 inside Adam is rescaled like a gradient, and with the near-zero
#     gradients of a fresh network it only shrinks weights.
#   * accumulation 1 instead of 32 (600 training cases give 600 optimizer steps per epoch instead of 19):
#     on the earlier world's cohorts lr 1e-4 / accumulation 1 reached best val AUROC 0.961 (epoch 6),
#     lr 2e-4 / accumulation 4 0.955 (epoch 11); the script keeps the former (chosen on validation only).
#
# Modality dropout (--modality-dropout P: a share P of the training samples shown with a random proper
# subset of DCE/DWI/T2) was tried to make the network use DWI and T2, which it ignores (DCE-only AUROC equals
# the multiparametric one). Measured on the cohorts of the earlier phantom world (DWI 2x coarser, see below;
# MODALITY_DROPOUT/LR/EPOCHS as below, 1 thread, two runs side by side; best val AUROC; held-out
# ds1/ds2/ds3 AUROC, DCE only identical to 0.001 in every run):
#   P 0.5,  lr 1e-4, 12 epochs: val 0.961, test 0.934 / 0.912 / 0.861 (training 39 min)
#   P 0.3,  lr 1e-4, 12 epochs: val 0.949, test 0.924 / 0.927 / 0.864 (42 min)
#   P 0.75, lr 2e-4, 14 epochs: val 0.961, test 0.921 / 0.868 / 0.852 (43 min)
#   P 0.5,  lr 2e-4, 14 epochs: val 0.958, test 0.940 / 0.931 / 0.860 (46 min)
# With DCE left out, every network's output was the same to 0.01 for all 80 validation studies.
# A diagnosis: the demo DWI tokenizer alone (stem + global max-pool + linear, 600 DWI canvases, 3 epochs)
# reached validation AUROC 0.68-0.74 on those canvases, where a lesion was a few 5 x 5 x 9 mm voxels wide,
# and 0.81-0.88 on the same canvases upsampled 2x. The phantom world's DWI grids were therefore made 2x finer
# (with a 128 x 96 x 32 DWI canvas in the demo preset) and T2 shine-through weaker (lesion DWI S0 ~ T2
# ratio ** 0.1 instead of ** 0.35); the same probe on the new DWI canvases: 0.78-0.84. The shipped model is
# trained on that world with this script's defaults (no modality dropout). It still ignores DWI and T2:
# DCE-only AUROC equals the multiparametric one (to 0.003) on every test cohort, and without DCE its output
# is constant (0.901-0.902 on the 40 ds1 validation studies). Apparently the network learns the DCE
# evidence first and DWI then lowers the remaining loss too little to be picked up.
# Two training options were then added and measured on this world (same cohorts and cache):
#   --single-loss W (each present sequence alone also scored, fused from the same encoding), 2 epochs of a
#   12-epoch schedule: val 0.854 (W 1) / 0.931 (W 3) after epoch 1 (0.944 without); after epoch 2 the output
#   with DWI alone was still constant to 0.001 on the ds1 validation studies.
#   SINGLE_LOSS=1 BRANCH_WARMUP=2 EPOCHS=10 (--branch-warmup E: the first E epochs without DCE): best val
#   0.960 (epoch 10), test ds1 0.946 [0.901, 0.982] (DCE only 0.932), ds2 0.910 (0.903), ds3 0.809 (0.809);
#   training 53 min + 2 min validation. DWI and T2 now move the output a little (DCE-only 0.013 below on
#   ds1), short of both targets and worse than the shipped model on ds2/ds3, so it was not shipped.
#   BRANCH_WARMUP=4 EPOCHS=12 (THREADS=2, alone): the DWI+T2 loss plateaued at 0.680 in the warm-up; test
#   ds1 0.943 (DCE only 0.943), ds2 0.921 (0.915), ds3 0.792 (0.791): no better.
# Why DWI stays out: the whole demo network trained on DWI alone (600 canvases, lr 1e-4, 1 epoch) reached
# val AUROC 0.65 (loss 0.688) against 0.78 for the tokenizer + max-pool probe, so it is the encoder, not the
# tokenizer, that learns the small DWI lesion slowly from scratch. Position tables at std 0.02 instead of
# the authors' 1 (0.66 after epoch 1, 0.72 after epoch 2) or fewer per-sequence layers (split_layers 6:
# 0.63, 3: 0.56 after epoch 1) did not speed it up. Untried: starting from pretrained weights (BEiT-3, as
# in the paper; none can be downloaded here) or training far longer than 60 minutes.
#
# Costs on this 2-core machine (demo preset: stems 16/32; 1 thread per run, two runs side by side):
# phantom generation ~0.25 s per ds1 study (median), preprocessing of the 680 training/validation studies
# ~6 min (2 workers), training ~0.45 s per sample (12 epochs of 600: 54 min), validation ~0.1 s per case,
# checks (8 subsets + 16-step IG on malignant cases) ~5 s per case.
# Disk: the uncompressed NIfTI cohorts take ~28 GB and the preprocessing cache ~6 GB.
set -euo pipefail
cd "$(dirname "$0")/.."

MOME=${MOME:-.venv/bin/mome}
WORK=${WORK:-runs/demo}
COHORTS=${COHORTS:-$WORK/cohorts}
CACHE=${CACHE:-$WORK/cache}
WORKERS=${WORKERS:-2}          # processes for phantom generation and preprocessing
THREADS=${THREADS:-1}          # torch threads (1: two runs side by side; the shipped model used 1)
SEED=${SEED:-0}                # training seed
N_TRAIN_DS1=${N_TRAIN_DS1:-400}
N_TRAIN_DS2=${N_TRAIN_DS2:-200}
N_VAL=${N_VAL:-40}             # per site (ds1, ds2)
N_TEST=${N_TEST:-100}          # per site (ds1, ds2, ds3)
EPOCHS=${EPOCHS:-12}
ACCUM=${ACCUM:-1}
LR=${LR:-1e-4}
MODALITY_DROPOUT=${MODALITY_DROPOUT:-0}  # share of samples shown with a random proper subset of sequences
SINGLE_LOSS=${SINGLE_LOSS:-0}  # weight of the auxiliary loss of each sequence alone (--single-loss)
BRANCH_WARMUP=${BRANCH_WARMUP:-0}  # first epochs shown without DCE (--branch-warmup)
IG_STEPS=${IG_STEPS:-16}
CHECKS=${CHECKS:-1}            # 0: AUROCs into $WORK/eval only (no checks, card untouched, no export)
EXPORT=${EXPORT:-$WORK/demo.safetensors}

C=$COHORTS
cohort() {  # n site seed name
  "$MOME" phantom --n "$1" --site "$2" --seed "$3" --out "$C/$4" --formats nifti --uncompressed \
    --workers "$WORKERS" --no-progress
}
start=$(date +%s)
cohort "$N_TRAIN_DS1" ds1 1001 train_ds1
cohort "$N_TRAIN_DS2" ds2 1002 train_ds2
cohort "$N_VAL" ds1 2001 val_ds1
cohort "$N_VAL" ds2 2002 val_ds2
cohort "$N_TEST" ds1 3001 test_ds1
cohort "$N_TEST" ds2 3002 test_ds2
cohort "$N_TEST" ds3 3003 test_ds3
echo "cohorts: $(( $(date +%s) - start )) s" >&2

t_train=$(date +%s)
"$MOME" train --preset demo --task malignancy --scratch-init xavier --weight-decay 0 \
  --train-csv "$C/train_ds1/cohort.csv" "$C/train_ds2/cohort.csv" \
  --val-csv "$C/val_ds1/cohort.csv" "$C/val_ds2/cohort.csv" \
  --epochs "$EPOCHS" --accumulation "$ACCUM" --lr "$LR" --modality-dropout "$MODALITY_DROPOUT" \
  --single-loss "$SINGLE_LOSS" --branch-warmup "$BRANCH_WARMUP" --seed "$SEED" \
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
  --reproduce "bash scripts/train_demo.sh (SEED=$SEED N_TRAIN_DS1=$N_TRAIN_DS1 N_TRAIN_DS2=$N_TRAIN_DS2 N_VAL=$N_VAL N_TEST=$N_TEST EPOCHS=$EPOCHS ACCUM=$ACCUM LR=$LR MODALITY_DROPOUT=$MODALITY_DROPOUT SINGLE_LOSS=$SINGLE_LOSS BRANCH_WARMUP=$BRANCH_WARMUP THREADS=$THREADS)"
echo "total: $(( $(date +%s) - start )) s" >&2
