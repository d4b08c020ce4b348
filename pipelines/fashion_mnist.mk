# Beyond the paper: the MNIST-trained optimizer, unchanged, on Fashion-MNIST (the same base
# network, 784-20-10 sigmoid, minibatches of 128), against baselines re-tuned on Fashion-MNIST
# validation runs, for 100 and 200 steps. Same seeds as the MNIST panels.

.PHONY: fashion-mnist
fashion-mnist: $(FIGURES)/fashion_mnist.png

FM := $(M)/fashion

$(FM)/validation.npz: $(FASHION_STAMP) $(BUILD) | $(FM)/
	$(call mnist_spec,$@,$(MNIST_VALIDATION_SEED),$(MNIST_VALIDATION_RUNS),train,,$(FASHION_MNIST))

$(FM)/test.npz: $(FASHION_STAMP) $(BUILD) | $(FM)/
	$(call mnist_spec,$@,$(MNIST_TEST_SEED),$(MNIST_TEST_RUNS),test,,$(FASHION_MNIST))

$(FM)/base_100.parquet $(FM)/base_200.parquet &: $(MNIST_CHECKPOINTS) $(FM)/test.npz $(FM)/validation.npz $(BUILD)
	$(call mnist_panel,$(FM)/test.npz,$(FM)/validation.npz,100$(comma)200,$(FM)/base_100.parquet $(FM)/base_200.parquet)

$(FIGURES)/fashion_mnist.png: $(FM)/base_100.parquet $(FM)/base_200.parquet $(BUILD) | $(FIGURES)/
	$(RELEASE)/plot --panel "$(FM)/base_100.parquet=Fashion-MNIST" \
	  --panel "$(FM)/base_200.parquet=Fashion-MNIST, 200 steps" -o $@

