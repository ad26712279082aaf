# mtls-operator: `make run` (set up and run the operator) and `make test` (every test) are the front door.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        := .venv
PY          := $(VENV)/bin/python
CLUSTER_DIR := .cluster
NODE_DIR    := .cluster-node
# The node suite needs root on Linux (network namespaces, mounts, cgroups); elsewhere it is skipped, and says so.
NODE_OK     := $(shell [ "$$(uname -s)" = Linux ] && [ "$$(id -u)" = 0 ] && echo yes)
NODE_PACKAGES := containerd runc containernetworking-plugins iptables conntrack buildah skopeo mmdebstrap gcc libc6-dev
# The oldest Kubernetes we support (docs/getting-started/supported-versions.md), and the suites that run against it in CI:
# those whose outcome depends on the apiserver. The newest (tests/controlplane/go.mod) runs everything.
OLDEST_K8S  := 1.30.14
OLDEST_SUITE := tests/e2e/test_crd_validation.py tests/e2e/test_packaging.py tests/e2e/test_issuers.py \
	tests/e2e/test_least_privilege.py tests/e2e/test_manual_signer.py tests/e2e/test_ca_signer.py \
	tests/e2e/test_kubernetes_signer.py tests/e2e/test_hsm_issuer.py tests/e2e/test_revocation.py \
	tests/e2e/test_floors.py tests/e2e/test_secure_metrics.py tests/e2e/test_on_behalf.py
# Same place hack/tools.sh installs to: it honours XDG_CACHE_HOME, so the PATH must too.
TOOLS_BIN   := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/mtls-operator/bin
export PATH := $(CURDIR)/$(VENV)/bin:$(TOOLS_BIN):$(PATH)

.PHONY: docs docs-reference docs-serve docs-screenshots help deps venv tools controlplane node cluster-up cluster-down node-up node-down image run test unit e2e e2e-oldest node-e2e lint fmt manifests check-manifests bench bench-quick bench-hsm soak chaos chaos-quick clean

help: ## list targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

venv: $(VENV)/.installed ## create .venv with the operator and test tools

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[test,docs]'
	touch $@

deps: ## system packages the tests use: openssl, graphviz (the manual's diagrams), prometheus + promtool, a JRE and Node.js (the real clients), SoftHSM2 (the PKCS#11 token the HSM tests sign with), nginx (a real server enforcing our CRLs), and for the node suite containerd, runc, CNI plugins, buildah, skopeo, mmdebstrap; installed when missing
	@missing=""; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v java >/dev/null || missing="$$missing default-jre-headless"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v softhsm2-util >/dev/null || missing="$$missing softhsm2"; \
	command -v nginx >/dev/null || test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	if [ "$(NODE_OK)" = yes ]; then \
	  for pkg in $(NODE_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "please install:$$missing (Debian/Ubuntu: sudo apt-get install$$missing)"; exit 1; fi; \
	fi

tools: venv ## kubectl and helm into ~/.cache/mtls-operator/bin
	@PYTHON=$(PY) hack/tools.sh >/dev/null

controlplane: ## build kube-apiserver + etcd once (cached in ~/.cache/mtls-operator/controlplane)
	tests/controlplane/build.sh

node: controlplane ## build kubelet, kube-scheduler, kube-proxy and pause once (cached next to the control plane)
	@if [ "$(NODE_OK)" = yes ]; then tests/controlplane/build-node.sh; \
	else echo "node: not built: the node suite needs root on Linux; tests/node will be skipped"; fi

cluster-up: venv tools controlplane ## start the local control plane; kubeconfig in .cluster/kubeconfig
	$(PY) tests/controlplane/controlplane.py up --dir $(CLUSTER_DIR)

cluster-down: ## stop the local control plane
	@if [ -x $(PY) ]; then $(PY) tests/controlplane/controlplane.py down --dir $(CLUSTER_DIR); fi

node-up: deps venv tools node ## start a control plane with one real node (root); kubeconfig in .cluster-node/control/kubeconfig
	$(PY) tests/controlplane/nodeplane.py up --dir $(NODE_DIR)

node-down: ## stop it: every process, mount, cgroup and the network namespace
	@if [ -x $(PY) ]; then $(PY) tests/controlplane/nodeplane.py down --dir $(NODE_DIR); fi

image: ## build the operator image from the Dockerfile with buildah (IMAGE=, PYTHON_IMAGE=, IMAGE_ARCHIVE=)
	hack/image.sh

run: venv tools ## run the operator against KUBECONFIG's cluster, or the local control plane when there is none
	hack/run.sh

test: deps venv tools controlplane node lint ## lint, unit tests, e2e tests against a real kube-apiserver, the node suite (root on Linux)
	@[ "$(NODE_OK)" = yes ] || echo "make test: the node suite (tests/node) needs root on Linux and is skipped here"
	$(PY) -m pytest -ra

unit: deps venv ## unit tests only (no cluster)
	$(PY) -m pytest -ra tests/unit

e2e: deps venv tools controlplane ## e2e tests only (K8S_VERSION=1.30.14 make e2e: against another built Kubernetes)
	$(PY) -m pytest -ra tests/e2e

e2e-oldest: deps venv tools ## the oldest supported Kubernetes (1.30): CRD validation, the chart, issuers and the admission policy, each signer's lifecycle
	K8S_VERSION=$(OLDEST_K8S) tests/controlplane/build.sh >/dev/null
	K8S_VERSION=$(OLDEST_K8S) $(PY) -m pytest -ra $(OLDEST_SUITE)

node-e2e: deps venv tools node ## the node suite only: the image, the chart on a kubelet, clients through rotations
	$(PY) -m pytest -ra tests/node

lint: venv ## ruff, mypy, the import layers (import-linter) and hadolint
	$(VENV)/bin/ruff check operator tests hack bench docs/hooks
	$(VENV)/bin/ruff format --check operator tests hack bench docs/hooks
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache  # the layer rule: ARCHITECTURE.md
	$(VENV)/bin/hadolint Dockerfile

fmt: venv
	$(VENV)/bin/ruff check --fix operator tests hack bench docs/hooks
	$(VENV)/bin/ruff format operator tests hack bench docs/hooks

manifests: tools ## regenerate manifests/ from the Helm chart (and the issuer CRDs from hack/gen_issuer_crds.py)
	$(PY) hack/gen_issuer_crds.py
	$(PY) hack/gen_manifests.py $(TOOLS_BIN)/helm

check-manifests: manifests ## fail when manifests/ and the chart drift apart
	@git diff --exit-code -- manifests charts || { echo "manifests/ drifted from the chart: run make manifests"; exit 1; }

bench: venv tools controlplane ## benchmarks (about 15 min): bench/results/latest.{json,md}
	PYTHONPATH=tests:tests/controlplane $(PY) bench/run.py

bench-quick: deps venv tools controlplane ## every benchmark scenario with small counts (CI smoke test)
	PYTHONPATH=tests:tests/controlplane $(PY) bench/run.py --quick
	PYTHONPATH=tests:tests/controlplane $(PY) bench/hsm.py --quick

bench-hsm: deps venv tools controlplane ## certificates/s with the CA key in SoftHSM2 next to in memory, alone and through the operator (about 5 min): bench/results/hsm.{json,md}
	PYTHONPATH=tests:tests/controlplane $(PY) bench/hsm.py

soak: deps venv tools controlplane ## memory under continuous renewals (300 certificates, 30 min): bench/results/soak.{json,md}
	PYTHONPATH=tests:tests/controlplane $(PY) bench/soak.py

chaos: deps venv tools controlplane ## faults under load (kill -9 x50, apiserver/etcd restarts, 60 s outage), then invariants
	PYTHONPATH=tests:tests/controlplane $(PY) bench/chaos.py

chaos-quick: deps venv tools controlplane ## the same with fewer certificates and kills (CI)
	PYTHONPATH=tests:tests/controlplane $(PY) bench/chaos.py --quick

# The manual (docs/, mkdocs.yml). Material for MkDocs prints a banner about its successor on every build: silenced.
docs: deps venv ## the manual: check the generated reference pages are current, then build site/ in strict mode
	$(PY) hack/gen_docs.py --check
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs-reference: venv ## rewrite the generated pages (docs/reference/, the runbooks' index) from their sources
	$(PY) hack/gen_docs.py

docs-serve: venv ## a live preview of the manual on http://127.0.0.1:8000
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve -a 127.0.0.1:8000

docs-screenshots: docs ## headless Chromium pictures of the built manual into site-screenshots/ (installs chromium)
	hack/docs_screenshots.sh

clean: cluster-down node-down
	rm -rf $(VENV) $(CLUSTER_DIR) $(NODE_DIR) site site-screenshots
