package membership

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBookRoundTrip: a book decodes to what was encoded; entries that cannot be encoded are left out.
func TestBookRoundTrip(t *testing.T) {
	long := strings.Repeat("n", MaxNodeNameLen)
	book := map[string]string{
		"02:00:5e:00:53:01":       "node1",
		"02:00:5e:00:53:02":       "node1",
		"02:00:5e:00:53:03:04:05": "node2", // EUI-64
		"02:00:5e:00:53:09":       long,
	}
	got, err := decodeBook(encodeBook(book))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(book, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	bad := map[string]string{"not a mac": "node1", "02:00:5e:00:53:0a": long + "x", "02:00:5e:00:53:0b": ""}
	if got, err := decodeBook(encodeBook(bad)); err != nil || len(got) != 0 {
		t.Errorf("unencodable entries: decoded %v, %v; want an empty book", got, err)
	}
}

// TestBookRefusesMalformed: every malformed book is refused whole, with an error saying what is wrong.
func TestBookRefusesMalformed(t *testing.T) {
	good := encodeBook(map[string]string{"02:00:5e:00:53:01": "node1"})
	for name, tc := range map[string]struct {
		buf  []byte
		want string
	}{
		"empty":            {nil, "empty"},
		"unknown version":  {append([]byte{9}, good[1:]...), "version 9"},
		"no count":         {[]byte{bookVersion}, "bad count"},
		"too many":         {[]byte{bookVersion, 0x81, 0x40}, "8193 entries"},
		"truncated name":   {[]byte{bookVersion, 1, 5, 'n', 'o'}, "name of 5 bytes truncated"},
		"empty name":       {[]byte{bookVersion, 1, 0, 6, 2, 0, 0x5e, 0, 0x53, 1}, "a name of 0 bytes"},
		"missing MAC":      {[]byte{bookVersion, 1, 1, 'n'}, "truncated before a MAC"},
		"MAC of 5 bytes":   {[]byte{bookVersion, 1, 1, 'n', 5, 2, 0, 0x5e, 0, 0x53}, "a MAC of 5 bytes"},
		"trailing bytes":   {append(append([]byte{}, good...), 0), "1 bytes after the last entry"},
		"count past end":   {[]byte{bookVersion, 2, 1, 'n', 6, 2, 0, 0x5e, 0, 0x53, 1}, "truncated before a name"},
		"MAC past the end": {[]byte{bookVersion, 1, 1, 'n', 6, 2, 0}, "MAC of 6 bytes truncated"},
	} {
		got, err := decodeBook(tc.buf)
		if !errors.Is(err, errBook) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: decodeBook = %v, %v; want an error containing %q", name, got, err, tc.want)
		}
	}
}

// FuzzDecodeBook: no input panics, and whatever decodes encodes back to a book that decodes the same.
func FuzzDecodeBook(f *testing.F) {
	f.Add(encodeBook(map[string]string{"02:00:5e:00:53:01": "node1", "02:00:5e:00:53:02": "node2"}))
	f.Add([]byte{bookVersion, 0})
	f.Fuzz(func(t *testing.T, buf []byte) {
		book, err := decodeBook(buf)
		if err != nil {
			return
		}
		again, err := decodeBook(encodeBook(book))
		if err != nil || !cmp.Equal(book, again) {
			t.Fatalf("re-decoding %v gave %v, %v", book, again, err)
		}
	})
}

// TestBookOutlivesMembers: a member that joins after another has failed learns the failed member's MACs from
// the book of the member it joins through, though memberlist never tells it of the failed one; a live member's
// own MACs override what a book says of them.
func TestBookOutlivesMembers(t *testing.T) {
	names := []string{"n1", "n2", "n3", "n4"}
	c := newCluster(t, names...)
	ls := c.startAll(names[:3]...)
	c.crash("n3")
	eventually(t, 10*time.Second, func() string {
		if ls[0].NumMembers() == 2 {
			return ""
		}
		return "n3 still a member of n1"
	}, "n1 drops n3")
	// n1 heard of a MAC for n4 that is not n4's (say, from a stale book).
	stale := net.HardwareAddr{2, 0, 0x5e, 0, 0x53, 0xee}
	ls[0].mergeBook(map[string]string{stale.String(): "n4", macFor("n4").String(): "n9"})
	n4 := c.start(c.config("n4"))
	if n, err := n4.Join([]string{c.addr("n1")}); err != nil || n != 1 {
		t.Fatalf("Join: %d, %v", n, err)
	}
	for _, m := range n4.Members() {
		if m.Name == "n3" {
			t.Fatalf("n4 sees n3 as a member: %+v", m)
		}
	}
	eventually(t, 10*time.Second, func() string {
		book := n4.KnownMACs()
		want := map[string]string{macFor("n1").String(): "n1", macFor("n2").String(): "n2",
			macFor("n3").String(): "n3", macFor("n4").String(): "n4", stale.String(): "n4"}
		return cmp.Diff(want, book)
	}, "n4's book (-want +got)")
	if got := n4.BooksRefused(); got != 0 {
		t.Errorf("BooksRefused = %d", got)
	}
}
