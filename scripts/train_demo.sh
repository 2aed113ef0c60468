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
# Measured for the fe235c1 demo model (same code, earlier phantom world): a run interrupted after 8 epochs
# and resumed, and this script end to end, gave all 926 tensors bitwise equal and byte-identical test
# predictions; so did this script (CHECKS=0) on a later day's machine with AVX-512, every cohort generated
# anew (the card's test AUROCs to the last digit). For the shipped model: see the end of this header.
# Bitwise equality also needs the same CPU kernels: with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
# MKL_ENABLE_INSTRUCTIONS=AVX2 on that machine the first epoch's validation AUROC was 0.6577, not 0.6541.
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
#   * --poe-loss 1: a product-of-experts target for the fused output (the all-sequence log-odds against
#     the detached sum of each sequence's own evidence); without it the fused output followed DCE.
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
# The 4ee9c46 demo model (POE_LOSS=0, N_VAL=40, N_TEST=100, phantom T2 ratios 1.65 / 0.95): best val
# AUROC 0.974; test ds1 0.925 [0.868, 0.972], DCE only 0.912; ds2 0.938 / 0.931; ds3 0.857 / 0.864; its
# DWI alone 0.83-0.88 on validation phantoms; with DCE present its output followed DCE. Fine-tuning
# probes (DWI/T2-alone losses, DCE encoder frozen), modality dropout 0.3-0.75, the single loss or the
# warm-up alone kept the DCE-only AUROC within 0.013 of the multiparametric one.
# --poe-loss on that world, two runs side by side (N_VAL=60 N_TEST=150): POE_LOSS=1 test ds1 0.938
# [0.895, 0.972], DCE only 0.927 (gap 0.011), ds2 gap 0.018, ds3 gap 0.054, Shapley DCE 0.25 / DWI 0.23 /
# T2 0.09; POE_LOSS=3 ds1 0.928 / 0.928 (gap 0.000). T2 carried the least, so the phantom T2 classes were
# pulled apart (1.85 / 0.82; model_core.phantom.params). On that world, runs side by side:
#   defaults (the fe235c1 demo model; 20 epochs, 27 min of training): best val 0.968 (epoch 13); test ds1
#     0.949 [0.914, 0.978], DCE only 0.931 (gap 0.019); ds2 0.944 / 0.928 (0.016); ds3 0.887 / 0.818
#     (0.069). Pilots through the Predictor on ds1 test: DWI alone 0.911, DCE + DWI 0.949, T2 alone a constant
#     (sd 0.003, AUROC 0.47): T2 is still unused, the gap comes from DWI alone. Interactive TTA (6
#     versions): 0.947 / DCE only 0.930, no better. Mean |Shapley| on ds1 DCE 0.24, DWI 0.20, T2 0.04
#     (constant); pointing game (DCE map) 94.4 / 92.1 / 86.3 %; BI-RADS 4 tau 0.103 downgrades 6/46 on
#     ds1, 12/42 on ds2 (1 of 13 cancers missed), 16/48 on ds3 (1 of 21 missed). Re-run of the training
#     on the same cohorts (CHECKS=0): all 926 tensors bitwise equal, byte-identical test predictions.
#   EPOCHS=32 BRANCH_WARMUP=8 (44 min): best val 0.976; test ds1 0.944 / 0.924 (0.019), ds2 0.935 / 0.928
#     (0.008), ds3 0.897 / 0.843 (0.054).
#   EPOCHS=28 BRANCH_WARMUP=7 N_TRAIN_DS1=500 N_TRAIN_DS2=250 (49 min): best val 0.982; test ds1 0.944 /
#     0.931 (0.013), ds2 0.931 / 0.920 (0.012), ds3 0.916 / 0.863 (0.053).
#   T2 ratios 2.0 / 0.75 instead (defaults otherwise): best val 0.978; test ds1 0.926 / 0.917 (0.010),
#     ds2 0.936 / 0.924 (0.011), ds3 0.876 / 0.836 (0.039).
# Every variant sits at ds1 0.93-0.95 on the test cohort while validation reads 0.97-0.98 (the best
# epoch is chosen on it): still short of ds1 >= 0.95 and of a 0.02 DCE-only gap on ds1 and ds2.
# A more conspicuous T2 lesion was then tried and did not help (phantom-world variants, not kept; each
# with its own cohorts, so test figures compare across variants only roughly):
#   fat-suppressed T2 at ds1/ds2 (benign lesion 0.83, malignant 0.37, FGT 0.45, fat 0.12), seeds 0 and 1:
#     best val 0.975 / 0.973; test ds1 0.939 / 0.940 (DCE only 0.922 / 0.937), ds2 0.940 / 0.946, ds3
#     0.911 / 0.901; T2 alone still constant (sd 0.005 on ds1 validation).
#   the same with every T2 ratio x 2.5 (every lesion 2-5x brighter than FGT): best val 0.983; test ds1
#     0.922 / DCE only 0.891, ds2 0.927 / 0.911, ds3 0.806 / 0.745; T2 alone constant (sd 0.0002).
# The T2 branch washes its input out: in that model the T2 tokens' case-to-case variation, relative to
# their norm, falls from 0.37 to 0.04 through the 9 per-modality layers (each adds a large input-
# independent vector) while DWI's grows from 0.40 to 2.9, and the gradient reaching the T2 tokenizer is
# ~1/500 of DWI's; a zeroed T2 input gives the same output. Pilots of the demo network trained on one
# sequence alone (Xavier init, Adam, 600 steps, validation on the 120 validation studies):
#   on the cached cohorts of that last variant, DWI learns (val AUROC 0.77 after 150 steps, 0.87 after
#     600) and T2 does not (logit sd <= 0.001 and AUROC 0.5-0.7 after 600 steps at lr 3e-5, 1e-4 and
#     3e-4, with T2 clipped at 5, with T2 fed through the DWI branch, with the position tables x 0.02,
#     and with AdamW, weight decay 0.05; after 2400 steps at 1e-4 it ranks with AUROC 0.77, the logit sd
#     still 0.0007: T2 is learnt, at a scale the fused output cannot use);
#   on the committed world's training and validation cohorts (this script's seeds), the same: DWI 0.84
#     after 600 steps; T2 0.59 (logit sd 0.0002), 0.53 after 1200; with a 10x larger initial head T2
#     0.67 after 600 (sd 0.003);
#   on 720 studies of the committed world generated in memory, DWI alone did not learn either (0.58 after
#     600 steps, near-constant), nor did T2 on in-memory T2 variants (dark FGT, no FGT texture, dim skin
#     and body, classes swapped so that malignant lesions are larger and brighter, as at high-b DWI).
# So whether a fresh network escapes the constant output is fragile (it depends on the data draw), and
# single T2 pilots that stayed constant do not show that T2 cannot be learnt. Next, measured over
# several seeds: the output scale of a single sequence (the head reads fc_norm of a CLS token dominated
# by an input-independent part), a warm-up of each sequence alone, and the T2 canvases examined side by
# side with DWI's (same pipeline, different content).
#
# Then, on the committed world and this script's cohorts:
#   canvas probe (40 train_ds1 studies, on the canvases the network sees): the lesion stands out from the
#     tissue around it by 18 sd on DCE, 8.3 on DWI and 0.78 on T2, where its mean separates the classes
#     (AUROC 0.99, inverted: benign lesions bright like fat, ~1.6-1.9, malignant ones iso-intense, ~0.47).
#     T2's evidence is strong but not conspicuous: a network must find the lesion on T2 first.
#   subsets of the fe235c1 demo model through the Predictor (ds1 test): DCE 0.931, DWI 0.911, T2 0.467,
#     DCE + DWI 0.949, all 0.949; the sum of the DCE and DWI single log-odds 0.952. The fusion is not the
#     limit, each sequence's own reading is (hand features in the true mask: DCE 0.955, DCE + DWI 0.996).
#   EMA=0.999 (mome train --ema: a weight average is validated, checkpointed and exported), seed 0 (its
#     raw trajectory is the fe235c1 model's): validation AUROC during the warm-up 0.84 against 0.46-0.65 raw,
#     lagging once DCE comes in; best val 0.966 (epoch 12); test ds1 0.944 [0.904, 0.974], DCE only 0.937
#     (gap 0.007); ds2 0.936 / 0.916 (0.020); ds3 0.894 / 0.871. EMA=0.9997 equals it for the first 8991
#     steps (the warm-up term of the decay rules; 15 epochs), so it was not run to the end.
#   SEED=1 EMA=0.999 (on a CPU with AVX-512, where this script's seed-0 run reproduced the fe235c1 model):
#     best val 0.959 (epoch 12); test ds1 0.936 [0.895, 0.970], DCE only 0.936 (gap 0.000); ds2 0.906 /
#     0.907; ds3 0.890 / 0.891: this run's fused output followed DCE.
#   SINGLE_LOSS=2 (seed 0, no EMA; the same machine and cohorts): best val 0.973 (epoch 13; 0.88 already
#     in the DWI/T2 warm-up, epoch 4, against at most 0.82 with SINGLE_LOSS=1); test ds1 0.936 [0.893,
#     0.970], DCE only 0.912 (gap 0.024); ds2 0.932 / 0.913 (0.019); ds3 0.884 / 0.856 (0.029): a wider
#     ds1 gap from a weaker DCE-only reading, not a better fused one.
#   N_VAL=150 (the checkpoint chosen on 300 validation studies instead of 120; training is unchanged):
#     defaults chose epoch 12 (val 0.954): test ds1 0.949 [0.912, 0.978], DCE only 0.940 (gap 0.009), ds2
#     0.941 / 0.929 (0.012), ds3 0.895 / 0.848; with SINGLE_LOSS=2 it chose epoch 13 (val 0.957), the S2
#     figures above.
# Where the singles fail (probe: the fe235c1 model's logit per subset on 150 regenerated ds1 test studies,
# joined with each study's truth): within each class the DWI-alone logit follows the lesion's log diameter
# (correlation 0.60 benign, 0.67 malignant) more than its ADC (-0.43, -0.37), and DCE's follows it too
# (0.26, 0.33); the DCE and DWI logits correlate within the malignant class (0.46; 0.34 with size held
# fixed). The worst errors are small cancers (6.7-12 mm) both sequences call benign and large benign
# lesions both call malignant. Lesion size is evidence every sequence shares, so fusing them adds little
# (DCE 0.931 + DWI 0.911 -> 0.949, where independent readers of that strength would give ~0.98).
# Two phantom-world variants aimed at that, each trained with this script's defaults (not kept):
#   W1, sizes closer (benign median 13.0 mm, malignant 16.5, TNBC 18.0) and ADC classes apart (1.56 /
#     0.94, sd 0.19): the DWI/T2 warm-up did not learn (loss 0.677 after 5 epochs, val 0.78) and the joint
#     epochs lagged (val 0.876 at epoch 9 against 0.945 for the fe235c1 model's run); stopped at epoch 10.
#   W2, ADC classes apart only (benign 1.55, malignant 0.95, sd 0.19; hand-feature DWI AUROC 0.972 on ds1,
#     0.947 at the phantom test's scale 0.5): warm-up val 0.886 at epoch 4; best val 0.976 (epoch 20);
#     test ds1 0.949 [0.911, 0.979], DCE only 0.927 (gap 0.022); ds2 0.938 / 0.925 (0.014); ds3 0.912 /
#     0.815 (0.097). DWI alone 0.925 on ds1 test, still led by size (correlation 0.55 / 0.68, ADC -0.36 /
#     -0.28) although the true ADC ranks these studies at 0.990; the within-malignant DCE-DWI correlation
#     rose to 0.57, so DCE + DWI stayed at 0.948. A re-run on the same cohorts gave the same validation
#     AUROC at every epoch and the same test AUROCs to the last digit. It meets the ds1 gap but not
#     ds1 >= 0.95 or the ds2 gap, no better than that model, so neither world nor model changed then.
#   The lever left looked like the size shortcut itself: the network has to read kinetics and ADC, not
#   lesion extent; in W1 (one run), with size made a weaker cue, the warm-up did not learn DWI at all.
# So size was hidden from the training instead of from the world: BALANCE_BY=lesion_diameter_mm (mome
# train --balance-by: each epoch's 600 cases drawn with replacement so that, in 6 equal-count size bins,
# every bin is shown equally often and each class half of it: size ranks the labels of the training
# cohort at AUROC 0.76, of the drawn cases of epochs 6-8 at 0.52-0.56). On this world and cohorts, two
# runs side by side:
#   BALANCE_FROM=0: the DWI/T2 warm-up did not learn (loss ~0.69, val 0.63-0.78, as in W1); best val
#     0.974 (epoch 18); test ds1 0.924 [0.877, 0.963], DCE only 0.899 (gap 0.025); ds2 0.929 / 0.928
#     (0.001); ds3 0.824 / 0.794.
#   BALANCE_FROM=5 (balanced after the warm-up): best val 0.978 (epoch 14); test ds1 0.934 [0.891,
#     0.970], DCE only 0.901 (gap 0.033); ds2 0.917 / 0.901 (0.016); ds3 0.864 / 0.813. Probe on ds1
#     test: DWI alone 0.907, still following size (correlation 0.41 benign / 0.58 malignant; ADC -0.33 /
#     -0.41), DCE + DWI 0.934.
#   Hiding size lowers every reading (in the test cohorts size is real evidence: AUROC 0.77 alone) and
#   does not make DWI read ADC. The DWI input is the high-b image only, on 2.8 x 2.8 x 4.5 mm voxels: a
#   5-12 mm lesion is 2-4 voxels across and 1-3 slices deep, so partial volume dims a small low-ADC lesion
#   towards its tissue, and its apparent ADC follows its size (likewise its enhancement on DCE). The
#   errors the sequences share are small lesions, whatever the network is shown.
# So the phantom lesions were made 30 % larger (diameter medians benign 15.0 mm, malignant 23.4, TNBC
# 26.0; the class ratio, so size's own AUROC, unchanged; model_core.phantom.params), each world with its
# own cohorts (this script's seeds), two runs side by side with this script's defaults:
#   W3, larger lesions only: the warm-up learnt DWI at once (val 0.84 at epoch 2); best val 0.982 (epoch
#     15); test ds1 0.926 [0.879, 0.966], DCE only 0.932 (gap -0.006); ds2 0.956 / 0.938 (0.018); ds3
#     0.934 / 0.914 (0.020).
#   W4, larger lesions and the ADC classes a little further apart (benign 1.50 -> 1.53, malignant 0.98 ->
#     0.96; the phantom test's hand-feature DWI AUROC 0.9497 at scale 0.5, just under its 0.95 bound), with
#     N_TRAIN_DS1=400 N_TRAIN_DS2=200 EPOCHS=20 BRANCH_WARMUP=5, the 80801fd demo model (31 min of
#     training): best val 0.989 (epoch 16); test ds1 0.944 [0.902, 0.976], DCE
#     only 0.923 (gap 0.021); ds2 0.955 [0.921, 0.981] / 0.924 (0.031); ds3 0.910 / 0.832 (0.078). Probe
#     on ds1 test: DCE alone 0.923, DWI alone 0.913, T2 alone near-constant (sd 0.04, AUROC 0.45), DCE +
#     DWI 0.944; the DCE and DWI logits still correlate within the malignant class (0.61). Mean |Shapley|
#     on ds1 DCE 0.25, DWI 0.22, T2 0.09 (near-constant: sd 0.005); pointing game (DCE map) 88.9 / 98.4 /
#     91.2 %; BI-RADS 4 tau 0.040 downgrades 2/46 on ds1, 4/42 on ds2 (no cancer), 0/48 on ds3.
#     A re-run of SEED=0 on the same cohorts (CHECKS=0): all 926 tensors bitwise equal, the same validation
#     AUROC at every epoch, byte-identical test predictions.
#   It meets every target but ds1 >= 0.95 (0.944; the 95 % CI spans 0.902-0.976).
# Then two candidates on W4, side by side, and a selection rule fixed before either ran: among them and
# that model, ship the one with the highest multiparametric AUROC on a selection cohort (300 ds1 phantoms,
# cohort seed 5001; never a test cohort), among those whose DCE-only AUROC is at least 0.02 lower there and
# on 150 ds2 selection phantoms (seed 5002). Selection ds1 AUROC (DCE-only gap) / ds2 gap, then test:
#   80801fd model: sel 0.960 (0.017) / 0.021: not eligible.
#   SEED=1 (same settings): best val 0.982 (epoch 14), 36 min of training; sel 0.966 (0.032) / 0.028;
#     test ds1 0.9498 [0.914, 0.979], DCE only 0.930 (gap 0.0196); ds2 0.964 / 0.921; ds3 0.933 / 0.869.
#   N_TRAIN_DS1=600 N_TRAIN_DS2=300 EPOCHS=15 BRANCH_WARMUP=4 (the same 600 studies plus 300 more;
#     13,500 steps against 12,000), now this script's defaults and the shipped model: warm-up val 0.85 after
#     1 epoch; best val 0.994 (epoch 11), 39 min of training; sel 0.968 (0.030) / 0.027; test ds1 0.949
#     (0.9487) [0.908, 0.980], DCE only 0.921 (gap 0.027); ds2 0.964 [0.935, 0.988] / 0.929 (0.035); ds3
#     0.945 / 0.857 (0.088). Probe on ds1 test: DCE alone 0.922, DWI alone 0.943, T2 alone constant (sd
#     0.004, AUROC 0.53), DCE + DWI 0.949. Mean |Shapley| DCE 0.238, DWI 0.229, T2 0.062 over all 450
#     test studies (DCE first on ds2 and ds3; on ds1 DWI 0.242 against DCE 0.230); pointing game (DCE map)
#     92.2 / 96.8 / 91.2 %; BI-RADS 4 tau 0.030 downgrades 2/46 on ds1, 9/42 on ds2 (no cancer), 13/48
#     on ds3 (1 of 21 cancers).
#     A re-run of this script's defaults on the same cohorts (CHECKS=0): all 926 tensors bitwise equal to
#     the shipped file, the same validation AUROC at every epoch, byte-identical test predictions.
#   It meets every target but ds1 >= 0.95 on the 150-study cohort (0.9487; for the larger ds1 cohort see
#   below), and DCE leads the Shapley bars over all test studies but not on ds1. On the selection cohort
#   (300 ds1 studies) every candidate reads 0.96-0.97.
# Then two more candidates on W4, with the same rule fixed before they ran (pool: them and the shipped
# model; also eligible only with <= 60 min of training), cohorts generated anew on a later day's machine
# (N_TRAIN_DS1=800 N_TRAIN_DS2=400: the shipped model's 900 training studies plus 300 more). The shipped
# model re-read there gave its selection figures to the last digit (sel ds1 0.9684, gaps 0.0297 / 0.0273).
#   N_TRAIN_DS1=800 N_TRAIN_DS2=400 EPOCHS=12 BRANCH_WARMUP=3 (14,400 steps), 40 min of training: best
#     val 0.985 (epoch 11); sel ds1 0.962 (gap 0.025) / ds2 gap 0.028; test ds1 0.951 [0.915, 0.979], DCE
#     only 0.926 (gap 0.025); ds2 0.945 / 0.911 (0.035); ds3 0.924 / 0.847 (0.077).
#   The same with SEED=1, 45 min: best val 0.986 (epoch 8); sel ds1 0.959 (0.021) / 0.032; test ds1
#     0.946 [0.908, 0.979], DCE only 0.923 (0.023); ds2 0.959 / 0.929 (0.030); ds3 0.922 / 0.877 (0.045).
#   Both eligible, both below the shipped model on the selection cohort (0.968): the shipped model stays.
#   The seed-0 run (1200 studies) reads ds1 0.951 on the test cohort, but the test cohort does not choose
#   the model; these three models' ds1 test AUROCs lie within 0.946-0.951, inside each other's CIs.
#
# A larger ds1 test cohort, fixed before it ran (this paragraph was committed before the cohort was
# generated): the 150-study ds1 test cohort gives a 95 % CI about 0.07 wide, too wide to decide a 0.95
# bound (every candidate reads 0.944-0.951 there and 0.959-0.968 on the 300-study selection cohort).
#   Cohort: `mome phantom --n 1000 --site ds1 --seed 6001` (as the others: nifti, uncompressed), never
#     used for training, selection or calibration.
#   Evaluated once, on the shipped model only (sha256 19ee257a11ab...): AUROC of all sequences and of DCE
#     only, 1000x bootstrap 95 % CIs, bootstrap seed 0. No other model is evaluated on it and the shipped
#     model does not change after it.
#   Read: the ds1 >= 0.95 point on this cohort (met if its multiparametric AUROC is >= 0.95 and DCE only
#     is at least 0.02 below it; not met otherwise). The 150-study figures stay in the card and README.
#   Result (the card's metrics.test_ds1_large; 588 of the 1000 malignant): all sequences 0.955 (0.95484)
#     [0.943, 0.967], DCE only 0.921 [0.905, 0.938] (gap 0.034): met, with a CI that still reaches below
#     0.95. Run as `mome evaluate-model resources/demo.safetensors --cohort ds1_test_large=... --bootstrap
#     1000 --seed 0 --update-card --card-section test_ds1_large` (the exact line is in the card).
# Costs on this 2-core machine (1 thread per run, two runs side by side): phantom generation ~0.3 s per
# study, preprocessing ~0.3 s per study and worker, training 27-39 min. Per epoch of 600 studies: warm-up
# 53-70 s, joint 72-110 s with the single losses (120-190 s on a slower day of this shared machine; on an
# AVX-512 machine of this kind 73-93 s and 100-140 s, this script then 37-48 min end to end). Per epoch
# of 900 studies (the defaults): warm-up 107-125 s, joint 154-190 s, this script 42 min end to end.
# Validation ~0.05 s per case, checks (8 subsets + 16-step IG on malignant cases) ~1.2 s per case. Disk:
# the uncompressed NIfTI cohorts take ~40 GB, the preprocessing cache ~7.5 GB; the larger ds1 test cohort
# adds 28 GB and 5.5 GB (1000 studies: 189 s to generate, 166 s to preprocess and evaluate at 2 threads).
set -euo pipefail
cd "$(dirname "$0")/.."

MOME=${MOME:-.venv/bin/mome}
WORK=${WORK:-runs/demo}
COHORTS=${COHORTS:-$WORK/cohorts}
CACHE=${CACHE:-$WORK/cache}
WORKERS=${WORKERS:-2}          # processes for phantom generation and preprocessing
THREADS=${THREADS:-1}          # torch threads (1: two runs side by side; the shipped model used 1)
SEED=${SEED:-0}                # training seed
N_TRAIN_DS1=${N_TRAIN_DS1:-600}
N_TRAIN_DS2=${N_TRAIN_DS2:-300}
N_VAL=${N_VAL:-60}             # per site (ds1, ds2)
N_TEST=${N_TEST:-150}          # per site (ds1, ds2, ds3)
N_TEST_LARGE=${N_TEST_LARGE:-1000}  # the larger ds1 test cohort (with CHECKS=1; 0 = none)
EPOCHS=${EPOCHS:-15}
ACCUM=${ACCUM:-1}
LR=${LR:-1e-4}
MODALITY_DROPOUT=${MODALITY_DROPOUT:-0}  # share of samples shown with a random proper subset of sequences
SINGLE_LOSS=${SINGLE_LOSS:-1}  # weight of the auxiliary loss of each sequence alone (--single-loss)
BRANCH_WARMUP=${BRANCH_WARMUP:-4}  # first epochs shown without DCE (--branch-warmup)
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
if [ "$CHECKS" = 1 ] && [ "$N_TEST_LARGE" -gt 0 ]; then cohort "$N_TEST_LARGE" ds1 6001 test_ds1_large; fi
echo "cohorts: $(( $(date +%s) - start )) s" >&2

balance=()
if [ -n "$BALANCE_BY" ]; then balance=(--balance-by "$BALANCE_BY" --balance-from "$BALANCE_FROM"); fi
t_train=$(date +%s)
"$MOME" train --preset demo --task malignancy --scratch-init xavier --weight-decay 0 --crop $CROP \
  --train-csv "$C/train_ds1/cohort.csv" "$C/train_ds2/cohort.csv" \
  --val-csv "$C/val_ds1/cohort.csv" "$C/val_ds2/cohort.csv" \
  --epochs "$EPOCHS" --accumulation "$ACCUM" --lr "$LR" --modality-dropout "$MODALITY_DROPOUT" \
  --single-loss "$SINGLE_LOSS" --branch-warmup "$BRANCH_WARMUP" --poe-loss "$POE_LOSS" --ema "$EMA" --seed "$SEED" \
  "${balance[@]}" \
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
  --reproduce "bash scripts/train_demo.sh (SEED=$SEED N_TRAIN_DS1=$N_TRAIN_DS1 N_TRAIN_DS2=$N_TRAIN_DS2 N_VAL=$N_VAL N_TEST=$N_TEST N_TEST_LARGE=$N_TEST_LARGE EPOCHS=$EPOCHS ACCUM=$ACCUM LR=$LR MODALITY_DROPOUT=$MODALITY_DROPOUT SINGLE_LOSS=$SINGLE_LOSS BRANCH_WARMUP=$BRANCH_WARMUP POE_LOSS=$POE_LOSS EMA=$EMA BALANCE_BY=$BALANCE_BY BALANCE_FROM=$BALANCE_FROM CROP=\"$CROP\" THREADS=$THREADS)"
# The larger ds1 test cohort: AUROCs only, into the exported card's test_ds1_large entry.
if [ "$CHECKS" = 1 ] && [ "$N_TEST_LARGE" -gt 0 ]; then
  "$MOME" evaluate-model "$EXPORT" --cohort "ds1_test_large=$C/test_ds1_large/cohort.csv" \
    --bootstrap 1000 --seed 0 --workers "$WORKERS" --threads "$THREADS" --cache "$CACHE" \
    --out "$WORK/eval_ds1_large" --update-card --card-section test_ds1_large
fi
echo "total: $(( $(date +%s) - start )) s" >&2
