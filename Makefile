# l2l — reproduce "Learning to learn by gradient descent by gradient descent"
# (Andrychowicz et al., NIPS 2016). `make figure4` reproduces Figure 4; `make test` runs the
# tests. Each paper figure has its own fragment in pipelines/.

SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:

CARGO ?= cargo
OUT ?= out
FIGURES ?= figures
# Fetched data sets (data/*.mk).
DATA ?= $(OUT)/data
# Worker threads for each binary (0 = one per core).
THREADS ?= 0

# A learned optimizer is one draw of meta-training (docs/experiments.md, "Meta-training
# seeds"). META_SEED=K (0 by default: the committed figures) draws another: its own initial
# weights (meta-train --seed K) and training problems (each training spec's seed + 1000·K), on
# the same validation and test runs, so that the draws compare run by run.
META_SEED ?= 0
# $(call meta_seeded,SEED): a training spec's seed under META_SEED.
meta_seeded = $(shell echo $$(( $(1) + 1000 * $(META_SEED) )))

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := Cargo.toml Cargo.lock $(shell find lib bins -name '*.rs')

# MPI (docs/performance.md, "Across processes"): `make mpi` builds the binaries with the `mpi`
# feature into target/mpi; MPI_RANKS=K makes every figure pipeline run its meta-train and
# evaluate as `mpirun -np K` with them (and its other binaries from the same build). Results
# are bit-identical to one process. MPIRUN_FLAGS adds mpirun's own flags (--hostfile FILE,
# --oversubscribe, ...).
MPI_RANKS ?=
MPIRUN ?= mpirun
MPIRUN_FLAGS ?=
MPI_TARGET := target/mpi
MPI_BUILD := $(MPI_TARGET)/release/.l2l-built
# Open MPI, its launcher, and libclang for the bindings of the mpi crate.
MPI_DEB_PACKAGES := libopenmpi-dev openmpi-bin libclang-dev
# Open MPI refuses to start as root (containers, CI) unless told to.
MPI_ROOT := $(if $(SUDO),,--allow-run-as-root)
ifeq ($(MPI_RANKS),)
RELEASE := target/release
BUILD := $(RELEASE)/.l2l-built
LAUNCH :=
else
RELEASE := $(MPI_TARGET)/release
BUILD := $(MPI_BUILD)
LAUNCH := $(MPIRUN) -np $(MPI_RANKS) $(MPI_ROOT) $(MPIRUN_FLAGS)
endif

.PHONY: all test test-mpi mpi mpi-deps python-deps python-debs bench fuzz deps build clean
all: figure4

# System packages: OpenBLAS (BLAS for ndarray, through pkg-config) and the font of the figures.
# Installed with apt-get only when missing.
DEB_PACKAGES := libopenblas-dev pkg-config fonts-dejavu-core
# $(call install_missing,PACKAGES): installs those of the Debian PACKAGES that are missing.
define install_missing
@missing=""; for p in $(1); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing with apt-get"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi
endef
deps:
	$(call install_missing,$(DEB_PACKAGES))

mpi-deps: | deps
	$(call install_missing,$(MPI_DEB_PACKAGES))

target/release/.l2l-built: $(SOURCES) | deps
	$(CARGO) build --release --locked
	@touch $@

$(MPI_BUILD): $(SOURCES) | mpi-deps
	CARGO_TARGET_DIR=$(MPI_TARGET) $(CARGO) build --release --locked --features mpi
	@touch $@

build: $(BUILD)
mpi: $(MPI_BUILD)

# Python with numpy serves the external optimizees of tests/external.rs and the bench
# (python/); installed from Debian only where no Python here imports numpy. The first of
# L2L_PYTHON (where set), python3 on PATH and Debian's /usr/bin/python3 that imports numpy runs
# them: a pyenv or virtualenv python3 on PATH does not see Debian's python3-numpy. FlatBuffers
# builds the small model that data/mobilenet_tflite.py's test converts (skipped without it).
PY_DEB_PACKAGES := python3 python3-numpy python3-flatbuffers
PYTHON_WITH_NUMPY = for p in $(or $(L2L_PYTHON),python3 /usr/bin/python3); do \
  if $$p -c "import numpy" >/dev/null 2>&1; then echo $$p; break; fi; done
python-deps:
	@[ -n "$$($(PYTHON_WITH_NUMPY))" ] || $(MAKE) --no-print-directory python-debs
python-debs:
	$(call install_missing,$(PY_DEB_PACKAGES))

# The tests of the default build, which has no MPI; then the MPI tests (tests/mpi.rs) on a
# build of their own.
test: | deps
	@$(MAKE) --no-print-directory python-deps || echo "make: $(PY_DEB_PACKAGES) could not be installed"
	@py=$$($(PYTHON_WITH_NUMPY)); echo "L2L_PYTHON=$$py $(CARGO) test --release --locked"; \
	L2L_PYTHON=$$py $(CARGO) test --release --locked || exit 1; \
	if [ -n "$$py" ]; then \
	  echo "make: the Python helper's tests (python/tests), on $$py ($$($$py --version)) with numpy"; \
	  $$py -m unittest discover -s python/tests; \
	else echo "make: no python3 with numpy: the Python helper's tests and tests/external.rs skipped"; fi
	$(MAKE) --no-print-directory test-mpi

test-mpi:
	@$(MAKE) --no-print-directory mpi-deps || echo "make: Open MPI could not be installed"
	@if command -v mpirun >/dev/null && dpkg -s $(MPI_DEB_PACKAGES) >/dev/null 2>&1; then \
	  echo "CARGO_TARGET_DIR=$(MPI_TARGET) $(CARGO) test --release --locked --features mpi --test mpi"; \
	  CARGO_TARGET_DIR=$(MPI_TARGET) $(CARGO) test --release --locked --features mpi --test mpi; \
	else echo "make: the MPI tests are skipped: $(MPI_DEB_PACKAGES) are not all installed"; fi

# Fuzzing of the spec, checkpoint and trajectory readers (tests/fuzz.rs), FUZZ_SECONDS each,
# one reader at a time; `make test` runs the same cases for 3 s each.
FUZZ_SECONDS ?= 600
fuzz: | deps
	L2L_FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release --locked --test fuzz -- --nocapture --test-threads=1

clean:
	rm -rf $(OUT)

%/:
	@mkdir -p $@

# A checkpoint that exists is a finished run: make retrains only because its inputs changed,
# so that run's resume state must not be continued. A killed run leaves no checkpoint
# (.DELETE_ON_ERROR), and meta-train resumes it.
fresh_training = @if [ -e $(1) ]; then rm -f $(basename $(1)).resume.npz; fi

# What trained a checkpoint. $(call recipe_file,CHECKPOINT,SETTINGS) names a prerequisite of
# CHECKPOINT; its rule writes the settings that change the checkpoint's bytes (flags, budget,
# seed) to CHECKPOINT.recipe with $(call record_recipe,SETTINGS). Where the checkpoint exists and
# that file holds other settings, the prerequisite is CHECKPOINT.recipe.changed, which nothing
# makes, so make trains again: `make figure7 CIFAR_EPOCHS=400` after `make figure7` retrains
# instead of keeping the 15-epoch networks, and `make -n` plans it without writing anything. A
# checkpoint made before these files existed is taken as made by SETTINGS.
recipe_file = $(1).recipe$(shell c='$(1)'; f="$$c.recipe"; t='$(strip $(2))'; \
  if [ -e "$$c" ] && [ ! -e "$$f" ]; then printf '%s\n' "$$t" > "$$f" && touch -r "$$c" "$$f"; \
  elif [ -e "$$c" ] && [ "$$(cat "$$f")" != "$$t" ]; then printf .changed; fi)
# The file takes the checkpoint's time, so that it is never newer than what it describes.
record_recipe = @printf '%s\n' '$(strip $(1))' > $@.recipe && touch -r $@ $@.recipe
%.recipe %.recipe.changed: ;

# The report reads the top figures folder, whatever MNIST_RECIPE makes of FIGURES below.
REPORT_FIGURES := $(FIGURES)

# A comma, for make functions' arguments (lists of horizons, photos, cells).
comma := ,

include data/*.mk
# mnist.mk defines what the figure fragments share, so it comes first; appendix_d.mk tests
# Figure 4's optimizers and reads its folders, so it comes last.
include pipelines/mnist.mk
include $(filter-out pipelines/mnist.mk pipelines/appendix_d.mk,$(sort $(wildcard pipelines/*.mk)))
include pipelines/appendix_d.mk

# More meta-training draws of a figure: for each K of SEEDS, SEEDS_TARGET's pipeline again
# under $(OUT)/seeds/K with META_SEED=K (its figure goes to $(OUT)/seeds/K/figures). `make
# report` pools every draw it finds with the default one (docs/experiments.md, "Meta-training
# seeds"). The draws' runs take about as long as the target each; meta-train resumes, so they
# can run in pieces.
# What no draw changes, a pipeline lists in DRAW_INDEPENDENT_<target> (paths under $(OUT)): the
# test and validation specs and the tuned baselines of Figures 7 and 8. Each draw starts from
# draw 0's copies, their modification times kept, so make redoes one only where it would have
# redone draw 0's (a newer build, changed inputs). The copying is part of the recipe line that
# runs make, so `make -n seeds` does it too.
SEEDS ?= 1 2
SEEDS_TARGET ?= figure4
.PHONY: seeds
seeds: $(BUILD)
	@for k in $(SEEDS); do \
	  [ "$$k" != 0 ] || { echo "make: seed 0 is the figure target's own; SEEDS lists the others" >&2; exit 1; }; \
	  for f in $(foreach t,$(SEEDS_TARGET),$(DRAW_INDEPENDENT_$(t))); do \
	    if [ -e $(OUT)/$$f ] && [ ! -e $(OUT)/seeds/$$k/$$f ]; then \
	      mkdir -p $$(dirname $(OUT)/seeds/$$k/$$f) && cp -p $(OUT)/$$f $(OUT)/seeds/$$k/$$f || exit 1; fi; done; \
	  $(MAKE) --no-print-directory OUT=$(OUT)/seeds/$$k DATA=$(DATA) FIGURES=$(OUT)/seeds/$$k/figures \
	    META_SEED=$$k $(SEEDS_TARGET) || exit 1; done

# After data/*.mk, which defines $(MNIST): a prerequisite is expanded where its rule is read.
# With the rows of meta-training under mpirun -np 1 and 2 (the binaries of `make mpi`).
bench: $(BUILD) $(MPI_BUILD) $(MNIST)
	@mkdir -p $(OUT)/bench
	L2L_PYTHON=$$($(PYTHON_WITH_NUMPY)) $(RELEASE)/l2l-bench --data $(MNIST) $(if $(wildcard $(NA_FEATURES)),--features $(NA_FEATURES)) \
	  --mpi-bin $(MPI_TARGET)/release --output $(OUT)/bench/results.parquet

# Every kernel path this CPU can run (docs/performance.md, "Kernel shapes per instruction
# set"): for each target, a build of its own (target/isa/TARGET), the kernels' tests, and a
# small quadratic meta-training of each architecture (the LSTM, and Appendix D's LSTM+GAC,
# NTM-BFGS and NTM-L-BFGS) and their evaluation, in $(ISA)/TARGET; then the trajectories of
# every path are compared with the portable one's to a tolerance, and the checkpoints' SHA-256
# printed (equal sums: identical results). x86-64 is the portable path (SSE2, no FMA),
# x86-64-v3 AVX2 + FMA, x86-64-v4 AVX-512 (only where the CPU has it).
ISA_TARGETS ?= x86-64 x86-64-v3 $(if $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo y),x86-64-v4)
ISA := $(OUT)/isa
ISA_ARCHITECTURES := LSTM=lstm LSTM+GAC=lstm-gac NTM-BFGS=ntm-bfgs NTM-L-BFGS=ntm-lbfgs
.PHONY: isa-check
isa-check: | deps
	@mkdir -p $(ISA)
	set -e; for t in $(ISA_TARGETS); do \
	  export RUSTFLAGS="-C target-cpu=$$t" CARGO_TARGET_DIR=target/isa/$$t; \
	  $(CARGO) test --release --locked --lib kernels::; \
	  $(CARGO) build --release --locked --bin sample-optimizee --bin meta-train --bin evaluate; \
	  b=target/isa/$$t/release; rm -rf $(ISA)/$$t; mkdir -p $(ISA)/$$t; \
	  [ -e $(ISA)/train.npz ] || $$b/sample-optimizee quadratic --count 128 --seed 1 -o $(ISA)/train.npz; \
	  [ -e $(ISA)/test.npz ] || $$b/sample-optimizee quadratic --count 32 --seed 3 -o $(ISA)/test.npz; \
	  optimizers=adam=0.1; \
	  for a in $(ISA_ARCHITECTURES); do \
	    $$b/meta-train --train $(ISA)/train.npz --epochs 20 --eval-every 20 \
	      --architecture $${a#*=} -o $(ISA)/$$t/$${a%%=*}.npz; \
	    optimizers=lstm:$(ISA)/$$t/$${a%%=*}.npz,$$optimizers; \
	  done; \
	  $$b/evaluate --spec $(ISA)/test.npz --steps 100 -O $$optimizers -o $(ISA)/$$t/curves.parquet; \
	done
	sha256sum $(foreach t,$(ISA_TARGETS),$(ISA)/$(t)/*.npz)
	L2L_ISA_TRAJECTORIES="$(foreach t,$(ISA_TARGETS),$(ISA)/$(t)/curves.parquet)" \
	  $(CARGO) test --release --locked --test harness -- isa_paths:: --nocapture

# The results page, out/report/index.html, and its Markdown twin REPORT.md (committed), from
# whatever out/ and figures/ hold now: a claim whose outputs are missing says "not run". With
# Chromium installed, also its screenshot, figures/report.png.
.PHONY: report
report: $(BUILD) | $(OUT)/report/
	$(RELEASE)/report --out $(OUT) --figures $(REPORT_FIGURES) -o $(OUT)/report/index.html --markdown REPORT.md
	@b=$$(command -v chromium || command -v chromium-browser || true); \
	if [ -n "$$b" ]; then \
	  "$$b" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2400 \
	    --screenshot=$(REPORT_FIGURES)/report.png file://$(abspath $(OUT))/report/index.html 2>/dev/null \
	  && echo "make: wrote $(REPORT_FIGURES)/report.png"; \
	else echo "make: Chromium is not installed, so no screenshot (apt-get install chromium)"; fi
