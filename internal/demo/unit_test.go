package demo

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		name       string
		announcer  string
		responders []string
		want       string
	}{
		{name: "the announcer alone", announcer: "node2", responders: []string{"node2"}, want: "ok"},
		{name: "nobody answers", announcer: "node2", want: "WRONG:no-answer"},
		{name: "two nodes answer", announcer: "node2", responders: []string{"node2", "node1"}, want: "WRONG:2-responders"},
		{name: "another node answers", announcer: "node2", responders: []string{"node3"}, want: "WRONG:not-the-announcer"},
		{name: "an unknown MAC answers", announcer: "node2", responders: []string{"02:00:00:00:00:01"}, want: "WRONG:not-the-announcer"},
		{name: "no announcer", responders: []string{"node1"}, want: "WRONG:no-announcer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, verdict(tc.announcer, tc.responders)); diff != "" {
				t.Errorf("verdict(%q, %v) (-want +got):\n%s", tc.announcer, tc.responders, diff)
			}
		})
	}
}

func TestLineLogger(t *testing.T) {
	var b bytes.Buffer
	log := newLineLogger(&b, "lab").WithValues("prefix", "hl1")
	log.Info("lab network ready", "nodes", 3)
	log.V(1).Info("started process", "pid", 7) // not printed
	log.WithName("proc").Error(errors.New("boom"), "closing failed")
	want := "    lab: lab network ready prefix=hl1 nodes=3\n" +
		"    lab/proc: closing failed prefix=hl1 error=boom\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("log output (-want +got):\n%s", diff)
	}
}

func TestSameSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		a, b []string
		want bool
	}{
		{name: "same order", a: []string{"x", "y"}, b: []string{"x", "y"}, want: true},
		{name: "other order", a: []string{"y", "x"}, b: []string{"x", "y"}, want: true},
		{name: "missing", a: []string{"x"}, b: []string{"x", "y"}, want: false},
		{name: "both empty", want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameSet(tc.a, tc.b); got != tc.want {
				t.Errorf("sameSet(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}
