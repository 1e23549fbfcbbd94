package controllers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
)

// BenchmarkController1000Services measures how long the controller, on the real API server, takes to give
// 1,000 new Services their addresses: from the first create until the last status holds an address. The
// Services are created by 8 writers at once; create-s reports how long creating them took by itself.
func BenchmarkController1000Services(b *testing.B) {
	if cp == nil {
		b.Skip("needs the control plane (not under -short)")
	}
	const n = 1000
	for iter := 0; iter < b.N; iter++ {
		b.StopTimer()
		ctx := context.Background()
		pool := &heraldv1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bench-%d", iter)},
			Spec: heraldv1.IPAddressPoolSpec{Addresses: addresses("198.18.0.0/20")}}
		if err := k8s.Create(ctx, pool); err != nil {
			b.Fatal(err)
		}
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-"}}
		if err := k8s.Create(ctx, ns); err != nil {
			b.Fatal(err)
		}
		stop := startControllerB(b)

		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		var next atomic.Int64
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
					svc := lbService(ns.Name, fmt.Sprintf("s%04d", i), 80, inPool(pool.Name))
					if err := k8s.Create(ctx, svc); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		created := time.Since(start)
		for {
			var list corev1.ServiceList
			if err := k8s.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
				b.Fatal(err)
			}
			done := 0
			for _, s := range list.Items {
				if len(s.Status.LoadBalancer.Ingress) > 0 {
					done++
				}
			}
			if done == n {
				break
			}
			if time.Since(start) > 5*time.Minute {
				b.Fatalf("only %d of %d Services have addresses after 5 minutes", done, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
		total := time.Since(start)
		b.StopTimer()
		b.ReportMetric(total.Seconds(), "s/1000-services")
		b.ReportMetric(created.Seconds(), "create-s")
		stop()
		_ = k8s.DeleteAllOf(ctx, &corev1.Service{}, client.InNamespace(ns.Name))
		_ = k8s.Delete(ctx, ns)
		_ = k8s.Delete(ctx, pool)
	}
}
