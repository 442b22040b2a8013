#!/usr/bin/env bash
# Helm v4 for the chart's tests (`helm lint --strict`, `helm template`), built from the Go
# module proxy (checked against Go's checksum database) into .hub/bin/helm, once.
# Needs Go 1.24+. tests/unit/test_deploy_helm.py skips, saying so, without it.
set -euo pipefail
version=v4.3.2
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/.hub/bin"
stamp="$bin/.helm-$version"
if [ -x "$bin/helm" ] && [ -e "$stamp" ]; then
    exit 0
fi
mkdir -p "$bin"
GOBIN="$bin" GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$version"
touch "$stamp"
"$bin/helm" version --short
