package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	heraldv1 "github.com/heraldlb/herald/api/v1alpha1"
	"github.com/heraldlb/herald/internal/ipam"
	"github.com/heraldlb/herald/internal/service"
)

// allocations is the controller's view of which Service holds which address. It lives in memory, is rebuilt
// from Service status when the controller starts (before anything new is handed out), and is shared by the
// Service and pool reconcilers.
type allocations struct {
	class string // the loadBalancerClass Herald serves

	mu       sync.Mutex // guards the fields below
	alloc    *ipam.Allocator
	loaded   bool
	poolsKey string            // fingerprint of the pool specs last given to alloc
	pools    []*poolInfo       // in ownership order
	failed   map[string]string // Service key -> last allocation failure, retried when addresses free up
}

func newAllocations(class string) *allocations {
	return &allocations{class: class, alloc: ipam.New(), failed: map[string]string{}}
}

// ensureLoaded rebuilds the allocations from the cluster once: pools first, then every Service of ours that
// already has addresses in its status, oldest first, so that a restart never hands an address to a second
// Service and never moves one that is still valid.
func (s *allocations) ensureLoaded(ctx context.Context, c client.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return nil
	}
	if err := s.syncPoolsLocked(ctx, c); err != nil {
		return err
	}
	var svcs corev1.ServiceList
	if err := c.List(ctx, &svcs); err != nil {
		return fmt.Errorf("rebuilding allocations: listing Services: %w", err)
	}
	items := svcs.Items
	sort.SliceStable(items, func(i, j int) bool {
		a, b := &items[i], &items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
	})
	claimed, skipped := 0, 0
	for i := range items {
		svc := &items[i]
		if !service.Served(svc, s.class) {
			continue
		}
		addrs := service.Addresses(svc)
		if len(addrs) == 0 {
			continue
		}
		sr, err := requestFor(svc)
		if err != nil {
			sr = serviceRequest{Request: ipam.Request{Key: svc.Namespace + "/" + svc.Name}}
		}
		// Whatever the status holds, in a pool or not (Restore): the running controller held it too.
		sr.Addresses = addrs
		if err := s.alloc.Restore(sr.Request); err != nil {
			skipped++
			log.FromContext(ctx).Info("not keeping address from Service status", "service", sr.Key, "addresses", addrs, "reason", err.Error())
			continue
		}
		claimed++
	}
	log.FromContext(ctx).Info("rebuilt allocations from Service status", "services", claimed, "notKept", skipped, "pools", len(s.pools))
	s.loaded = true
	return nil
}

// syncPools refreshes the pools from the cache when their specs changed.
func (s *allocations) syncPools(ctx context.Context, c client.Reader) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncPoolsLocked(ctx, c)
}

func (s *allocations) syncPoolsLocked(ctx context.Context, c client.Reader) error {
	var list heraldv1.IPAddressPoolList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("listing IPAddressPools: %w", err)
	}
	key := poolsFingerprint(list.Items)
	if key == s.poolsKey && s.pools != nil {
		return nil
	}
	s.pools = buildPools(list.Items)
	s.alloc.SetPools(ipamPools(s.pools))
	s.poolsKey = key
	return nil
}

// poolsFingerprint changes whenever a pool is added, removed or its spec changes.
func poolsFingerprint(pools []heraldv1.IPAddressPool) string {
	parts := make([]string, len(pools))
	for i := range pools {
		p := &pools[i]
		parts[i] = p.Name + "@" + string(p.UID) + "@" + strconv.FormatInt(p.Generation, 10)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// snapshotPools returns the current pools; the slice and its elements must not be modified.
func (s *allocations) snapshotPools() []*poolInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pools
}

// allocate runs one allocation.
func (s *allocations) allocate(req ipam.Request) ([]netip.Addr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	addrs, err := s.alloc.Allocate(req)
	if err == nil {
		delete(s.failed, req.Key)
	}
	return addrs, err
}

// markFailed records that a Service waits for an address.
func (s *allocations) markFailed(key, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed[key] = why
}

// addresses returns what a Service holds now.
func (s *allocations) addresses(key string) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alloc.Addresses(key)
}

// poolOf names the pool that owns an address, if any.
func (s *allocations) poolOf(a netip.Addr) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alloc.Pool(a)
}

// release frees a Service's addresses and returns what it held and the Services waiting for an address, which
// may now succeed.
func (s *allocations) release(key string) (held []netip.Addr, waiting []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.failed, key)
	held = s.alloc.Addresses(key)
	if len(held) == 0 {
		return nil, nil
	}
	s.alloc.Release(key)
	for k := range s.failed {
		waiting = append(waiting, k)
	}
	sort.Strings(waiting)
	return held, waiting
}

// stats returns a pool's counts per family.
func (s *allocations) stats(pool string) map[ipam.Family]ipam.FamilyStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.alloc.Stats(pool)
}
