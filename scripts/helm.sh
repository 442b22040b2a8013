#!/usr/bin/env bash
# Helm v4 for the chart's tests (`helm lint --strict`, `helm template`), built from the Go
# module proxy (checked against Go's checksum database) once per machine into the
# provisioning cache (`HUB_CACHE_DIR`, ~/.cache/hub: a clean clone finds it there), then
# copied to .hub/bin/helm. Needs Go 1.24+. tests/unit/test_deploy_helm.py skips, saying so,
# without it.
set -euo pipefail
version=v4.3.2
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.hub/bin"
stamp="$bin/.helm-$version"
if [ -x "$bin/helm" ] && [ -e "$stamp" ]; then
    exit 0
fi
cache="${HUB_CACHE_DIR:-$HOME/.cache/hub}/helm-$version"
if [ ! -x "$cache/helm" ]; then
    mkdir -p "$cache"
    GOBIN="$cache" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$version"
fi
mkdir -p "$bin"
cp "$cache/helm" "$bin/helm"
touch "$stamp"
"$bin/helm" version --short
