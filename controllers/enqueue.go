package controllers

import (
	"context"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
)

// enqueueAll maps any event to a request for every object of a list type, for reconcilers whose objects all
// depend on another kind (every pool's overlaps on every other pool, every advertisement on the pools).
func enqueueAll(c client.Reader, newList func() client.ObjectList) handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []ctrl.Request {
		list := newList()
		if err := c.List(ctx, list); err != nil {
			log.FromContext(ctx).Error(err, "listing objects to re-examine")
			return nil
		}
		objs, err := apimeta.ExtractList(list)
		if err != nil {
			log.FromContext(ctx).Error(err, "reading listed objects")
			return nil
		}
		out := make([]ctrl.Request, 0, len(objs))
		for _, o := range objs {
			if co, ok := o.(client.Object); ok {
				out = append(out, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(co)})
			}
		}
		return out
	})
}
