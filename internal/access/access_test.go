package access

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

const auditLines = `{"kind":"Event","auditID":"a","stage":"ResponseStarted","verb":"watch","user":{"username":"u"},"objectRef":{"resource":"services","apiVersion":"v1"},"responseStatus":{"code":200}}
{"kind":"Event","auditID":"b","stage":"ResponseComplete","verb":"create","user":{"username":"u"},"objectRef":{"resource":"secrets","namespace":"ns","name":"k","apiVersion":"v1"},"responseStatus":{"code":403}}
{"kind":"Event","auditID":"a","stage":"ResponseComplete","verb":"watch","user":{"username":"u"},"objectRef":{"resource":"services","apiVersion":"v1"},"responseStatus":{"code":200}}
{"kind":"Event","auditID":"c","stage":"ResponseComplete","verb":"patch","user":{"username":"u"},"objectRef":{"resource":"announcements","namespace":"x","name":"y","apiGroup":"herald.dev","subresource":"status"},"responseStatus":{"code":200}}
{"kind":"Event","auditID":"d","stage":"ResponseComplete","verb":"get","requestURI":"/apis","user":{"username":"u"},"responseStatus":{"code":200}}
`

func TestParseAudit(t *testing.T) {
	reqs, err := ParseAudit(strings.NewReader(auditLines))
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{
		{User: "u", Verb: "watch", Resource: "services", Code: 200},
		{User: "u", Verb: "create", Resource: "secrets", Namespace: "ns", Name: "k", Code: 403},
		{User: "u", Verb: "patch", Group: "herald.dev", Resource: "announcements/status", Namespace: "x", Name: "y", Code: 200},
		{User: "u", Verb: "get", URI: "/apis", Code: 200},
	}
	if d := cmp.Diff(want, reqs); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	if reqs[0].Forbidden() || !reqs[1].Forbidden() {
		t.Error("Forbidden: want only the 403")
	}
	if _, err := ParseAudit(strings.NewReader("{not json\n")); err == nil {
		t.Error("a broken line parsed")
	}
}

func TestCompare(t *testing.T) {
	rules := []Rule{
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch"}}},
		{PolicyRule: rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}, Namespace: "ns"},
	}
	used := Usage{}
	reqs, err := ParseAudit(strings.NewReader(auditLines))
	if err != nil {
		t.Fatal(err)
	}
	used.Add(reqs)
	used.Add([]Request{{User: "u", Verb: "get", Resource: "secrets", Namespace: "ns", Code: 200}})
	got := Compare(rules, used["u"])
	want := []Row{
		{Resource: "announcements/status.herald.dev", Used: []string{"patch"}, Denied: []string{"patch"}},
		{Resource: "secrets in ns", Granted: []string{"get"}, Used: []string{"create", "get"}, Denied: []string{"create"}},
		{Resource: "services", Granted: []string{"get", "list", "watch"}, Used: []string{"watch"}, Unused: []string{"get", "list"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("rows (-want +got):\n%s", d)
	}
	for _, tc := range []struct {
		name string
		k    Key
		want bool
	}{
		{"granted", Key{Resource: "services", Verb: "list"}, true},
		{"verb not granted", Key{Resource: "services", Verb: "delete"}, false},
		{"in the Role's namespace", Key{Resource: "secrets", Namespace: "ns", Verb: "get"}, true},
		{"outside the Role's namespace", Key{Resource: "secrets", Namespace: "other", Verb: "get"}, false},
		{"other group", Key{Group: "apps", Resource: "services", Verb: "get"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Allows(rules, tc.k); got != tc.want {
				t.Errorf("Allows(%+v) = %t, want %t", tc.k, got, tc.want)
			}
		})
	}
}
