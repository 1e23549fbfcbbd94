package grafana_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldlb/herald/controllers"
	"github.com/heraldlb/herald/internal/announce"
	"github.com/heraldlb/herald/internal/guard"
	"github.com/heraldlb/herald/internal/iface"
	"github.com/heraldlb/herald/internal/stall"
	"github.com/heraldlb/herald/speaker"
)

// describer is a prometheus.Registerer that keeps the descriptions of what is registered: every metric a
// component defines, with its labels, whether or not it has a series yet (a Gatherer would miss vectors with
// no children).
type describer struct{ metrics map[string][]string } // name → variable labels

var descRE = regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		m := descRE.FindStringSubmatch(desc.String())
		if m == nil {
			panic("unparsed " + desc.String())
		}
		var labels []string
		if m[2] != "" {
			labels = strings.Split(m[2], ",")
		}
		d.metrics[m[1]] = labels
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// heraldMetrics registers the metrics of every Herald component, the way the controller and the speaker do.
func heraldMetrics(t *testing.T) *describer {
	d := &describer{metrics: map[string][]string{}}
	controllers.NewMetrics(d)
	speaker.NewMetrics(d)
	announce.NewMetrics(d)
	guard.NewMetrics(d)
	iface.NewMetrics(d)
	stall.NewMetrics(d)
	if len(d.metrics) < 30 {
		t.Fatalf("only %d metrics registered: %v", len(d.metrics), d.metrics)
	}
	return d
}

type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func panels(t *testing.T, path string) []panel {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d.Panels
}

var (
	metricRE = regexp.MustCompile(`\bherald_[a-z0-9_]+`)
	// selectorRE finds herald_name{matchers}; matcherRE the label names in the matchers.
	selectorRE = regexp.MustCompile(`\b(herald_[a-z0-9_]+)\{([^}]*)\}`)
	matcherRE  = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)`)
	// byRE finds the labels an aggregation keeps: by (a, b) after the metric it aggregates.
	byRE = regexp.MustCompile(`by \(([^)]*)\) \(([^()]*\()?\s*(herald_[a-z0-9_]+)`)
)

// targetLabels are added by the scrape, not by Herald.
var targetLabels = []string{"job", "instance", "pod", "namespace", "service_name", "le"}

// name returns the metric a series name belongs to: histograms' _bucket, _sum and _count series are the histogram's.
func (d *describer) name(series string) (string, bool) {
	if _, ok := d.metrics[series]; ok {
		return series, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(series, suffix); ok {
			if _, ok := d.metrics[base]; ok {
				return base, true
			}
		}
	}
	return "", false
}

func (d *describer) hasLabel(metric, label string) bool {
	return slices.Contains(d.metrics[metric], label) || slices.Contains(targetLabels, label)
}

// TestDashboardQueriesNameHeraldMetrics checks that every panel has a query, that every metric a query names is
// one Herald registers, and that the labels it matches on or aggregates by are that metric's (or the scrape's).
func TestDashboardQueriesNameHeraldMetrics(t *testing.T) {
	d := heraldMetrics(t)
	ps := panels(t, "herald.json")
	used := map[string]bool{}
	for _, p := range ps {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			names := metricRE.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no herald_ metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				m, ok := d.name(n)
				if !ok {
					t.Errorf("panel %q: %s is not a metric Herald exports (query %q)", p.Title, n, tg.Expr)
					continue
				}
				used[m] = true
			}
			for _, s := range selectorRE.FindAllStringSubmatch(tg.Expr, -1) {
				m, ok := d.name(s[1])
				if !ok {
					continue
				}
				for _, l := range matcherRE.FindAllStringSubmatch(s[2], -1) {
					if !d.hasLabel(m, l[1]) {
						t.Errorf("panel %q: %s has no label %s (labels %v)", p.Title, m, l[1], d.metrics[m])
					}
				}
			}
			for _, b := range byRE.FindAllStringSubmatch(tg.Expr, -1) {
				m, ok := d.name(b[3])
				if !ok {
					continue
				}
				for l := range strings.SplitSeq(b[1], ",") {
					if l = strings.TrimSpace(l); !d.hasLabel(m, l) {
						t.Errorf("panel %q: aggregates %s by %s, which it does not have (labels %v)", p.Title, m, l, d.metrics[m])
					}
				}
			}
		}
	}
	// The picture an operator needs: these must be on it.
	for _, m := range []string{
		"herald_speaker_announced_addresses", "herald_health_address_verdict", "herald_speaker_election_changes_total",
		"herald_speaker_announce_latency_seconds", "herald_speaker_conflicting_addresses", "herald_health_responders",
		"herald_health_addresses", "herald_announce_requests_total", "herald_speaker_members",
		"herald_allocator_addresses_in_use", "herald_allocator_addresses_capacity",
	} {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestChartCopy checks that the chart ships this dashboard (make manifests copies it).
func TestChartCopy(t *testing.T) {
	a, err := os.ReadFile("herald.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../charts/herald/files/grafana/herald.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Error("charts/herald/files/grafana/herald.json differs from config/grafana/herald.json: run make manifests")
	}
}
