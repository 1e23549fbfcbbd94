// Command herald-labpod is the real-node lab's tiny image (internal/kubenode): without arguments it is the pod
// sandbox's pause process; `herald-labpod serve` answers TCP connections on $LISTEN (default :8080) with the pod's
// and node's names ($POD_NAME, $NODE_NAME).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/heraldlb/herald/internal/labpod"
)

func main() {
	// As PID 1 a process gets no signal it does not handle: handle the ones the runtime stops containers with.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) < 2 {
		<-ctx.Done() // pause
		return
	}
	if os.Args[1] != "serve" {
		fmt.Fprintf(os.Stderr, "herald-labpod: unknown command %q; want none (pause) or serve\n", os.Args[1])
		os.Exit(2)
	}
	listen := os.Getenv("LISTEN")
	if listen == "" {
		listen = ":8080"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-labpod:", err)
		os.Exit(1)
	}
	fmt.Printf("herald-labpod: serving on %s\n", ln.Addr())
	if err := labpod.Serve(ctx, ln, labpod.Reply(os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))); err != nil {
		fmt.Fprintln(os.Stderr, "herald-labpod:", err)
		os.Exit(1)
	}
}
