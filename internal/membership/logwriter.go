package membership

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

// logLevel is the severity memberlist writes in front of each log line.
type logLevel int

const (
	levelDebug logLevel = iota
	levelInfo
	levelWarn
	levelError
)

// parseLogLine splits a memberlist log line ("[WARN] memberlist: text")
// into its level and text. Lines without a known prefix are Info.
func parseLogLine(line string) (logLevel, string) {
	line = strings.TrimRight(line, "\r\n")
	level := levelInfo
	for _, p := range []struct {
		prefix string
		level  logLevel
	}{
		{"[TRACE]", levelDebug},
		{"[DEBUG]", levelDebug},
		{"[INFO]", levelInfo},
		{"[WARN]", levelWarn},
		{"[ERR]", levelError},
		{"[ERROR]", levelError},
	} {
		if rest, ok := strings.CutPrefix(line, p.prefix); ok {
			level, line = p.level, rest
			break
		}
	}
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "memberlist: ")
	return level, line
}

// limiter is a token bucket: burst lines at once, then rate lines per
// second. It counts the lines it refused so the next line can report them.
type limiter struct {
	burst      float64
	rate       float64 // tokens per second
	tokens     float64
	last       time.Time
	suppressed int
}

func newLimiter(burst int, rate float64) *limiter {
	return &limiter{burst: float64(burst), rate: rate, tokens: float64(burst)}
}

// allow reports whether a line may be logged at now, and how many lines were
// refused since the last allowed one.
func (l *limiter) allow(now time.Time) (ok bool, suppressed int) {
	if !l.last.IsZero() {
		l.tokens += now.Sub(l.last).Seconds() * l.rate
		if l.tokens > l.burst {
			l.tokens = l.burst
		}
	}
	l.last = now
	if l.tokens < 1 {
		l.suppressed++
		return false, 0
	}
	l.tokens--
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed
}

// Log rate limit for memberlist's own lines, some of which are per packet
// (failed decryption, failed probes).
const (
	logBurst = 20
	logRate  = 5 // lines per second
)

// logWriter is the io.Writer behind the *log.Logger given to memberlist. It
// turns each line into a logr call: [DEBUG] at V(1), [INFO] and [WARN] as
// Info (WARN with warning=true), [ERR] as Error. Lines are rate limited.
type logWriter struct {
	log   logr.Logger
	clock clock.PassiveClock

	mu  sync.Mutex // guards lim
	lim *limiter
}

func newLogWriter(log logr.Logger, clk clock.PassiveClock) *logWriter {
	return &logWriter{log: log, clock: clk, lim: newLimiter(logBurst, logRate)}
}

func (w *logWriter) Write(p []byte) (int, error) {
	for line := range bytes.Lines(p) {
		w.line(string(line))
	}
	return len(p), nil
}

func (w *logWriter) line(s string) {
	level, msg := parseLogLine(s)
	if msg == "" {
		return
	}
	if level == levelDebug && !w.log.V(1).Enabled() {
		return
	}
	w.mu.Lock()
	ok, suppressed := w.lim.allow(w.clock.Now())
	w.mu.Unlock()
	if !ok {
		return
	}
	var kv []any
	if suppressed > 0 {
		kv = append(kv, "suppressedLines", suppressed)
	}
	switch level {
	case levelDebug:
		w.log.V(1).Info(msg, kv...)
	case levelInfo:
		w.log.Info(msg, kv...)
	case levelWarn:
		w.log.Info(msg, append(kv, "warning", true)...)
	case levelError:
		w.log.Error(nil, msg, kv...)
	}
}
