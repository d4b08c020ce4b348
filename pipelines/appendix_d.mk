# Appendix D: learned optimizers that share information between coordinates (docs/method.md,
# "Sharing between coordinates"). The paper gives no figure or number for them; this measures
# them. LSTM+GAC, NTM-BFGS and NTM-L-BFGS are meta-trained on §3.1's 10-d quadratics with the
# budget, flags, specs and seed of Figure 4's LSTM, whose checkpoint is the fourth. All four
# are then tested, unchanged, against the tuned baselines and tuned L-BFGS (no line search; the
# algorithm NTM-BFGS is built to imitate): on fresh 10-d quadratics; on
# quadratics they were not trained on (30 dimensions; 10 with W drawn from U[0, 1), whose
# common mean makes them far worse conditioned); and on the MNIST base network, where NTM-BFGS's
# n × n memory does not fit (n = 15,910), so only the LSTM, LSTM+GAC and NTM-L-BFGS run.
# Each panel at the training horizon (100 steps) and at twice it (200).

.PHONY: appendix-d
appendix-d: $(FIGURES)/appendix-d.png

AD := $(OUT)/appendix-d
AD_SHARING := $(AD)/LSTM+GAC.npz $(AD)/NTM-BFGS.npz $(AD)/NTM-L-BFGS.npz
AD_CHECKPOINTS := $(AD)/LSTM.npz $(AD_SHARING)
AD_FLAGS_LSTM+GAC := --architecture lstm-gac
AD_FLAGS_NTM-BFGS := --architecture ntm-bfgs
AD_FLAGS_NTM-L-BFGS := --architecture ntm-lbfgs

$(AD)/LSTM.npz: $(Q)/optimizer.npz | $(AD)/
	cp $< $@.tmp && mv $@.tmp $@

AD_RECIPE = $(QUAD_RECIPE) $(AD_FLAGS_$(1))
$(foreach c,$(AD_SHARING),$(eval $(c): $(call recipe_file,$(c),$(call AD_RECIPE,$(basename $(notdir $(c)))))))
$(AD_SHARING): $(AD)/%.npz: $(Q)/train.npz $(Q)/validation.npz $(BUILD) | $(AD)/
	$(call fresh_training,$@)
	$(LAUNCH) $(RELEASE)/meta-train --train $(Q)/train.npz --validation $(Q)/validation.npz \
	  $(call AD_RECIPE,$*) --threads $(THREADS) -o $@
	$(call record_recipe,$(call AD_RECIPE,$*))

# The quadratics they were not trained on: test and validation specs with the seeds of
# Figure 4's, in another shape.
AD_SHAPE_wide := --dims 30
AD_SHAPE_uniform := --dist uniform
# Kept, as Figure 4's specs are: the panels' runs are checked against them, and a spec made
# again would make every panel run again. (.PRECIOUS names the rules' own target patterns:
# make keeps an intermediate file only where its rule's pattern is listed.)
.PRECIOUS: $(AD)/specs/ $(AD)/specs/%-test.npz $(AD)/specs/%-validation.npz
$(AD)/specs/%-test.npz: $(BUILD) | $(AD)/specs/
	$(RELEASE)/sample-optimizee quadratic $(AD_SHAPE_$*) --count 100 --seed $(QUAD_TEST_SEED) -o $@
$(AD)/specs/%-validation.npz: $(BUILD) | $(AD)/specs/
	$(RELEASE)/sample-optimizee quadratic $(AD_SHAPE_$*) --count 128 --seed $(QUAD_VALIDATION_SEED) -o $@

$(AD)/quadratic_100.parquet $(AD)/quadratic_200.parquet &: $(AD_CHECKPOINTS) $(Q)/test.npz $(Q)/validation.npz $(BUILD)
	$(call learned_panel,$(AD_CHECKPOINTS),$(Q)/test.npz,$(Q)/validation.npz,100$(comma)200,$(AD)/quadratic_100.parquet $(AD)/quadratic_200.parquet,$(comma)lbfgs)

$(AD)/%_100.parquet $(AD)/%_200.parquet: $(AD_CHECKPOINTS) $(AD)/specs/%-test.npz $(AD)/specs/%-validation.npz $(BUILD)
	$(call learned_panel,$(AD_CHECKPOINTS),$(AD)/specs/$*-test.npz,$(AD)/specs/$*-validation.npz,100$(comma)200,$(AD)/$*_100.parquet $(AD)/$*_200.parquet,$(comma)lbfgs)

AD_MNIST_CHECKPOINTS := $(AD)/LSTM.npz $(AD)/LSTM+GAC.npz $(AD)/NTM-L-BFGS.npz
$(AD)/mnist_100.parquet $(AD)/mnist_200.parquet &: $(AD_MNIST_CHECKPOINTS) $(M)/test.npz $(M)/validation.npz $(BUILD)
	$(call learned_panel,$(AD_MNIST_CHECKPOINTS),$(M)/test.npz,$(M)/validation.npz,100$(comma)200,$(AD)/mnist_100.parquet $(AD)/mnist_200.parquet,$(comma)lbfgs)

AD_PANELS := quadratic wide uniform mnist
$(FIGURES)/appendix-d.png: $(foreach p,$(AD_PANELS),$(AD)/$(p)_100.parquet $(AD)/$(p)_200.parquet) $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --panel "$(AD)/quadratic_200.parquet=10-d quadratics (trained)" \
	  --panel "$(AD)/wide_200.parquet=30-d quadratics" \
	  --panel "$(AD)/uniform_200.parquet=10-d, W ~ U[0, 1)" \
	  --panel "$(AD)/mnist_200.parquet=MNIST base network" -o $@
