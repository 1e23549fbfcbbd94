package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

var (
	now     = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	macA    = "02:00:00:00:00:0a"
	macB    = "02:00:00:00:00:0b"
	macRoge = "02:00:00:00:00:ee"
)

func svc(ns, name string, ips ...string) corev1.Service {
	s := corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
	for _, ip := range ips {
		s.Status.LoadBalancer.Ingress = append(s.Status.LoadBalancer.Ingress, corev1.LoadBalancerIngress{IP: ip})
	}
	return s
}

func cond(t, status, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: metav1.ConditionStatus(status), Reason: reason,
		LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}
}

// ann is an Announcement by node n1 on eth0 for addrs, Announced=True.
func ann(ns, name string, addrs ...string) heraldv1.Announcement {
	return heraldv1.Announcement{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Status: heraldv1.AnnouncementStatus{Node: "n1", Addresses: addrs, Interfaces: []string{"eth0"},
			Since:      &metav1.Time{Time: now.Add(-2 * time.Hour)},
			Conditions: []metav1.Condition{cond("Announced", "True", "Announcing")}}}
}

func health(verdict heraldv1.HealthVerdict, addr string, macs ...string) *heraldv1.AnnouncementHealth {
	h := &heraldv1.AnnouncementHealth{Verdict: verdict, Watcher: "n2", LastProbe: &metav1.Time{Time: now.Add(-5 * time.Second)}}
	ah := heraldv1.AddressHealth{Address: addr, Verdict: verdict}
	for _, m := range macs {
		node := map[string]string{macA: "n1", macB: "n2"}[m]
		ah.Responders = append(ah.Responders, heraldv1.HealthResponder{MAC: m, Node: node,
			Latency: &metav1.Duration{Duration: 400 * time.Microsecond}})
	}
	h.Addresses = []heraldv1.AddressHealth{ah}
	return h
}

func TestEvaluate(t *testing.T) {
	type want struct {
		State    State
		Problems []string // substrings, one per problem, in order
	}
	tests := []struct {
		name string
		svc  corev1.Service
		ann  *heraldv1.Announcement
		want want
	}{
		{name: "no announcement", svc: svc("a", "web", "198.51.100.5"),
			want: want{StateNotAnnounced, []string{"no Announcement"}}},
		{name: "announced, health unknown", svc: svc("a", "web", "198.51.100.5"),
			ann:  ptr.To(ann("a", "web", "198.51.100.5")),
			want: want{StateAnnounced, nil}},
		{name: "healthy", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Health = health(heraldv1.HealthHealthy, "198.51.100.5", macA)
				a.Status.Conditions = append(a.Status.Conditions, cond("Healthy", "True", "OneResponder"))
				return &a
			}(),
			want: want{StateHealthy, nil}},
		{name: "announced false", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conditions = []metav1.Condition{cond("Announced", "False", "NoInterface")}
				return &a
			}(),
			want: want{StateNotAnnounced, []string{"Announced=False (NoInterface)"}}},
		{name: "no conditions and no interface", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conditions, a.Status.Interfaces = nil, nil
				return &a
			}(),
			want: want{StateNotAnnounced, []string{"names no node and interface"}}},
		{name: "dual-stack, one address missing", svc: svc("a", "web", "2001:db8::5", "198.51.100.5"),
			ann:  ptr.To(ann("a", "web", "198.51.100.5")),
			want: want{StateNotAnnounced, []string{"2001:db8::5 is not among"}}},
		{name: "address spelled differently", svc: svc("a", "web", "2001:db8::5"),
			ann:  ptr.To(ann("a", "web", "2001:0db8::0005")),
			want: want{StateAnnounced, nil}},
		{name: "conflict", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conflict = &heraldv1.AnnouncementConflict{Kind: heraldv1.ConflictForeign, Address: "198.51.100.5", MAC: macRoge}
				a.Status.Conditions = append(a.Status.Conditions, cond("Conflict", "True", "IPConflict"))
				return &a
			}(),
			want: want{StateConflict, []string{"conflict: Foreign 02:00:00:00:00:ee answers for 198.51.100.5"}}},
		{name: "conflict condition only", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conditions = append(a.Status.Conditions, cond("Conflict", "True", "DuplicateAnnouncer"))
				return &a
			}(),
			want: want{StateConflict, []string{"Conflict=True (DuplicateAnnouncer)"}}},
		{name: "dark", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Health = health(heraldv1.HealthDark, "198.51.100.5")
				return &a
			}(),
			want: want{StateUnhealthy, []string{"health Dark; 198.51.100.5: Dark, answered by nobody"}}},
		{name: "duplicate", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Health = health(heraldv1.HealthDuplicate, "198.51.100.5", macA, macB)
				return &a
			}(),
			want: want{StateUnhealthy, []string{"answered by 02:00:00:00:00:0a (n1), 02:00:00:00:00:0b (n2)"}}},
		{name: "healthy verdict but condition false", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Health = health(heraldv1.HealthHealthy, "198.51.100.5", macA)
				a.Status.Conditions = append(a.Status.Conditions, cond("Healthy", "False", "Stale"))
				return &a
			}(),
			want: want{StateUnhealthy, []string{"Healthy=False (Stale)"}}},
		{name: "healthy condition unknown", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conditions = append(a.Status.Conditions, cond("Healthy", "Unknown", "NoWatcher"))
				return &a
			}(),
			want: want{StateAnnounced, nil}},
		{name: "not announced beats conflict", svc: svc("a", "web", "198.51.100.5"),
			ann: func() *heraldv1.Announcement {
				a := ann("a", "web", "198.51.100.5")
				a.Status.Conditions = []metav1.Condition{cond("Announced", "False", "Yielded"), cond("Conflict", "True", "IPConflict")}
				return &a
			}(),
			want: want{StateNotAnnounced, []string{"Announced=False (Yielded)", "Conflict=True (IPConflict)"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var anns []heraldv1.Announcement
			if tt.ann != nil {
				anns = append(anns, *tt.ann)
			}
			rows := Join([]corev1.Service{tt.svc}, anns, "herald.dev/l2")
			if len(rows) != 1 {
				t.Fatalf("%d rows, want 1", len(rows))
			}
			r := rows[0]
			if r.State != tt.want.State {
				t.Errorf("state %s, want %s; problems %q", r.State, tt.want.State, r.Problems)
			}
			if len(r.Problems) != len(tt.want.Problems) {
				t.Fatalf("problems %q, want %d like %q", r.Problems, len(tt.want.Problems), tt.want.Problems)
			}
			for i, w := range tt.want.Problems {
				if !strings.Contains(r.Problems[i], w) {
					t.Errorf("problem %d %q does not hold %q", i, r.Problems[i], w)
				}
			}
			wantCode := 1
			if tt.want.State.OK() {
				wantCode = 0
			}
			if got := ExitCode(rows); got != wantCode {
				t.Errorf("exit code %d, want %d", got, wantCode)
			}
		})
	}
}

func TestJoinSelectsAndSorts(t *testing.T) {
	other := svc("a", "metallb", "198.51.100.9")
	other.Spec.LoadBalancerClass = ptr.To("metallb")
	ours := svc("a", "classy", "198.51.100.8")
	ours.Spec.LoadBalancerClass = ptr.To("herald.dev/l2")
	cluster := svc("a", "cluster", "198.51.100.7")
	cluster.Spec.Type = corev1.ServiceTypeClusterIP
	svcs := []corev1.Service{
		svc("b", "web", "198.51.100.6"), svc("a", "zeta", "2001:db8::1", "198.51.100.2"), svc("a", "pending"),
		other, ours, cluster, svc("a", "hostname-only"),
	}
	svcs[len(svcs)-1].Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: "lb.example"}}
	rows := Join(svcs, []heraldv1.Announcement{ann("b", "web", "198.51.100.6"), ann("a", "unrelated", "198.51.100.99")}, "herald.dev/l2")
	var got []string
	for _, r := range rows {
		got = append(got, r.Namespace+"/"+r.Name+" "+strings.Join(r.Addresses, ",")+" "+string(r.State))
	}
	want := []string{
		"a/classy 198.51.100.8 NotAnnounced",
		"a/zeta 198.51.100.2,2001:db8::1 NotAnnounced",
		"b/web 198.51.100.6 Announced",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

func TestRender(t *testing.T) {
	healthy := ann("shop", "web", "198.51.100.5", "2001:db8::5")
	healthy.Status.Interfaces = []string{"eth0", "eth1"}
	healthy.Status.Health = health(heraldv1.HealthHealthy, "198.51.100.5", macA)
	healthy.Status.Health.Addresses = append(healthy.Status.Health.Addresses,
		heraldv1.AddressHealth{Address: "2001:db8::5", Verdict: heraldv1.HealthHealthy,
			Responders: []heraldv1.HealthResponder{{MAC: macA, Node: "n1"}}})
	healthy.Status.Conditions = append(healthy.Status.Conditions, cond("Conflict", "False", "NoConflict"), cond("Healthy", "True", "OneResponder"))
	dup := ann("shop", "api", "198.51.100.6")
	dup.Status.Health = health(heraldv1.HealthDuplicate, "198.51.100.6", macA, macRoge)
	rows := Join([]corev1.Service{svc("shop", "web", "198.51.100.5", "2001:db8::5"), svc("shop", "api", "198.51.100.6"), svc("blog", "www", "203.0.113.4")},
		[]heraldv1.Announcement{healthy, dup}, "")

	var table bytes.Buffer
	if err := Render(&table, rows, FormatTable, now); err != nil {
		t.Fatal(err)
	}
	wantTable := `NAMESPACE   NAME   ADDRESSES                  NODE   INTERFACES   HEALTH      RESPONDERS                                LAST-PROBE   STATUS
blog        www    203.0.113.4                -      -            -           -                                         -            NotAnnounced
shop        api    198.51.100.6               n1     eth0         Duplicate   02:00:00:00:00:0a(n1),02:00:00:00:00:ee   5s           Unhealthy
shop        web    198.51.100.5,2001:db8::5   n1     eth0,eth1    Healthy     02:00:00:00:00:0a(n1)                     5s           Healthy
`
	if diff := cmp.Diff(wantTable, table.String()); diff != "" {
		t.Errorf("table (-want +got):\n%s", diff)
	}

	var wide bytes.Buffer
	if err := Render(&wide, rows, FormatWide, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(wide.String()), "\n")
	if diff := cmp.Diff(append(append([]string{}, Columns...), WideColumns...), strings.Fields(lines[0])); diff != "" {
		t.Errorf("wide header (-want +got):\n%s", diff)
	}
	if got, want := strings.Fields(lines[3])[9:], []string{"120m", "n2", "Announced=True/Announcing,Conflict=False/NoConflict,Healthy=True/OneResponder"}; !cmp.Equal(want, got) {
		t.Errorf("wide columns of shop/web %q, want %q", got, want)
	}
	for i, l := range lines {
		if n := len(strings.Fields(l)); n != len(Columns)+len(WideColumns) {
			t.Errorf("wide line %d has %d fields, want %d: %q", i, n, len(Columns)+len(WideColumns), l)
		}
	}

	var js bytes.Buffer
	if err := Render(&js, rows, FormatJSON, now); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version  int              `json:"version"`
		OK       bool             `json:"ok"`
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, js.String())
	}
	if doc.Version != 1 || doc.OK || len(doc.Services) != 3 {
		t.Fatalf("version %d ok %v services %d, want 1 false 3:\n%s", doc.Version, doc.OK, len(doc.Services), js.String())
	}
	web := doc.Services[2]
	wantWeb := map[string]any{
		"namespace": "shop", "name": "web", "addresses": []any{"198.51.100.5", "2001:db8::5"}, "announcement": true,
		"node": "n1", "interfaces": []any{"eth0", "eth1"}, "announcedAddresses": []any{"198.51.100.5", "2001:db8::5"},
		"since": "2026-05-01T10:00:00Z", "state": "Healthy",
		"health": map[string]any{"verdict": "Healthy", "watcher": "n2", "lastProbe": "2026-05-01T11:59:55Z",
			"addresses": []any{
				map[string]any{"address": "198.51.100.5", "verdict": "Healthy", "responders": []any{map[string]any{"mac": macA, "node": "n1", "latencySeconds": 0.0004}}},
				map[string]any{"address": "2001:db8::5", "verdict": "Healthy", "responders": []any{map[string]any{"mac": macA, "node": "n1"}}},
			}},
		"conditions": []any{
			map[string]any{"type": "Announced", "status": "True", "reason": "Announcing", "lastTransitionTime": "2026-05-01T11:00:00Z"},
			map[string]any{"type": "Conflict", "status": "False", "reason": "NoConflict", "lastTransitionTime": "2026-05-01T11:00:00Z"},
			map[string]any{"type": "Healthy", "status": "True", "reason": "OneResponder", "lastTransitionTime": "2026-05-01T11:00:00Z"},
		},
	}
	if diff := cmp.Diff(wantWeb, web); diff != "" {
		t.Errorf("JSON of shop/web (-want +got):\n%s", diff)
	}

	var empty bytes.Buffer
	if err := Render(&empty, nil, FormatJSON, now); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(strings.Fields(empty.String()), ""), `{"version":1,"ok":true,"services":[]}`; got != want {
		t.Errorf("empty JSON %s, want %s", got, want)
	}
	if err := Render(&empty, nil, "yaml", now); err == nil {
		t.Error("Render accepted format yaml")
	}
}

func TestGather(t *testing.T) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, heraldv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	s1, s2 := svc("a", "web", "198.51.100.5"), svc("b", "web", "198.51.100.6")
	a1 := ann("a", "web", "198.51.100.5")
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(&s1, &s2, &a1).WithStatusSubresource(&a1).Build()
	ctx := context.Background()

	rows, err := Gather(ctx, c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].State != StateAnnounced || rows[1].State != StateNotAnnounced {
		t.Errorf("all namespaces: %+v", rows)
	}
	rows, err = Gather(ctx, c, Options{Namespace: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Namespace != "b" {
		t.Errorf("namespace b: %+v", rows)
	}

	noCRD := fake.NewClientBuilder().WithScheme(scheme).WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if _, ok := list.(*heraldv1.AnnouncementList); ok {
				return &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "herald.dev", Kind: "Announcement"}}
			}
			return c.List(ctx, list, opts...)
		},
	}).Build()
	if _, err := Gather(ctx, noCRD, Options{}); !errors.Is(err, ErrNoCRD) {
		t.Errorf("without the CRD: error %v, want ErrNoCRD", err)
	}
}
