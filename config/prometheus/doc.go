// Package prometheus holds no code: its tests check the manifests of this directory (Services, ServiceMonitors
// and the herald-alerts PrometheusRule) against the workloads of config/speaker and config/manager and against
// docs/runbooks.md, and run the pinned promtool (`make prometheus-rules`) over the rules and tests/.
package prometheus
