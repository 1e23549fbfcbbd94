// Package labpod is the workload of the real-node lab's pods (internal/kubenode): a TCP server that answers every
// connection with one line naming the pod and node that answered, and the pod sandbox's pause process.
package labpod

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Serve answers every TCP connection accepted on ln with reply and a newline, then closes it, until ctx ends.
func Serve(ctx context.Context, ln net.Listener, reply string) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	msg := []byte(reply + "\n")
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accepting on %s: %w", ln.Addr(), err)
		}
		go func() { // ends with the write
			_, _ = c.Write(msg)
			_ = c.Close()
		}()
	}
}

// Reply is what a pod answers: its name and its node's, from the downward API's environment.
func Reply(pod, node string) string { return "pod=" + pod + " node=" + node }
