# ksynth-spark build targets.
#   make dist   wheel (dist/ksynth_spark-*.whl) and --py-files zip (dist/ksynth_spark.zip)
#   make zip    only the zip
#   make test   the README's test command
#   make clean  remove build outputs
# The zip holds only the ksynth_spark package (its .py files and report/showcase_assets/), stored under
# ksynth_spark/ so that zipimport finds it; __pycache__ folders are left out.

PYTHON ?= .venv/bin/python
DIST ?= dist
BUILD ?= build

.PHONY: dist zip wheel test clean

dist: wheel zip

wheel:
	$(PYTHON) -m pip wheel . --no-deps -w $(DIST)

zip:
	rm -rf $(BUILD)/pyfiles $(DIST)/ksynth_spark.zip
	mkdir -p $(BUILD)/pyfiles $(DIST)
	cp -R ksynth_spark $(BUILD)/pyfiles/
	find $(BUILD)/pyfiles -name __pycache__ -prune -exec rm -rf {} +
	cd $(BUILD)/pyfiles && $(abspath $(PYTHON)) -m zipfile -c $(abspath $(DIST))/ksynth_spark.zip ksynth_spark
	$(PYTHON) -m zipfile -l $(DIST)/ksynth_spark.zip | grep -q report/showcase_assets/showcase.js

test:
	$(PYTHON) -m pytest -q

clean:
	rm -rf $(BUILD) $(DIST)
