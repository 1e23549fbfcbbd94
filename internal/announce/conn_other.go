//go:build !linux

package announce

import (
	"errors"
	"fmt"

	"github.com/heraldlb/herald/internal/wire"
)

// ListenInterface needs Linux AF_PACKET sockets; elsewhere it fails.
func ListenInterface(ifi wire.Interface) (Conns, error) {
	return Conns{}, fmt.Errorf("listen on %s: %w", ifi.Name, errors.ErrUnsupported)
}
