package membership

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
)

// The book is every speaker MAC this member knows, with the speaker's name: the MACs live members publish, the
// ones departed members published (kept), and the ones other members passed on. Members exchange their books in
// memberlist's push/pull (LocalState and MergeRemoteState), which runs at every join and every PushPullInterval.
//
// A speaker that has just started knows only the members it reaches. One cut off from it by a partition still
// answers for addresses on the wire, and without the book its frames would read as a foreign device's: the new
// speaker would report an IP conflict and back off for seconds, where it should treat a simultaneous probe from
// another speaker by the election order (found by the soak, seed 1207).
//
// Layout (version 1): a version byte, a uvarint count, then count entries of len(name), name, len(MAC), MAC,
// each length one byte. Names are at most MaxNodeNameLen bytes; MACs 6, 8 or 20 bytes long.

// bookVersion is the version byte of the book's encoding.
const bookVersion = 1

// MaxBook bounds the entries a book keeps and accepts: a MAC from a peer's book beyond it is dropped.
const MaxBook = 4096

// errBook is wrapped by every refusal of a malformed book.
var errBook = errors.New("membership: malformed speaker book")

// encodeBook writes book (MAC string to node name) in the layout above. Entries that cannot be encoded (a MAC
// that does not parse, a name too long) are left out.
func encodeBook(book map[string]string) []byte {
	out := []byte{bookVersion}
	type entry struct {
		name string
		mac  net.HardwareAddr
	}
	var es []entry
	for s, name := range book {
		mac, err := net.ParseMAC(s)
		if err != nil || !validMACLen(len(mac)) || name == "" || len(name) > MaxNodeNameLen {
			continue
		}
		es = append(es, entry{name, mac})
	}
	out = binary.AppendUvarint(out, uint64(len(es)))
	for _, e := range es {
		out = append(out, byte(len(e.name)))
		out = append(out, e.name...)
		out = append(out, byte(len(e.mac)))
		out = append(out, e.mac...)
	}
	return out
}

// decodeBook reads a book written by encodeBook. It refuses the whole book if any of it is malformed, an unknown
// version, or more than MaxBook entries.
func decodeBook(buf []byte) (map[string]string, error) {
	if len(buf) == 0 {
		return nil, fmt.Errorf("%w: empty", errBook)
	}
	if buf[0] != bookVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", errBook, buf[0], bookVersion)
	}
	n, k := binary.Uvarint(buf[1:])
	if k <= 0 {
		return nil, fmt.Errorf("%w: bad count", errBook)
	}
	if n > MaxBook {
		return nil, fmt.Errorf("%w: %d entries, at most %d", errBook, n, MaxBook)
	}
	rest := buf[1+k:]
	field := func(what string) ([]byte, error) {
		if len(rest) == 0 {
			return nil, fmt.Errorf("%w: truncated before a %s", errBook, what)
		}
		l := int(rest[0])
		if len(rest) < 1+l {
			return nil, fmt.Errorf("%w: %s of %d bytes truncated", errBook, what, l)
		}
		f := rest[1 : 1+l]
		rest = rest[1+l:]
		return f, nil
	}
	out := make(map[string]string, n)
	for range n {
		name, err := field("name")
		if err != nil {
			return nil, err
		}
		if len(name) == 0 || len(name) > MaxNodeNameLen {
			return nil, fmt.Errorf("%w: a name of %d bytes", errBook, len(name))
		}
		mac, err := field("MAC")
		if err != nil {
			return nil, err
		}
		if !validMACLen(len(mac)) {
			return nil, fmt.Errorf("%w: a MAC of %d bytes for %q", errBook, len(mac), name)
		}
		out[net.HardwareAddr(mac).String()] = string(name)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the last entry", errBook, len(rest))
	}
	return out, nil
}

// noteMACs records the MACs a live member publishes: its own word overrides what the book held for them.
func (l *List) noteMACs(m Member) {
	l.bookMu.Lock()
	defer l.bookMu.Unlock()
	for _, mac := range m.MACs {
		s := mac.String()
		if _, ok := l.book[s]; ok || len(l.book) < MaxBook {
			l.book[s] = m.Name
		}
	}
}

// mergeBook adds the MACs of a peer's book that this book lacks (what a live member publishes is newer than
// what a peer remembers of it); it returns how many it added.
func (l *List) mergeBook(peer map[string]string) int {
	l.bookMu.Lock()
	defer l.bookMu.Unlock()
	added := 0
	for mac, name := range peer {
		if _, ok := l.book[mac]; ok || len(l.book) >= MaxBook {
			continue
		}
		l.book[mac] = name
		added++
	}
	return added
}

// KnownMACs returns the book: every speaker MAC this member knows (MAC in net.HardwareAddr's string form) with
// the speaker's name, whether it is a live member or not.
func (l *List) KnownMACs() map[string]string {
	l.bookMu.Lock()
	defer l.bookMu.Unlock()
	return maps.Clone(l.book)
}

// BooksRefused counts the peers' books dropped as malformed.
func (l *List) BooksRefused() uint64 { return l.bookRefused.Load() }
