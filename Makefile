# Two environments, on purpose: .venv-runtime is what a device gets (no TensorFlow), and the
# tests that run there prove it; .venv adds the TensorFlow side for training and export.
PYTHON ?= python3
VENV ?= .venv
LEAN ?= .venv-runtime
DATA ?= ../shared/data/train
KODAK ?= ../shared/data/kodak
RUNS ?= runs
LEVELS ?= 1 2 3 4 5
DEMO ?= demo-output

.PHONY: demo setup setup-runtime test train quantize bench bench-variants cards clean

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

train: setup  ## four base models, then one fine-tuned model per level, under $(RUNS)/
	$(VENV)/bin/python -m aedge.train.levels --data $(DATA) --runs $(RUNS)

quantize: setup  ## export each level to models/qN.aem (three TFLite variants, entropy tables)
	for q in $(LEVELS); do \
	  $(VENV)/bin/python -m aedge.optimize.export $(RUNS)/q$$q --data $(DATA) \
	    -o models/q$$q.aem --level $$q || exit 1; \
	done

bench: setup-runtime  ## aedge (default networks: int8-dynamic) against JPEG, WebP and AVIF on Kodak
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results

bench-variants: setup-runtime  ## the same with the full-integer int8 and the float32 networks
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results/int8 --variant int8 --codec jpeg
	$(LEAN)/bin/aedge bench $(KODAK) -o bench-results/float --variant float32 --codec jpeg

cards: setup  ## model cards and the README's results, from bench-results/
	$(VENV)/bin/python -m aedge.optimize.cards bench-results/bench.json \
	  --also bench-results/int8/bench.json --also bench-results/float/bench.json --readme README.md

clean:
	rm -rf $(VENV) $(LEAN) $(DEMO) bench-results
