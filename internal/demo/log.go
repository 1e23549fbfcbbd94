package demo

import (
	"fmt"
	"io"
	"strings"

	"github.com/go-logr/logr"
)

// newLineLogger returns a logger printing V(0) messages to out as indented lines: "    <name>: msg k=v ...".
func newLineLogger(out io.Writer, name string) logr.Logger {
	return logr.New(&lineSink{out: out, name: name})
}

// lineSink is a logr.LogSink writing one line per message; out must be safe for concurrent use.
type lineSink struct {
	out    io.Writer
	name   string
	values []any
}

func (s *lineSink) Init(logr.RuntimeInfo) {}

func (s *lineSink) Enabled(level int) bool { return level <= 0 }

func (s *lineSink) Info(_ int, msg string, kv ...any) { s.line(msg, kv) }

func (s *lineSink) Error(err error, msg string, kv ...any) {
	s.line(msg, append([]any{"error", err}, kv...))
}

func (s *lineSink) WithValues(kv ...any) logr.LogSink {
	c := *s
	c.values = append(append([]any(nil), s.values...), kv...)
	return &c
}

func (s *lineSink) WithName(name string) logr.LogSink {
	c := *s
	c.name = s.name + "/" + name
	return &c
}

func (s *lineSink) line(msg string, kv []any) {
	var b strings.Builder
	fmt.Fprintf(&b, "    %s: %s", s.name, msg)
	all := append(append([]any(nil), s.values...), kv...)
	for i := 0; i+1 < len(all); i += 2 {
		fmt.Fprintf(&b, " %v=%v", all[i], all[i+1])
	}
	b.WriteByte('\n')
	_, _ = io.WriteString(s.out, b.String())
}
