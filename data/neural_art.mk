# Neural art (Figures 8 and 9, Appendices B and C; docs/neural_art.md, "Data"): 27 photos,
# 8 paintings and MobileNet v1's weights. By default a folder under $(DATA) built from each
# file's source by data/neural_art_fetch.sh (Debian packages, a PyPI wheel, GitHub);
# NEURAL_ART=DIR names any other copy. Either is checked against data/neural_art.sha256.

NEURAL_ART_DEFAULT := $(DATA)/neural_art
NEURAL_ART ?= $(NEURAL_ART_DEFAULT)
NA_STAMP := $(DATA)/neural_art.checked

.PHONY: neural-art-data
neural-art-data: $(NA_STAMP)

$(NA_STAMP): data/neural_art.sha256 | $(DATA)/
	@if [ "$(NEURAL_ART)" = "$(NEURAL_ART_DEFAULT)" ]; then \
	  if ! (cd $(NEURAL_ART) 2>/dev/null && sha256sum --check --quiet --status $(CURDIR)/data/neural_art.sha256); then \
	    SUDO=$(SUDO) data/neural_art_fetch.sh $(NEURAL_ART); fi; \
	elif [ ! -e $(NEURAL_ART)/mobilenet_v1/mobilenet_v1.npz ]; then \
	  echo "make: NEURAL_ART=$(NEURAL_ART) holds no mobilenet_v1/mobilenet_v1.npz; point it at \
	a neural-art folder, or leave it unset to build one in $(NEURAL_ART_DEFAULT)" >&2; exit 1; fi
	@cd $(NEURAL_ART) && sha256sum --check --quiet $(CURDIR)/data/neural_art.sha256 || { \
	  echo "make: $(NEURAL_ART) differs from data/neural_art.sha256 (the files above)" >&2; exit 1; }
	@touch $@
