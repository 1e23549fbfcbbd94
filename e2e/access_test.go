package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/heraldlb/herald/internal/access"
	"github.com/heraldlb/herald/internal/controlplane"
)

// envAccessReport names a file for the verbs every component used in this run, against those config/ grants it
// (a Markdown table per component; BENCHMARKS.md's "Least privilege").
const envAccessReport = "HERALD_ACCESS_REPORT"

var (
	usageMu sync.Mutex // guards usage
	usage   = access.Usage{}
)

// checkAccess fails the test for every request of a Herald component that the API server refused (403): a verb
// missing from the roles fails a test, even when a retry or a fallback hides it from the test's assertions. It
// adds the lab's requests to the run's usage. A 403 received inside one of warmups (after an API server restart,
// before its authorizer has synced) is logged and counted, not failed.
func checkAccess(t testing.TB, auditLog string, warmups []span) {
	t.Helper()
	if auditLog == "" {
		return
	}
	reqs, err := access.ReadAudit(auditLog)
	if err != nil {
		t.Errorf("reading the API server's audit log: %v", err)
		return
	}
	users := map[string]bool{}
	for _, c := range controlplane.Components {
		users[c.Username()] = true
	}
	var forbidden, warm []string
	for _, r := range reqs {
		if !users[r.User] {
			t.Errorf("the audit log holds a request by %s, not a Herald component: %s", r.User, r)
			continue
		}
		if r.Forbidden() {
			if overlapsAny(warmups, r.At, r.At, 0) {
				warm = append(warm, r.At.Format("15:04:05.000")+" "+r.String())
				continue
			}
			forbidden = append(forbidden, r.String())
		}
	}
	if len(warm) > 0 {
		t.Logf("the restarted API server refused %d requests of Herald's components before its authorizer synced:\n%s",
			len(warm), strings.Join(warm, "\n"))
	}
	if len(forbidden) > 0 {
		t.Errorf("the API server refused %d requests of Herald's components (a verb missing from config/'s roles):\n%s",
			len(forbidden), strings.Join(forbidden, "\n"))
	}
	if len(reqs) == 0 {
		t.Errorf("the audit log %s records no request by Herald's components: are they running as their ServiceAccounts?", auditLog)
	}
	usageMu.Lock()
	usage.Add(reqs)
	usageMu.Unlock()
}

// writeAccessReport writes, per component, the verbs used in this run against those config/'s roles grant.
func writeAccessReport(root, path string) error {
	files, err := controlplane.RBACFiles(root)
	if err != nil {
		return err
	}
	objs, err := controlplane.ReadManifests(root, files)
	if err != nil {
		return err
	}
	grants, err := access.Grants(objs)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	usageMu.Lock()
	defer usageMu.Unlock()
	for _, c := range controlplane.Components {
		fmt.Fprintf(&b, "%s (ServiceAccount %s/%s):\n\n", c.Name, controlplane.SystemNamespace, c.ServiceAccount)
		if err := access.WriteTable(&b, access.Compare(grants[c.Username()], usage[c.Username()])); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
