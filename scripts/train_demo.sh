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
# Re-running only the training and evaluation on the same cohorts (e.g. to check reproduction; cases
# already written are not generated again):
#   WORK=runs/demo_repro COHORTS=runs/demo/cohorts CACHE=runs/demo/cache bash scripts/train_demo.sh
# Measured for the shipped model: a run interrupted after 8 epochs and resumed, and this script end to end,
# gave all 926 tensors bitwise equal and byte-identical test predictions.
#
# Design: train on a DS1+DS2 mix (DS1-like internal site, DS2-like second site), validate on a DS1+DS2
# mix (best-validation-AUROC checkpoint), test on held-out cohorts of every site profile (ds1, ds2, ds3;
# ds3 is never seen in training). The BI-RADS 4 threshold is calibrated on the ds1 test cohort and its
# downgrade rate measured on ds2/ds3; global Shapley and the IG pointing game run through the product's
# inference engine on the test studies as read from disk.
#
# Recipe: the paper's (Adam, cosine lr -> 1e-6 per epoch, batch 1 with accumulation, random pad + flip,
# unweighted CE for malignancy, best-val-AUROC checkpoint) with these changes for training from scratch on
# a few hundred cases, each measured on pilots (figures below and in the git history of this header):
#   * --scratch-init xavier: with the authors' init (made for fine-tuning BEiT-3 weights: Linear weights
#     cut at +-0.02, head x 0.001) the output stayed constant (p within 1e-3 across cases) and the loss at
#     ln 2 for 480-840 steps at lr 1e-4 ... 1e-3; with Xavier weights it moves from the first epoch.
#   * --weight-decay 0: coupled L2 inside Adam is rescaled like a gradient, and with the near-zero
#     gradients of a fresh network it only shrinks weights.
#   * accumulation 1 instead of 32 (600 optimizer steps per epoch instead of 19).
#   * --crop dce dwi t2: DWI is cut to the breast box like DCE and T2 (the paper standardises DWI whole);
#     with the demo canvases (Y 48 instead of 96) a training step costs about half. Recorded in the card;
#     the Predictor and evaluate-model prepare studies the same way.
#   * --branch-warmup 5 --single-loss 1: the first 5 epochs show DWI and T2 only, and every sample's loss
#     adds the mean loss of each present sequence alone. Without them the network never used DWI/T2.
#
# Why DWI was ignored, and what changed (pilots on 600 training / 200 validation phantoms, demo preset,
# the whole network trained on DWI alone): its output collapsed to a constant (sd <= 1e-4, val AUROC
# 0.47-0.70 within 1.5-4 epochs), with or without the DWI crop, with position tables at std 0.02, residual
# projections x 0.1, or a max-pooled tokenizer probe loss (the probe itself reached 0.83-0.88): a lesion
# barely brighter than FGT and skin at high b looks like noise to a fresh network, and the cheapest way to
# lower the loss is to ignore the sequence (the constant CLS token's norm grew 40 -> 128 in 600 steps,
# squashing everything else under fc_norm). The phantom DWI lesion was made conspicuous
# (model_core.phantom.params: lesion S0 0.75, FGT ADC 2.1, skin S0 0.15; the class difference in ADC is
# unchanged); the same pilot then reached 0.75 after 1 epoch and 0.89 after 3 (DCE alone: 0.91 after 1.5).
# Measured with this script's defaults (the shipped model): best val AUROC 0.974 (epoch 15); held-out
# test ds1 0.925 [0.868, 0.972], DCE only 0.912; ds2 0.938, DCE only 0.931; ds3 0.857, DCE only 0.864;
# the model's DWI alone 0.83-0.88 on 240 extra validation phantoms (seeds 2101/2102; a pilot script).
# Still short of ds1 >= 0.95 and of a 0.02 DCE-only gap: with DCE present the fused output follows DCE
# (all 0.957, DCE only 0.958 on the 120 extra ds1 phantoms). Two fine-tuning probes from the shipped model
# (1.5 epochs, all weights; main loss plus DWI/T2-alone losses, or main loss with the DCE encoder frozen)
# did not open the gap either. Earlier attempts (modality dropout 0.3-0.75, single loss or warm-up alone,
# on earlier phantom worlds): the DCE-only AUROC stayed within 0.013 of the multiparametric one.
# A product-of-experts target for the fused output (--poe-loss, POE_LOSS; not in the shipped model), two
# runs of this script side by side with N_VAL=60 N_TEST=150 (48 min of training each):
#   POE_LOSS=1: best val 0.972 (epoch 19), val ds1 0.963 / DCE only 0.941; test ds1 0.938 [0.895, 0.972],
#     DCE only 0.927 (gap 0.011); ds2 0.934 / 0.915 (0.018); ds3 0.834 / 0.780 (0.054); mean |Shapley| on
#     ds1 DCE 0.25, DWI 0.23, T2 0.09; pointing game (DCE map) 90.0 / 90.5 / 88.8 %; BI-RADS 4 tau 0.083
#     downgrades 5/46 on ds1, 13/42 on ds2 with 1 of 13 cancers missed.
#   POE_LOSS=3: best val 0.963; test ds1 0.928 / 0.928 (gap 0.000), ds2 0.922 / 0.916, ds3 0.885 / 0.845.
# POE_LOSS=1 makes the output use DWI about as much as DCE and widens the gap on ds2/ds3, but still misses
# ds1 >= 0.95 and the 0.02 gap on ds1; its training was not re-run for reproduction, so it is not shipped.
#
# Costs on this 2-core machine (1 thread per run, two runs side by side): phantom generation ~0.3 s per
# study, preprocessing ~0.3 s per study and worker, training 43-44 min (warm-up epochs ~80 s, joint
# epochs 120-190 s with the single losses), validation ~0.05 s per case, checks (8 subsets + 16-step IG
# on malignant cases) ~1.2 s per case. Disk: the uncompressed NIfTI cohorts take ~28 GB, the
# preprocessing cache ~5 GB.
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
EPOCHS=${EPOCHS:-20}
ACCUM=${ACCUM:-1}
LR=${LR:-1e-4}
MODALITY_DROPOUT=${MODALITY_DROPOUT:-0}  # share of samples shown with a random proper subset of sequences
SINGLE_LOSS=${SINGLE_LOSS:-1}  # weight of the auxiliary loss of each sequence alone (--single-loss)
BRANCH_WARMUP=${BRANCH_WARMUP:-5}  # first epochs shown without DCE (--branch-warmup)
POE_LOSS=${POE_LOSS:-0}        # weight of the product-of-experts target for the fused output (--poe-loss)
CROP=${CROP:-dce dwi t2}       # sequences cut to the breast box (--crop; the paper crops dce t2)
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
"$MOME" train --preset demo --task malignancy --scratch-init xavier --weight-decay 0 --crop $CROP \
  --train-csv "$C/train_ds1/cohort.csv" "$C/train_ds2/cohort.csv" \
  --val-csv "$C/val_ds1/cohort.csv" "$C/val_ds2/cohort.csv" \
  --epochs "$EPOCHS" --accumulation "$ACCUM" --lr "$LR" --modality-dropout "$MODALITY_DROPOUT" \
  --single-loss "$SINGLE_LOSS" --branch-warmup "$BRANCH_WARMUP" --poe-loss "$POE_LOSS" --seed "$SEED" \
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
  --reproduce "bash scripts/train_demo.sh (SEED=$SEED N_TRAIN_DS1=$N_TRAIN_DS1 N_TRAIN_DS2=$N_TRAIN_DS2 N_VAL=$N_VAL N_TEST=$N_TEST EPOCHS=$EPOCHS ACCUM=$ACCUM LR=$LR MODALITY_DROPOUT=$MODALITY_DROPOUT SINGLE_LOSS=$SINGLE_LOSS BRANCH_WARMUP=$BRANCH_WARMUP POE_LOSS=$POE_LOSS CROP=\"$CROP\" THREADS=$THREADS)"
echo "total: $(( $(date +%s) - start )) s" >&2
