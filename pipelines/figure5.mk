# Figure 5 (§3.2): the optimizer trained on the base network, unchanged, on three other
# networks: 40 hidden units, two hidden layers of 20, and ReLU units. The baselines are
# re-tuned for each network on its own validation runs.

.PHONY: figure5
figure5: $(FIGURES)/figure5.png

FIG5_ARCHS := h40 l2 relu
FIG5_FLAGS_h40 := --hidden 40
FIG5_FLAGS_l2 := --hidden 20,20
FIG5_FLAGS_relu := --hidden 20 --activation relu

$(M)/fig5/%/validation.npz: $(MNIST) $(BUILD)
	$(call mnist_spec,$@,$(MNIST_VALIDATION_SEED),$(MNIST_VALIDATION_RUNS),train,$(FIG5_FLAGS_$*))

$(M)/fig5/%/test.npz: $(MNIST) $(BUILD)
	$(call mnist_spec,$@,$(MNIST_TEST_SEED),$(MNIST_TEST_RUNS),test,$(FIG5_FLAGS_$*))

$(M)/fig5/%/trajectories.parquet: $(MNIST_CHECKPOINTS) $(M)/fig5/%/test.npz $(M)/fig5/%/validation.npz $(BUILD)
	$(call mnist_panel,$(M)/fig5/$*/test.npz,$(M)/fig5/$*/validation.npz,100,$@)

$(FIGURES)/figure5.png: $(foreach a,$(FIG5_ARCHS),$(M)/fig5/$(a)/trajectories.parquet) $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --panel "$(M)/fig5/h40/trajectories.parquet=MNIST, 40 units" \
	  --panel "$(M)/fig5/l2/trajectories.parquet=MNIST, 2 layers" \
	  --panel "$(M)/fig5/relu/trajectories.parquet=MNIST, ReLU" -o $@

# Specs made by pattern rules are kept (make would delete them as intermediates).
.PRECIOUS: $(M)/fig5/%/validation.npz $(M)/fig5/%/test.npz
