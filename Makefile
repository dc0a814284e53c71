# Two environments, on purpose: .venv-runtime is what a device gets (no TensorFlow), and the
# tests that run there prove it; .venv adds the TensorFlow side for training and export.
PYTHON ?= python3
VENV ?= .venv
LEAN ?= .venv-runtime
TFLITE ?= .venv-tflite
DATA ?= ../shared/data/train
KODAK ?= ../shared/data/kodak
RUNS ?= runs
MINUTES ?= 60
WEIGHTS ?= $(RUNS)/hyper/weights.npz
ARCH ?= hyper
PAPER_MINUTES ?=
DEMO ?= demo-output
BUILD ?= build/quantize
QUANTIZE_WEIGHTS ?= models/hyper/weights.npz
NARROW ?= 32,96,128

.PHONY: demo setup setup-runtime test train paper gpu-pack train-keras narrow splice quantize variants export bench report bench-memory bench-steps bench-variants cards check-arm64 golden clean

demo: setup-runtime  ## set up, then compress and decompress the sample image
	mkdir -p $(DEMO)
	$(LEAN)/bin/aedge compress tests/data/robin.png -o $(DEMO)/robin.aei --force
	$(LEAN)/bin/aedge info $(DEMO)/robin.aei
	$(LEAN)/bin/aedge decompress $(DEMO)/robin.aei -o $(DEMO)/robin.png --force
	@echo "original: tests/data/robin.png; compressed: $(DEMO)/robin.aei; decoded: $(DEMO)/robin.png"

setup: $(VENV)/.installed
setup-runtime: $(LEAN)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[train,jax,bench,test]'
	touch $@

$(LEAN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LEAN)
	$(LEAN)/bin/pip install -q --upgrade pip
	$(LEAN)/bin/pip install -q -e '.[bench,test]'
	touch $@

test: setup-runtime setup  ## runtime tests without TensorFlow, then the training-side tests
	AEDGE_LEAN_ENV=1 $(LEAN)/bin/python -m pytest -m "not train"
	$(VENV)/bin/python -m pytest -m train

# The shipped model's recipe: JAX, warm-started from models/hyper (the shipped weights).
# Run it again to go on training:
# it resumes where it stopped, for another $(MINUTES) minutes.
train: setup $(if $(filter paper-%,$(ARCH)),,$(RUNS)/pack/pack.json)  ## train (or go on training) the model under $(RUNS)/hyper; ARCH=paper-3/5/7/10: the seed paper's autoencoders
ifneq ($(filter paper-%,$(ARCH)),)
	$(VENV)/bin/python -m aedge.train.paper --arch $(ARCH) --data $(DATA) -o $(RUNS)/$(ARCH) \
	  $(if $(PAPER_MINUTES),--minutes $(PAPER_MINUTES))
else
	$(VENV)/bin/python -m aedge.train.jax_train $(RUNS)/pack -o $(RUNS)/hyper --val $(DATA) \
	  --init-from models/hyper/weights.npz --minutes $(MINUTES)
endif

# The seed paper's Table 1 and Figure 14: train the four first (make train ARCH=paper-3 ...).
paper: setup  ## the paper's table and figure: paper-3/5/7/10 against JPEG and aedge on 128x128 Kodak crops
	$(VENV)/bin/python -m aedge.train.paper_eval $(KODAK) --runs $(RUNS) --train-data $(DATA) \
	  -o bench-results/paper --readme README.md

# The hyperprior alone (h_a, h_s, z's density) fitted to the shipped g_a, on cached latents:
# the phase that taught h_s to read z on a CPU. Its weights.npz exports (make quantize
# WEIGHTS=...) or starts a jax_train run (--init-from).
fit-hyper: setup $(RUNS)/pack/pack.json  ## fit the hyperprior to the shipped transforms, under $(RUNS)/hyper-fit
	$(VENV)/bin/python -m aedge.train.jax_hyper $(RUNS)/pack -o $(RUNS)/hyper-fit --val $(DATA) \
	  --init-from models/hyper/weights.npz --minutes $(MINUTES)

# JPEG sources downscaled (their block artefacts are not worth learning), validation files left out.
$(RUNS)/pack/pack.json:
	$(VENV)/bin/python -m aedge.train.pack $(DATA) -o $(RUNS)/pack --quality 92

# What travels to a lent accelerator, whose working tree is limited to 64 MiB with the
# repository: a pack at JPEG quality 90 cut to 38.5 MiB (a uniform sample, 1,169 of 1,681
# photos here), and the held-out photos unchanged, for the trainer's --val there.
gpu-pack: setup  ## the pack and held-out photos that travel to an accelerator, under $(RUNS)/gpu
	$(VENV)/bin/python -m aedge.train.pack $(DATA) -o $(RUNS)/gpu/pack --quality 90 \
	  --max-mib 38.5 --held-out $(RUNS)/gpu/val

train-keras: setup  ## the same model with the Keras trainer (GPUs through MirroredStrategy)
	$(VENV)/bin/python -m aedge.train.train --data $(DATA) --out $(RUNS)/hyper-keras \
	  --init-from models/hyper/weights.npz

# The optimization stage on the shipped weights: quantization-aware int8 networks and their
# g_s tuned for PSNR, the default networks' g_s tuned for PSNR and MS-SSIM, then all three
# of them on the rate and both measures, 50%- and 75%-sparse models, the distilled fast
# model, each a model file under $(BUILD); models/ is left alone (QUANTIZE_FLAGS=--ship, or
# cp $(BUILD)/aedge.aem models/, ships the chosen one). Fine-tunes already done are reused
# where made from the same weights on the same photos with the same steps, crops, learning
# rate and settings (stage.json).
# About four hours on two cores (the int8 quantization stage 33 minutes, the int8-dynamic one
# 14, the int8 g_s's 45, the int8-dynamic g_s's about 30, all three's about 20, each pruning
# 13 to 17, the student 46, and the exports). For a quick look: QUANTIZE_FLAGS="--steps 300
# --int8-qat-steps 300 --distill-steps 2000 --decoder-steps 300 --joint-steps 200
# --int8-decoder-steps 300"
quantize: setup  ## build the device model variants (QAT int8, pruned, distilled) under $(BUILD)
	$(VENV)/bin/python -m aedge.optimize $(QUANTIZE_WEIGHTS) --base models/aedge.aem \
	  --data $(DATA) -o $(BUILD) $(QUANTIZE_FLAGS)

# A narrower g_a and g_s in the shipped model's latent space, for speed (optimize/narrow.py):
# its three phases took 30 to 42 minutes here at 32, 96, 128 channels; a stopped run resumes.
# Then make quantize QUANTIZE_WEIGHTS=build/narrow/weights.npz builds its model files, and
# make splice puts their int8-dynamic networks into the shipped one (README: the
# optimization stage gives the three commands that made the shipped default networks).
narrow: setup  ## train g_a and g_s narrowed to $(NARROW) channels from the shipped weights, into build/narrow
	$(VENV)/bin/python -m aedge.optimize.narrow models/hyper/weights.npz --filters $(NARROW) \
	  --data $(DATA) -o build/narrow

splice: setup  ## put $(BUILD)/aedge.aem's int8-dynamic networks into models/aedge.aem (after make narrow, then make quantize from its weights)
	$(VENV)/bin/python -m aedge.optimize.splice $(BUILD)/aedge.aem --into models/aedge.aem

# Every variant through the CLI on Kodak: size, sparsity, MACs, rate-distortion, speed, and
# whether tflite-runtime decodes the same pixels as ai-edge-litert.
variants: setup-runtime $(TFLITE)/.installed  ## the variants table of the README, from $(BUILD)
	$(LEAN)/bin/python -m aedge.optimize.report $(BUILD) --kodak $(KODAK) \
	  --tflite-runtime $(TFLITE)/bin/python -o bench-results/variants --readme README.md

# tflite-runtime, the interpreter older devices have: 2.14 is its last release, built against
# numpy 1.
$(TFLITE)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TFLITE)
	$(TFLITE)/bin/pip install -q tflite-runtime==2.14.0 'numpy<2' pillow click threadpoolctl
	$(TFLITE)/bin/pip install -q --no-deps -e .
	touch $@

# Export weights to the model file (what models/aedge.aem was made with) and its float32 file.
export: setup  ## export $(WEIGHTS) to build/aedge.aem (three TFLite variants, integer h_s, tables) and build/aedge-float32.aem
	mkdir -p build
	$(VENV)/bin/python -m aedge.optimize.export $(WEIGHTS) --data $(DATA) \
	  -o build/aedge.aem
	@echo "to ship it: cp build/aedge.aem models/aedge.aem (build/aedge-float32.aem: its float32 networks)"

bench: setup-runtime  ## aedge (default networks: int8-dynamic) against JPEG, WebP, AVIF and CompressAI on Kodak
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results

report: setup-runtime  ## bench-results/report.html on three Kodak images, and its screenshot (needs chromium)
	$(LEAN)/bin/aedge report $(KODAK) --limit 3 --published -o bench-results/report.html --force
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2200 \
	  --screenshot=bench-results/report.png file://$(abspath bench-results/report.html)

bench-memory: setup-runtime  ## tiles against whole images on Kodak; memory and time of 12 MP, 24 MP and a 1x4,000,000 strip
	$(LEAN)/bin/python tests/bench/memory.py $(KODAK) -o bench-results/memory --readme README.md

bench-steps: setup-runtime  ## every Kodak image at every quality: does each step up give more bytes and more PSNR?
	$(LEAN)/bin/python tests/bench/quality_steps.py $(KODAK) -o bench-results/steps

bench-variants: setup-runtime  ## the same with the full-integer int8 and (from make quantize) the float32 networks
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results/int8 --variant int8 --codec jpeg
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results/float --model $(BUILD)/aedge-float32.aem \
	  --codec jpeg

cards: setup  ## the model card and the README's results, from bench-results/ and the training log
	$(VENV)/bin/python -m aedge.optimize.cards bench-results/bench.json \
	  --also bench-results/int8/bench.json --also bench-results/float/bench.json \
	  --history models/hyper/history.jsonl --readme README.md

check-arm64: setup-runtime  ## encode and decode on an emulated aarch64 (qemu-user, Debian arm64): same latents?
	bash tests/arm64/setup.sh build/arm64
	$(LEAN)/bin/python tests/arm64/check.py --arm64-dir build/arm64

golden: setup-runtime  ## remake tests/data/robin.aei and its latents after the shipped model changed
	$(LEAN)/bin/aedge compress tests/data/robin.png -o tests/data/robin.aei --force
	$(LEAN)/bin/python -c "import numpy as np, aedge; z, i, q = aedge.load().latents(\
	open('tests/data/robin.aei', 'rb').read()); \
	np.savez_compressed('tests/data/robin.latents.npz', z_q=z.astype('i4'), index=i.astype('u1'), q=q.astype('i4'))"

clean:
	rm -rf $(VENV) $(LEAN) $(DEMO) bench-results
