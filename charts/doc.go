// Package charts holds no code: its tests check the Helm chart of charts/herald with the pinned helm (bin/helm,
// hack/tools.sh helm): lint, the schema refusing misspelled keys, every value documented, the default rendering
// against config/default, and each rendering of testdata/values-*.yaml dry-run-applied on a real API server.
package charts
