# meterlake: `make demo` and `make test` are the two commands a newcomer needs.
# Both install what is missing first (idempotent: a second run downloads nothing).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
MVN    := mvn -q -B
# SeaweedFS, the local S3 store (see its recipe below); defined before `setup` names
# the stamp as a prerequisite (make expands prerequisites as it reads them).
WEED_MODULE  := github.com/seaweedfs/seaweedfs
WEED_VERSION := v0.0.0-20261109003541-7506e5f91cd6
WEED_STAMP   := .tools/weed-$(WEED_VERSION).installed
CLASS_ARCHIVE := .jars/spark-driver.jsa
LOCAL_FS_JAR  := .jars/meterlake/meterlake-localfs.jar

.DEFAULT_GOAL := help
.PHONY: help setup browser demo test test-fast test-unit lint report bench kafka-start kafka-stop s3-start s3-stop clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed .jars/spark/.installed .jars/kafka/.installed .jars/s3/.installed $(LOCAL_FS_JAR) $(CLASS_ARCHIVE) $(WEED_STAMP) browser  ## venv + pinned Python packages + JVM jars (+ the driver's class archive) + the local S3 store + headless Chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.jars/spark/.installed: conf/maven/spark-jars.xml
	rm -rf .jars/spark
	$(MVN) -f $< dependency:copy-dependencies
	touch $@

.jars/kafka/.installed: conf/maven/kafka-broker.xml
	rm -rf .jars/kafka
	$(MVN) -f $< dependency:copy-dependencies
	touch $@

# Hadoop's s3a for a lake on an object store (hadoop-aws + the AWS SDK bundle, 690 MB).
.jars/s3/.installed: conf/maven/s3-jars.xml
	rm -rf .jars/s3
	$(MVN) -f $< dependency:copy-dependencies
	touch $@

# Hadoop's local file system without a process per call (meterlake/jvm): compiled
# against the Hadoop API jar pyspark ships.
$(LOCAL_FS_JAR): $(wildcard meterlake/jvm/*.java) $(VENV)/.installed
	rm -rf .jars/meterlake && mkdir -p .jars/meterlake/classes
	javac --release 17 -d .jars/meterlake/classes \
	  -cp "$$($(BIN)/python -c 'import pathlib, pyspark; print(*(pathlib.Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))')" \
	  $(wildcard meterlake/jvm/*.java)
	jar cf $@ -C .jars/meterlake/classes . && rm -rf .jars/meterlake/classes

# The Spark driver's class archive (meterlake.app.classarchive.py): a driver then
# starts in about half the CPU. Made from the jars above; without it (an error here
# is only reported) Spark starts as before.
$(CLASS_ARCHIVE): $(VENV)/.installed .jars/spark/.installed .jars/s3/.installed $(LOCAL_FS_JAR)
	$(BIN)/python -m meterlake.app.classarchive || echo "no class archive: Spark's driver starts without it"

# The local S3-compatible store (`meterlake s3 start`): SeaweedFS's `weed`, built from
# the Go module proxy. Not `go install module/weed@version`: SeaweedFS's go.mod has a
# replace directive, which go install refuses; the module is downloaded, then built
# as the main module. About 12 minutes on 2 busy cores the first time.
$(WEED_STAMP):
	@command -v go >/dev/null || { echo "the local S3 store needs Go (1.26.6 or newer) to build SeaweedFS"; exit 1; }
	mkdir -p .tools/bin
	dir=$$(go mod download -json $(WEED_MODULE)@$(WEED_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	  test -n "$$dir" && cd "$$dir" && go build -trimpath -ldflags "-s -w" -o $(CURDIR)/.tools/bin/weed ./weed
	rm -f .tools/weed-*.installed
	touch $@

# The browser tests (tests/read/test_serve_page.py) drive Debian's chromium through its
# chromedriver: installed here when root, else the command to run is printed.
BROWSER_PACKAGES := chromium chromium-driver
browser:  ## headless Chromium and chromedriver (Debian packages) for the browser tests
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(BROWSER_PACKAGES) (apt-get)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	else \
		echo "the browser tests need Chromium; run: sudo apt-get install -y $(BROWSER_PACKAGES)"; \
	fi

demo: setup  ## a month of 11 meters through bronze, silver and gold; the four answers
	$(BIN)/meterlake demo

# The suite runs in JOBS processes (pytest-xdist), each with its own broker and Spark;
# the longest cases are handed out first (tests/conftest.py). JOBS=1: one process.
JOBS ?= 2
XDIST := $(if $(filter 1,$(JOBS)),,-n $(JOBS) --dist worksteal)
test: setup  ## the whole test suite (what CI runs), slow cases included
	$(BIN)/pytest $(XDIST) --durations=30

test-unit: setup  ## the tests that need no Spark, broker or S3 store, nor the long property runs (under a minute)
	$(BIN)/pytest $(XDIST) -m "not spark and not kafka and not store and not slow"

test-fast: setup  ## the suite without the slow cases
	$(BIN)/pytest -m "not slow"

# mypy checks the files [tool.mypy] in pyproject.toml lists: the runtime core.
lint: setup  ## ruff over everything, mypy on the core
	$(BIN)/ruff check meterlake bronze silver gold oracle tests bench
	$(BIN)/mypy

# The lake to report on: `make report LAKE=/path/to/lake` (relative: from here).
report: setup  ## run the report notebook and export HTML into build/
	$(BIN)/python -m meterlake.read.report --lake $(or $(LAKE),lake) --out build/energy_report.html

# `make bench QUICK=1`: a few minutes with small sizes (for development).
bench: setup  ## benchmarks: JSON + PNG into results/, a table on screen
	-$(BIN)/pip install -q -r bench/requirements.txt || echo "bench: confluent-kafka not installed; its figure is skipped"
	$(BIN)/python -m bench.run $(if $(QUICK),--quick)

kafka-start: setup  ## the local broker on 127.0.0.1:9092
	$(BIN)/meterlake kafka start

kafka-stop: setup  ## stop it
	$(BIN)/meterlake kafka stop

s3-start: setup  ## the local S3 store on 127.0.0.1:8333, bucket meterlake
	$(BIN)/meterlake s3 start

s3-stop: setup  ## stop it
	$(BIN)/meterlake s3 stop

clean:  ## remove the lake, broker data and build outputs (not the venv or jars)
	-$(BIN)/meterlake kafka stop
	-$(BIN)/meterlake s3 stop
	rm -rf lake .kafka .s3 build
