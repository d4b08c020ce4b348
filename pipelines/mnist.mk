# MNIST (§3.2): the specs and the learned optimizer that Figures 4 (centre, right), 5 and 6
# share. The optimizer is trained on the base network, an MLP 784-20-10 with sigmoid units,
# minibatches of 128; training, validation and test runs come from disjoint seeds.

# MNIST_RECIPE picks how the optimizer is trained; each recipe keeps its files apart.
#   nag-correction (the default, the committed figures): the LSTM's output is added to the step
#     of NAG (its rate tuned on the validation runs at step 200), starting from a zero output,
#     i.e. from exactly tuned NAG; truncated BPTT of Σ log f over 200-step trajectories trains
#     the correction (trained.npz); no stage 2 (optimizer.npz is a copy). p = 20, so that the
#     tiny gradients of deeper networks keep their magnitude (p = 10 is better on the base
#     network, worse on two layers). README explains why.
#   nag-imitation (out/mnist-nag-imitation, figures/nag-imitation; the default until the
#     correction): first the LSTM imitates tuned NAG on 200-step trajectories (stage 1,
#     trained.npz); then evolution strategies refine every weight on the whole-trajectory log
#     meta-loss (stage 2, optimizer.npz; MNIST_REFINE_EPOCHS=0 skips it).
#   scale-invariant (out/mnist-scale-invariant, figures/scale-invariant): p = 20, and stage 1
#     imitates tuned Adam for 300 epochs before truncated BPTT of Σ log f takes over; stage 2 is
#     the same ES. It generalises to deeper networks, and is behind NAG at step 200 on the base
#     network (README).
#   paper (out/mnist-paper, figures/paper): the paper's own recipe, a pure LSTM (no base rule,
#     no imitation) trained by truncated BPTT without second derivatives of Σ f over 100-step
#     trajectories in unrolls of 20, Appendix A's preprocessing with p = 10, meta-Adam, early
#     stopping on the validation runs at step 100 (MNIST_PAPER_*).
# Every recipe's figures also draw the paper's recipe beside it ("LSTM"); the recipe's own
# optimizer is named by what it is: NAG+LSTM (a correction added to NAG's step),
# LSTM-imitating-NAG, LSTM-imitating-Adam. `make figure4` therefore trains both.
MNIST_RECIPE ?= nag-correction
# The default recipe's and the paper's budgets end at the epochs their early stopping chose in
# longer runs (400 and 300 epochs, validation every 20; made with the matrix products before
# kernels::gemm), on grids that contain those epochs; training does not depend on the budget or
# on validation, so make figure4 fits in 30 minutes on 2 cores (docs/experiments.md, "Budgets"). MNIST_EPOCHS=400 MNIST_EVAL_EVERY=20 MNIST_PAPER_EPOCHS=300
# runs the longer ones.
MNIST_PAPER_EPOCHS ?= 260
MNIST_PAPER_FLAGS ?= --preprocessing log-sign --p 10 --output-scale 0.1 --meta-lr 1e-3 \
  --steps 100 --unroll 20 --batch 1 --eval-every 20
MP := $(OUT)/mnist-paper
ifeq ($(MNIST_RECIPE),nag-correction)
M := $(OUT)/mnist
MNIST_NAME := NAG+LSTM
MNIST_P ?= 20
MNIST_EPOCHS ?= 360
MNIST_EVAL_EVERY ?= 120
MNIST_META_FLAGS ?= --preprocessing log-sign --p $(MNIST_P) --output-scale 0.1 --base nag \
  --steps 200 --batch 1 --eval-every $(MNIST_EVAL_EVERY) --meta-lr 1e-3 --meta-loss log
MNIST_REFINE_EPOCHS ?= 0
else ifeq ($(MNIST_RECIPE),nag-imitation)
M := $(OUT)/mnist-nag-imitation
FIGURES := $(FIGURES)/nag-imitation
MNIST_NAME := LSTM-imitating-NAG
MNIST_P ?= 10
MNIST_META_FLAGS ?= --preprocessing log-sign --p $(MNIST_P) --output-scale 0.1 --imitate nag \
  --imitation-epochs $(MNIST_EPOCHS) --steps 200 --batch 1 --eval-every 20
else ifeq ($(MNIST_RECIPE),scale-invariant)
M := $(OUT)/mnist-scale-invariant
FIGURES := $(FIGURES)/scale-invariant
MNIST_NAME := LSTM-imitating-Adam
MNIST_P ?= 20
MNIST_META_FLAGS ?= --preprocessing log-sign --p $(MNIST_P) --output-scale 0.1 --imitate adam \
  --imitation-epochs 300 --steps 200 --batch 1 --eval-every 10 --meta-lr 1e-4 --meta-loss log
else ifeq ($(MNIST_RECIPE),paper)
M := $(MP)
FIGURES := $(FIGURES)/paper
MNIST_P ?= 10
else
$(error MNIST_RECIPE must be nag-correction, nag-imitation, scale-invariant or paper, not "$(MNIST_RECIPE)")
endif
MNIST_EPOCHS ?= 400
MNIST_REFINE_EPOCHS ?= 30
MNIST_REFINE_FLAGS ?= --preprocessing log-sign --p $(MNIST_P) --output-scale 0.1 --steps 200 \
  --batch 1 --meta-gradient es --es-scope all --es-pairs 16 --es-sigma 0.005 --meta-lr 3e-4 \
  --meta-loss log --eval-every 10
MNIST_TRAIN_SEED ?= $(call meta_seeded,11)
MNIST_VALIDATION_SEED ?= 12
MNIST_TEST_SEED ?= 13
MNIST_VALIDATION_RUNS ?= 20
MNIST_TEST_RUNS ?= 40
# A larger held-out set (make mnist-heldout), used for no choice: its paired differences are
# about half as noisy as the test runs'.
MNIST_HELDOUT_SEED ?= 15
MNIST_HELDOUT_RUNS ?= 100

# $(call mnist_spec,OUTPUT,SEED,RUNS,SPLIT,FLAGS[,DATA]): DATA defaults to MNIST. SPLIT is
# train for the runs that meta-train, validate and tune, test for the runs that measure: the
# held-out images (the last fifth of each class of the 5,000 digits, Fashion-MNIST's t10k
# files), which the learned optimizers never see (docs/method.md, "What is measured").
define mnist_spec
	@mkdir -p $(dir $(1))
	$(RELEASE)/sample-optimizee mlp --data $(if $(6),$(6),$(MNIST)) --split $(4) --count $(3) --seed $(2) $(5) -o $(1)
endef

$(M)/train.npz: $(MNIST) $(BUILD) | $(M)/
	$(call mnist_spec,$@,$(MNIST_TRAIN_SEED),1,train,)

$(M)/validation.npz: $(MNIST) $(BUILD) | $(M)/
	$(call mnist_spec,$@,$(MNIST_VALIDATION_SEED),$(MNIST_VALIDATION_RUNS),train,)

$(M)/test.npz: $(MNIST) $(BUILD) | $(M)/
	$(call mnist_spec,$@,$(MNIST_TEST_SEED),$(MNIST_TEST_RUNS),test,)

# Under MPI_RANKS these runs of one problem an epoch (--batch 1, one shard of work) stay one
# process, as meta-train refuses more ranks than shards; their evaluations are shared.
MNIST_TRAINED_RECIPE = --epochs $(MNIST_EPOCHS) $(MNIST_META_FLAGS) --seed $(META_SEED)
$(M)/trained.npz: $(M)/train.npz $(M)/validation.npz $(BUILD) \
  $(call recipe_file,$(M)/trained.npz,$(MNIST_TRAINED_RECIPE))
	$(call fresh_training,$@)
	$(RELEASE)/meta-train --train $(M)/train.npz --validation $(M)/validation.npz \
	  $(MNIST_TRAINED_RECIPE) --threads $(THREADS) -o $@
	$(call record_recipe,$(MNIST_TRAINED_RECIPE))

MNIST_REFINE_RECIPE = --epochs $(MNIST_REFINE_EPOCHS) $(MNIST_REFINE_FLAGS) --seed $(META_SEED)
$(M)/optimizer.npz: $(M)/trained.npz $(M)/train.npz $(M)/validation.npz $(BUILD) \
  $(call recipe_file,$(M)/optimizer.npz,$(MNIST_REFINE_RECIPE))
	$(call fresh_training,$@)
	if [ "$(MNIST_REFINE_EPOCHS)" = 0 ]; then cp $< $@.tmp && mv $@.tmp $@; else \
	  $(LAUNCH) $(RELEASE)/meta-train --train $(M)/train.npz --validation $(M)/validation.npz --init $< \
	    $(MNIST_REFINE_RECIPE) --threads $(THREADS) -o $@; fi
	$(call record_recipe,$(MNIST_REFINE_RECIPE))

# The paper's recipe, on the same training and validation runs (their seeds are every
# recipe's). Its checkpoint's stem is its legend.
MNIST_PAPER_RECIPE = --epochs $(MNIST_PAPER_EPOCHS) $(MNIST_PAPER_FLAGS) --seed $(META_SEED)
$(MP)/LSTM.npz: $(M)/train.npz $(M)/validation.npz $(BUILD) \
  $(call recipe_file,$(MP)/LSTM.npz,$(MNIST_PAPER_RECIPE)) | $(MP)/
	$(call fresh_training,$@)
	$(RELEASE)/meta-train --train $(M)/train.npz --validation $(M)/validation.npz \
	  $(MNIST_PAPER_RECIPE) --threads $(THREADS) -o $@
	$(call record_recipe,$(MNIST_PAPER_RECIPE))

# The checkpoints every MNIST panel evaluates; evaluate names several by their stems.
ifeq ($(MNIST_RECIPE),paper)
MNIST_CHECKPOINTS := $(MP)/LSTM.npz
else
MNIST_CHECKPOINTS := $(M)/$(MNIST_NAME).npz $(MP)/LSTM.npz
$(M)/$(MNIST_NAME).npz: $(M)/optimizer.npz
	cp $< $@.tmp && mv $@.tmp $@
endif

# $(call learned_panel,CHECKPOINTS,TEST,VALIDATION,STEPS,OUTPUTS[,MORE]): the learned optimizers
# of CHECKPOINTS and the four baselines (and MORE, e.g. `,lbfgs`), each baseline tuned on VALIDATION for STEPS steps, on the
# runs of TEST. STEPS may list horizons (100,200) with one output each: evaluate runs once, to
# the longest, and writes each horizon's panel, the same bytes as a run of its own (tuning
# included). mnist_panel is it with the MNIST checkpoints.
define learned_panel
	$(LAUNCH) $(RELEASE)/evaluate --spec $(2) --steps $(4) $(foreach c,$(1),-O lstm:$(c)) \
	  -O sgd,nag,rmsprop,adam$(6) --validation $(3) \
	  $(foreach o,$(5),-o $(o) --tuning-output $(basename $(o)).tuning.parquet) --threads $(THREADS) --tune
endef
mnist_panel = $(call learned_panel,$(MNIST_CHECKPOINTS),$(1),$(2),$(3),$(4))

# Both horizons of Figure 4's MNIST panels, from one set of runs (a grouped target).
$(M)/base_100.parquet $(M)/base_200.parquet &: $(MNIST_CHECKPOINTS) $(M)/test.npz $(M)/validation.npz $(BUILD)
	$(call mnist_panel,$(M)/test.npz,$(M)/validation.npz,100$(comma)200,$(M)/base_100.parquet $(M)/base_200.parquet)

# The base optimizer against the tuned baselines at step 200 on MNIST_HELDOUT_RUNS runs: the
# check behind README's "Step 200 on the base network".
.PHONY: mnist-heldout
mnist-heldout: $(M)/heldout_200.parquet

$(M)/heldout.npz: $(MNIST) $(BUILD) | $(M)/
	$(call mnist_spec,$@,$(MNIST_HELDOUT_SEED),$(MNIST_HELDOUT_RUNS),test,)

$(M)/heldout_200.parquet: $(MNIST_CHECKPOINTS) $(M)/heldout.npz $(M)/validation.npz $(BUILD)
	$(call mnist_panel,$(M)/heldout.npz,$(M)/validation.npz,200,$@)
