# Puppetry: `make run` starts the app, `make test` runs the suite. Both set everything up.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
APT_TEST := libegl1 libgl1 libxkbcommon0 libfontconfig1 libglib2.0-0 libdbus-1-3 fonts-dejavu-core
APT_RUN := $(APT_TEST) xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 \
	libxcb-render-util0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 libxkbcommon-x11-0

.PHONY: run test bench build clean apt-test apt-run

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

apt-test:
	@missing=$$(for p in $(APT_TEST); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

apt-run:
	@missing=$$(for p in $(APT_RUN); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

test: apt-test $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

run: apt-run $(STAMP)
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(VENV)/bin/puppetry; \
	else echo "no display found: starting under Xvfb"; xvfb-run -a $(VENV)/bin/puppetry; fi

bench: $(STAMP)
	$(PY) benchmarks/imageio.py
	$(PY) benchmarks/engine.py

build: $(STAMP)
	$(PY) -m pip install --quiet -e '.[build]'
	$(VENV)/bin/pyinstaller --noconfirm build.spec

clean:
	rm -rf build dist .pytest_cache
