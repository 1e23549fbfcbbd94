package ipam

import (
	"slices"
	"testing"
	"time"
)

func TestOwnerFirst(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	type pool struct {
		name    string
		created time.Time
	}
	pools := []pool{{"b", t0}, {"late", t0.Add(time.Second)}, {"a", t0}, {"early", t0.Add(-time.Hour)}}
	slices.SortStableFunc(pools, func(x, y pool) int { return OwnerFirst(x.created, x.name, y.created, y.name) })
	var got []string
	for _, p := range pools {
		got = append(got, p.name)
	}
	if want := []string{"early", "a", "b", "late"}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v (creation time first, then name)", got, want)
	}
}
