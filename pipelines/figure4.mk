# Figure 4: a learned LSTM optimizer against tuned SGD, RMSprop, Adam and NAG.
# Left (§3.1): random 10-dimensional quadratics f(θ) = ‖Wθ − y‖². Centre and right (§3.2): the
# MNIST base network for 100 steps, and the same optimizer run for 200 (pipelines/mnist.mk).
# Train, validation and test problems come from different seeds; the baselines' learning rates
# are tuned on the validation problems.

.PHONY: figure4
figure4: $(FIGURES)/figure4.png

Q := $(OUT)/quadratic
# Meta-training budget in epochs (each: 128 fresh problems × 100 steps, 5 unrolls of 20). It
# ends at the epoch early stopping chose in a run of 1,500 (docs/experiments.md, "Budgets"), so
# the checkpoint is that run's, bit for bit, in two thirds of the time.
QUAD_EPOCHS ?= 980
QUAD_META_FLAGS ?= --eval-every 20 --meta-lr 0.001
QUAD_TRAIN_SEED ?= $(call meta_seeded,1)
QUAD_VALIDATION_SEED ?= 2
QUAD_TEST_SEED ?= 3

$(Q)/train.npz: $(BUILD) | $(Q)/
	$(RELEASE)/sample-optimizee quadratic --count 128 --seed $(QUAD_TRAIN_SEED) -o $@

$(Q)/validation.npz: $(BUILD) | $(Q)/
	$(RELEASE)/sample-optimizee quadratic --count 128 --seed $(QUAD_VALIDATION_SEED) -o $@

$(Q)/test.npz: $(BUILD) | $(Q)/
	$(RELEASE)/sample-optimizee quadratic --count 100 --seed $(QUAD_TEST_SEED) -o $@

QUAD_RECIPE = --epochs $(QUAD_EPOCHS) $(QUAD_META_FLAGS) --seed $(META_SEED)
$(Q)/optimizer.npz: $(Q)/train.npz $(Q)/validation.npz $(BUILD) \
  $(call recipe_file,$(Q)/optimizer.npz,$(QUAD_RECIPE))
	$(call fresh_training,$@)
	$(LAUNCH) $(RELEASE)/meta-train --train $(Q)/train.npz --validation $(Q)/validation.npz \
	  $(QUAD_RECIPE) --threads $(THREADS) -o $@
	$(call record_recipe,$(QUAD_RECIPE))

$(Q)/trajectories.parquet: $(Q)/optimizer.npz $(Q)/test.npz $(Q)/validation.npz $(BUILD)
	$(LAUNCH) $(RELEASE)/evaluate --spec $(Q)/test.npz --steps 100 \
	  -O lstm:$(Q)/optimizer.npz,sgd,nag,rmsprop,adam \
	  --validation $(Q)/validation.npz --tuning-output $(Q)/tuning.parquet \
	  --threads $(THREADS) -o $@ --tune

$(FIGURES)/figure4.png: $(Q)/trajectories.parquet $(M)/base_100.parquet $(M)/base_200.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --panel "$(Q)/trajectories.parquet=Quadratics" 	  --panel "$(M)/base_100.parquet=MNIST" --panel "$(M)/base_200.parquet=MNIST, 200 steps" -o $@
