# Figure 6 (§3.2): a systematic sweep of the tested architecture, all sigmoid: layers
# {1, 2, 3} × hidden units {5, 10, 20, 40, 80}. In each cell the base optimizer's mean final
# loss after 100 steps is compared with that of the best baseline tuned for that cell.

.PHONY: figure6
figure6: $(FIGURES)/figure6.png

FIG6_LAYERS := 1 2 3
FIG6_UNITS := 5 10 20 40 80
FIG6_CELLS := $(foreach l,$(FIG6_LAYERS),$(foreach u,$(FIG6_UNITS),L$(l)_H$(u)))
# L2_H40 -> --hidden 40,40
fig6_hidden = $(shell n=$(word 1,$(subst _, ,$(subst L,,$(subst H,,$(1))))); u=$(word 2,$(subst _, ,$(subst L,,$(subst H,,$(1))))); printf '%s' "$$u"; for i in $$(seq 2 $$n); do printf ',%s' "$$u"; done)

$(M)/fig6/%/validation.npz: $(MNIST) $(BUILD)
	$(call mnist_spec,$@,$(MNIST_VALIDATION_SEED),$(MNIST_VALIDATION_RUNS),train,--hidden $(call fig6_hidden,$*))

$(M)/fig6/%/test.npz: $(MNIST) $(BUILD)
	$(call mnist_spec,$@,$(MNIST_TEST_SEED),$(MNIST_TEST_RUNS),test,--hidden $(call fig6_hidden,$*))

$(M)/fig6/%/trajectories.parquet: $(MNIST_CHECKPOINTS) $(M)/fig6/%/test.npz $(M)/fig6/%/validation.npz $(BUILD)
	$(call mnist_panel,$(M)/fig6/$*/test.npz,$(M)/fig6/$*/validation.npz,100,$@)

fig6_cell_arg = --cell "$(M)/fig6/$(1)/trajectories.parquet=$(subst _H,$(comma),$(subst L,,$(1)))"

$(FIGURES)/figure6.png: $(foreach c,$(FIG6_CELLS),$(M)/fig6/$(c)/trajectories.parquet) $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot $(foreach c,$(FIG6_CELLS),$(call fig6_cell_arg,$(c))) --trained-on 1,20 \
	  --table $(M)/fig6/cells.parquet -o $@

# Specs made by pattern rules are kept (make would delete them as intermediates).
.PRECIOUS: $(M)/fig6/%/validation.npz $(M)/fig6/%/test.npz
