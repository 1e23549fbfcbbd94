package membership

import (
	"bytes"
	"fmt"
	"net"
	"regexp"
	"slices"
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

// troubleQuiet is how long a trouble episode (troubleKind, peer) lasts after its last line: a line of the same
// kind about the same peer within it is counted, not logged.
const troubleQuiet = time.Minute

// troubleKind names the network trouble memberlist reports, which is expected while a peer is down or cut off.
type troubleKind string

const (
	troubleUnreachable  troubleKind = "unreachable"   // sends, dials, pushes/pulls or streams to the peer fail
	troubleProbeFailed  troubleKind = "probe-failed"  // the peer did not answer a probe (memberlist suspects it)
	troubleDeclaredDead troubleKind = "declared-dead" // the suspicion timed out: the peer is failed
	troubleSuspected    troubleKind = "suspected"     // a peer suspected this node, which refuted it
	troubleUDPBlocked   troubleKind = "udp-blocked"   // the peer answers over TCP but not UDP
)

// troubleMessages are the warnings that open an episode.
var troubleMessages = map[troubleKind]string{
	troubleUnreachable:  "cannot reach a gossip peer",
	troubleProbeFailed:  "a gossip peer did not answer a probe",
	troubleDeclaredDead: "a gossip peer is declared failed",
	troubleSuspected:    "a peer suspected this node of failure; this node refuted it",
	troubleUDPBlocked:   "a gossip peer answers over TCP but not over UDP: check that UDP port 7946 is open between the nodes",
}

var (
	// Lines naming the peer, with the trouble they report.
	troublePatterns = []struct {
		re   *regexp.Regexp
		kind troubleKind
	}{
		{regexp.MustCompile(`^Suspect (\S+) has failed, no acks received`), troubleProbeFailed},
		{regexp.MustCompile(`^Marking (\S+) as failed, suspect timeout reached`), troubleDeclaredDead},
		{regexp.MustCompile(`^Refuting an? (?:suspect|dead) message \(from: ([^)]*)\)`), troubleSuspected},
		{regexp.MustCompile(`^Was able to connect to (\S+) over TCP but UDP probes failed`), troubleUDPBlocked},
	}
	// Lines about a failed exchange with a peer, network trouble when their error says so.
	exchangeFailed = regexp.MustCompile(`^(?:Failed to send|Failed fallback TCP ping|Push/Pull with \S+ failed|failed to receive|` +
		`Failed to push local state|Failed to read remote state|Failed to forward ack|Failed to receive user message)`)
	// Where such a line names its peer, most specific first.
	peerPatterns = []*regexp.Regexp{
		regexp.MustCompile(`^Push/Pull with (\S+) failed`),
		regexp.MustCompile(` to (\S+?:\d+): `),
		regexp.MustCompile(`->(\S+?): `),
		regexp.MustCompile(`dial (?:tcp|udp)\S* (\S+?): `),
		regexp.MustCompile(`from=(\S+)`),
	}
	// networkErrors mark an error as the network's: a peer down, cut off by a firewall or a partition, or slow.
	networkErrors = []string{"operation not permitted", "connection refused", "i/o timeout", "timeout", "no route to host",
		"network is unreachable", "host is down", "connection reset", "broken pipe", "eof", "deadline exceeded"}
)

// classifyTrouble reports whether a memberlist line (level and text, as parseLogLine returns them) is expected
// network trouble, of which kind and about which peer (a node name or an address without its port; "" when the
// line names none).
func classifyTrouble(level logLevel, msg string) (kind troubleKind, peer string, ok bool) {
	if level == levelDebug {
		return "", "", false
	}
	for _, p := range troublePatterns {
		if m := p.re.FindStringSubmatch(msg); m != nil {
			return p.kind, hostOf(m[1]), true
		}
	}
	if !exchangeFailed.MatchString(msg) {
		return "", "", false
	}
	lower := strings.ToLower(msg)
	if !slices.ContainsFunc(networkErrors, func(e string) bool { return strings.Contains(lower, e) }) {
		return "", "", false
	}
	for _, re := range peerPatterns {
		if m := re.FindStringSubmatch(msg); m != nil {
			return troubleUnreachable, hostOf(m[1]), true
		}
	}
	return troubleUnreachable, "", true
}

// hostOf drops the port of a host:port (an address with an ephemeral port would open an episode per
// connection).
func hostOf(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

// episode is a run of trouble lines of one kind about one peer.
type episode struct {
	since, last time.Time
	repeats     int // lines counted, not logged
}

// logWriter is the io.Writer behind the *log.Logger given to memberlist. It turns each line into a logr call:
// [DEBUG] at V(1), [INFO] as Info, [WARN] as Info with warning=true, [ERR] as Error, rate limited. Expected
// network trouble (classifyTrouble), which memberlist logs at every failed send, probe or push/pull for as long
// as a peer is cut off, is logged once per episode instead: a warning (Info with warning=true, no stack trace)
// when a kind of trouble with a peer starts, after which lines of that kind about that peer are only counted
// until troubleQuiet passes without one; the next episode's warning says how many the last one counted.
type logWriter struct {
	log   logr.Logger
	clock clock.PassiveClock

	mu       sync.Mutex // guards the fields below
	lim      *limiter
	episodes map[episodeKey]*episode
}

type episodeKey struct {
	kind troubleKind
	peer string
}

func newLogWriter(log logr.Logger, clk clock.PassiveClock) *logWriter {
	return &logWriter{log: log, clock: clk, lim: newLimiter(logBurst, logRate), episodes: map[episodeKey]*episode{}}
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
	if kind, peer, ok := classifyTrouble(level, msg); ok {
		w.trouble(kind, peer, msg)
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

// trouble logs the first line of an episode and counts the others. Episodes bypass the rate limiter: there are at
// most a few kinds per peer per troubleQuiet, and the first line of each is the change an operator looks for.
func (w *logWriter) trouble(kind troubleKind, peer, msg string) {
	now := w.clock.Now()
	key := episodeKey{kind, peer}
	w.mu.Lock()
	for k, e := range w.episodes {
		if now.Sub(e.last) >= troubleQuiet && k != key {
			delete(w.episodes, k)
		}
	}
	e := w.episodes[key]
	if e != nil && now.Sub(e.last) < troubleQuiet {
		e.last = now
		e.repeats++
		w.mu.Unlock()
		if w.log.V(1).Enabled() {
			w.log.V(1).Info(msg, "trouble", string(kind), "peer", peer)
		}
		return
	}
	kv := []any{"warning", true, "trouble", string(kind), "peer", peer, "detail", msg,
		"repeatsNotLogged", fmt.Sprintf("until %s passes without one", troubleQuiet)}
	if e != nil {
		kv = append(kv, "lastEpisodeRepeats", e.repeats, "lastEpisodeLasted", e.last.Sub(e.since).Round(time.Second).String())
	}
	w.episodes[key] = &episode{since: now, last: now}
	w.mu.Unlock()
	w.log.Info(troubleMessages[kind], kv...)
}
