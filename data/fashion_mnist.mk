# Fashion-MNIST (Xiao et al. 2017; MIT): the training set (60,000 images; validation and tuning
# runs) and the test set (10,000; the held-out test runs) in the official IDX format, from
# Debian's dataset-fashion-mnist, installed with apt-get when missing and checked against
# data/fashion-mnist.sha256. FASHION_MNIST may point at any folder of the official files.

FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
FASHION_STAMP := $(DATA)/fashion-mnist.checked

.PHONY: fashion-data
fashion-data: $(FASHION_STAMP)

$(FASHION_STAMP): data/fashion-mnist.sha256 | $(DATA)/
	@if [ ! -e $(FASHION_MNIST)/train-images-idx3-ubyte.gz ]; then \
	  if [ "$(FASHION_MNIST)" = /usr/share/datasets/fashion-mnist ]; then \
	    echo "make: installing dataset-fashion-mnist with apt-get"; \
	    $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "make: FASHION_MNIST=$(FASHION_MNIST) holds no train-images-idx3-ubyte.gz" >&2; exit 1; fi; fi
	cd $(FASHION_MNIST) && sha256sum --check --quiet $(CURDIR)/data/fashion-mnist.sha256
	@touch $@
