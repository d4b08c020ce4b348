# Figure 8 (§3.4): learned optimizers on neural art against SGD, RMSprop, Adam and NAG with
# rates tuned on validation images. Each problem is one image θ (3 × S × S) whose loss weighs
# a content crop of a photo against a style painting on MobileNet v1's features
# (docs/neural_art.md; the paper used VGG-19, whose weights are not available).
# Panels (test crops of photos seen neither in training nor in validation):
#   the training style at the training size (64 px)  |  a new style at double the size (128 px)
#   and the two mixed panels: the training style at 128 px, the new style at 64 px.
# Curves:
#   LSTM   the paper's recipe: a pure LSTM, 128 steps in unrolls of 32, truncated BPTT without
#          second derivatives, Appendix A's preprocessing, no postprocessing (output scale 1),
#          meta-Adam, early stopping on the validation crops; one training style at 64 px.
#   Adam+LSTM  beyond the paper: the LSTM's output added to the step of Adam with its rate
#          tuned on the validation crops, from a zero output (exactly tuned Adam), trained on
#          Σ log f (--meta-loss log), as Figure 4's correction to NAG was.

NA := $(OUT)/neural_art
NA_FEATURES = $(NEURAL_ART)/mobilenet_v1/mobilenet_v1.npz
NA_STEPS ?= 128
NA_EPOCHS ?= 300
# make figure8 runs its jobs NA_JOBS at a time (one per core), each on one thread.
NA_JOBS ?= $(shell nproc)
NA_THREADS ?= 1
NA_TRAIN_STYLE ?= starry_night.jpg
NA_NEW_STYLE ?= the_scream.jpg
# Photos (those data/neural_art.sha256 lists) by split: every third photo (in name order) is a
# test photo, four others are validation photos, and the other fourteen are training photos.
NA_PHOTOS := $(sort $(notdir $(filter content/%,$(shell cut -d' ' -f3 data/neural_art.sha256))))
NA_TEST_PHOTOS = $(foreach i,1 4 7 10 13 16 19 22 25,$(word $(i),$(NA_PHOTOS)))
NA_VALIDATION_PHOTOS = $(foreach i,2 8 14 20,$(word $(i),$(NA_PHOTOS)))
NA_TRAIN_PHOTOS = $(filter-out $(NA_TEST_PHOTOS) $(NA_VALIDATION_PHOTOS),$(NA_PHOTOS))
NA_TRAIN_CROPS ?= 128
NA_VALIDATION_CROPS ?= 4
NA_TEST_CROPS ?= 27
# The baselines' rates (and the correction's base rate): 1e-4 … 10 in quarter decades, as for
# MNIST.
NA_LR_GRID ?= 1e-4:10:4
NA_META_FLAGS ?= --steps $(NA_STEPS) --unroll 32 --batch 1 --eval-every 10 \
  --preprocessing log-sign --p 10 --meta-lr 1e-3
NA_PAPER_FLAGS ?= --output-scale 1
NA_CORRECTION_FLAGS ?= --output-scale 0.1 --base adam --lr-grid $(NA_LR_GRID) --meta-loss log
na_photos = $(subst $(eval) ,$(comma),$(addprefix $(NEURAL_ART)/content/,$(1)))

.PHONY: figure8
figure8: $(BUILD) $(NA_STAMP)
	$(MAKE) --no-print-directory -j$(NA_JOBS) $(FIGURES)/figure8.png

# $(call na_spec,NAME,PHOTOS,STYLE,SIZE,COUNT,SEED)
define na_spec
$(NA)/$(1).npz: $(NA_STAMP) $(BUILD) | $(NA)/
	$(RELEASE)/sample-optimizee neural-art --content $(call na_photos,$(2)) \
	  --style $(NEURAL_ART)/style/$(3) --size $(4) --count $(5) --seed $(6) \
	  --features $(NA_FEATURES) -o $$@
endef
# The training crops move with META_SEED (another meta-training draw); validation and test crops
# stay the same for every draw.
$(eval $(call na_spec,train,$(NA_TRAIN_PHOTOS),$(NA_TRAIN_STYLE),64,$(NA_TRAIN_CROPS),$(call meta_seeded,101)))
$(eval $(call na_spec,validation,$(NA_VALIDATION_PHOTOS),$(NA_TRAIN_STYLE),64,$(NA_VALIDATION_CROPS),102))
# Each panel: test crops (the same boxes at both sizes: same photos, same seed) and
# validation crops for tuning, in the panel's style and size.
NA_PANELS := train64 new128 train128 new64
NA_STYLE_train64 = $(NA_TRAIN_STYLE)
NA_STYLE_train128 = $(NA_TRAIN_STYLE)
NA_STYLE_new64 = $(NA_NEW_STYLE)
NA_STYLE_new128 = $(NA_NEW_STYLE)
NA_SIZE_train64 := 64
NA_SIZE_new64 := 64
NA_SIZE_train128 := 128
NA_SIZE_new128 := 128
NA_TITLE_train64 := Training style, 64 px
NA_TITLE_new128 := New style, 128 px
NA_TITLE_train128 := Training style, 128 px
NA_TITLE_new64 := New style, 64 px
$(foreach p,$(NA_PANELS),$(eval $(call na_spec,$(p)/test,$(NA_TEST_PHOTOS),$(NA_STYLE_$(p)),$(NA_SIZE_$(p)),$(NA_TEST_CROPS),103)))
$(foreach p,$(NA_PANELS),$(eval $(call na_spec,$(p)/validation,$(NA_VALIDATION_PHOTOS),$(NA_STYLE_$(p)),$(NA_SIZE_$(p)),$(NA_VALIDATION_CROPS),104)))
$(foreach p,$(NA_PANELS),$(NA)/$(p)/test.npz $(NA)/$(p)/validation.npz): | $(foreach p,$(NA_PANELS),$(NA)/$(p)/)

# $(call na_optimizer,NAME,FLAGS) (one process under MPI_RANKS: --batch 1 is one shard of work)
na_recipe = --epochs $(NA_EPOCHS) $(NA_META_FLAGS) $(1) --seed $(META_SEED)
define na_optimizer
$(NA)/$(1).npz: $(NA)/train.npz $(NA)/validation.npz $(BUILD) \
  $(call recipe_file,$(NA)/$(1).npz,$(call na_recipe,$(2)))
	$$(call fresh_training,$$@)
	$(RELEASE)/meta-train --train $(NA)/train.npz --validation $(NA)/validation.npz \
	  $(call na_recipe,$(2)) --threads $(NA_THREADS) -o $$@
	$$(call record_recipe,$(call na_recipe,$(2)))
endef
NA_LEARNED := LSTM Adam+LSTM
$(eval $(call na_optimizer,LSTM,$(NA_PAPER_FLAGS)))
$(eval $(call na_optimizer,Adam+LSTM,$(NA_CORRECTION_FLAGS)))

define na_panel
$(NA)/$(1).baselines.parquet: $(NA)/$(1)/test.npz $(NA)/$(1)/validation.npz $(BUILD)
	$(LAUNCH) $(RELEASE)/evaluate --spec $(NA)/$(1)/test.npz --steps $(NA_STEPS) -O sgd,nag,rmsprop,adam \
	  --lr-grid $(NA_LR_GRID) --validation $(NA)/$(1)/validation.npz \
	  --tuning-output $(NA)/$(1).tuning.parquet --threads $(NA_THREADS) -o $$@ --tune
$(NA)/$(1).learned.parquet: $(NA)/$(1)/test.npz $(foreach o,$(NA_LEARNED),$(NA)/$(o).npz) $(BUILD) | $(NA)/images/$(1)/
	$(RELEASE)/evaluate --spec $(NA)/$(1)/test.npz --steps $(NA_STEPS) \
	  $(foreach o,$(NA_LEARNED),-O "lstm:$(NA)/$(o).npz") --images $(NA)/images/$(1) \
	  --threads $(NA_THREADS) -o $$@
endef
$(foreach p,$(NA_PANELS),$(eval $(call na_panel,$(p))))
# The same for every meta-training draw (`make seeds` reuses draw 0's).
DRAW_INDEPENDENT_figure8 := $(foreach p,$(NA_PANELS),$(addprefix neural_art/$(p),/test.npz \
  /validation.npz .baselines.parquet .tuning.parquet))

NA_PLOT_PANELS = $(foreach p,$(NA_PANELS),--panel "$(NA)/$(p).learned.parquet,$(NA)/$(p).baselines.parquet=$(NA_TITLE_$(p))")

$(FIGURES)/figure8.png: $(foreach p,$(NA_PANELS),$(NA)/$(p).learned.parquet $(NA)/$(p).baselines.parquet) $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot $(NA_PLOT_PANELS) -o $@

# Figure 9: content | LSTM-styled | style, for the first test crop of the training style at
# 64 px and of the new style at 128 px; Appendix C: the next three crops of each. The images
# come from the final θ of the learned-optimizer runs of Figure 8's panels.
NA_TRIPLES := train64 new128
.PHONY: figure9 appendix-c
NA_TRIPLE_FILES := $(foreach p,$(NA_TRIPLES),$(FIGURES)/figure9-$(p).png)
NA_APPENDIX_FILES := $(foreach p,$(NA_TRIPLES),$(foreach r,01 02 03,$(FIGURES)/appendix-c-$(p)-$(r).png))
figure9: $(BUILD) $(NA_STAMP)
	$(MAKE) --no-print-directory -j$(NA_JOBS) $(NA_TRIPLE_FILES)
appendix-c: $(BUILD) $(NA_STAMP)
	$(MAKE) --no-print-directory -j$(NA_JOBS) $(NA_APPENDIX_FILES)

$(FIGURES)/figure9-%.png: $(NA)/%.learned.parquet | $(FIGURES)/
	cp $(NA)/images/$*/LSTM-00.png $@

# appendix-c-PANEL-RUN.png
.SECONDEXPANSION:
$(NA_APPENDIX_FILES): $(FIGURES)/appendix-c-%.png: $(NA)/$$(word 1,$$(subst -, ,$$*)).learned.parquet | $(FIGURES)/
	cp $(NA)/images/$(word 1,$(subst -, ,$*))/LSTM-$(word 2,$(subst -, ,$*)).png $@

# Appendix B (Figures 10-13): inside the paper's LSTM on the first test crop of the training
# style at 64 px. Two coordinates, each one colour channel of one pixel (NA_PROBE_COORDINATES:
# channel·64² + row·64 + column; the defaults are red at (32, 32) and green at (10, 50)).
# Figure 10: the update the LSTM proposes at every step, and the updates SGD and Adam (rates
# tuned on the panel's validation crops) would propose at the same iterates from the same
# gradients, their state fed those gradients. Figures 11-13: at steps NA_PROBE_STEPS, the update
# each would propose for a gradient swept over NA_PROBE_GRADIENTS, its state left as the
# trajectory made it.
NA_PROBE_COORDINATES ?= 2080,4786
NA_PROBE_STEPS ?= 4 32 127
NA_PROBE_GRADIENTS ?= -5:5:41
comma_list = $(subst $(eval) ,$(comma),$(strip $(1)))
.PHONY: appendix-b
appendix-b: $(FIGURES)/figure10.png $(FIGURES)/figure11.png $(FIGURES)/figure12.png $(FIGURES)/figure13.png

$(NA)/probe.parquet: $(NA)/train64/test.npz $(NA)/train64/validation.npz $(NA)/LSTM.npz $(BUILD)
	$(LAUNCH) $(RELEASE)/evaluate --spec $(NA)/train64/test.npz --steps $(NA_STEPS) -O "lstm:$(NA)/LSTM.npz,sgd,adam" \
	  --lr-grid $(NA_LR_GRID) --validation $(NA)/train64/validation.npz \
	  --probe $(NA_PROBE_COORDINATES) --probe-run 0 --probe-sweep-steps $(call comma_list,$(NA_PROBE_STEPS)) \
	  --probe-gradients $(NA_PROBE_GRADIENTS) --probe-output $@ \
	  --threads $(THREADS) -o $(NA)/probe.trajectories.parquet --tune

$(FIGURES)/figure10.png: $(NA)/probe.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --probe $< -o $@
$(FIGURES)/figure11.png: $(NA)/probe.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --probe $< --sweep-step $(word 1,$(NA_PROBE_STEPS)) -o $@
$(FIGURES)/figure12.png: $(NA)/probe.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --probe $< --sweep-step $(word 2,$(NA_PROBE_STEPS)) -o $@
$(FIGURES)/figure13.png: $(NA)/probe.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --probe $< --sweep-step $(word 3,$(NA_PROBE_STEPS)) -o $@
