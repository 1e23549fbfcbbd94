// Package grafana holds no code: its test checks that every query of Herald's Grafana dashboard (herald.json, also
// shipped by the chart) names metrics, and labels of them, that Herald's components register.
package grafana
