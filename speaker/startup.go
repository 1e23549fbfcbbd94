package speaker

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// Start-up retries: how long a speaker waits between two tries of a step that needs the node's network (the API
// server, the bind address, the interfaces), from the first to the longest. The longest stays well under a
// kubelet's CrashLoopBackOff steps (10 s, 20 s, 40 s...), which an exit would cost instead.
const (
	startRetryFirst = 200 * time.Millisecond
	startRetryMax   = 5 * time.Second
)

// retry runs fn until it succeeds or ctx ends, waiting startRetryFirst, doubling to startRetryMax, between tries,
// and logs each failure with the wait before the next try. When ctx ends first it returns an error wrapping
// ctx's and fn's last.
func retry(ctx context.Context, clk clock.Clock, log logr.Logger, what string, fn func() error) error {
	wait := startRetryFirst
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				log.Info("start-up step succeeded after retrying", "step", what, "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w (%s: %w)", ctx.Err(), what, err)
		}
		log.Info("start-up step failed; retrying", "step", what, "attempt", attempt, "retry", wait.String(), "error", err.Error())
		t := clk.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (%s: %w)", ctx.Err(), what, err)
		case <-t.C():
		}
		wait = min(2*wait, startRetryMax)
	}
}
