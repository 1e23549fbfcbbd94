#!/usr/bin/env bash
# Fails when generated code (deepcopy, CRDs, RBAC, the chart's copies of them under charts/herald/files) or
# go.mod/go.sum differ from what the sources produce, or the kustomize trees (config/default, config/prometheus,
# config/grafana) do not render. It regenerates in place and compares with what was there before, so it works on a
# tree with uncommitted changes too.
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot() { find api config charts/herald/files go.mod go.sum -type f -print0 | sort -z | xargs -0 sha256sum; }
before=$(snapshot)
make --no-print-directory generate manifests >/dev/null
GOFLAGS=-mod=mod go mod tidy
after=$(snapshot)
if [[ $before != "$after" ]]; then
	echo "verify: generated files or go.mod were out of date; they have now been regenerated:" >&2
	diff <(echo "$before") <(echo "$after") | grep '^[<>]' | awk '{print "  " $3}' | sort -u >&2
	echo "verify: review and commit them ('git diff')." >&2
	exit 1
fi
bin/kubectl kustomize config/default >/dev/null
bin/kubectl kustomize config/prometheus >/dev/null # opt-in: needs the Prometheus Operator's CRDs
bin/kubectl kustomize config/grafana >/dev/null    # opt-in: the dashboard's ConfigMap
echo "verify: generated code, CRDs, RBAC and go.mod are up to date"
