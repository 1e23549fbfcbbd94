package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// schedSample is what the scheduler says of a process at one moment: the CPU time its threads have run, and the
// time they have waited on a run queue, runnable but not running (/proc/PID/task/*/schedstat), summed.
type schedSample struct {
	at         time.Time
	run, delay time.Duration
}

// schedSampler samples the speakers', the test process's and the host's scheduling every interval, to tell a
// client-side outage that a speaker caused (it did not run: CPU contention, a stop) from one the network or the
// client caused.
type schedSampler struct {
	mu      sync.Mutex
	procs   map[string]int // name to pid
	samples map[string][]schedSample
	busy    []hostBusy
	cancel  context.CancelFunc
	done    chan struct{}
}

// hostBusy is the share of the host's CPU time that was busy over the interval ending at at.
type hostBusy struct {
	at    time.Time
	share float64
}

func newSchedSampler(c *cluster, every time.Duration) *schedSampler {
	s := &schedSampler{procs: map[string]int{"test": os.Getpid()}, samples: map[string][]schedSample{}, done: make(chan struct{})}
	for n, p := range c.speaker {
		s.procs[n] = p.Pid()
	}
	ctx, cancel := context.WithCancel(c.ctx)
	s.cancel = cancel
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		lastBusy, lastTotal := hostCPU()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				s.mu.Lock()
				for name, pid := range s.procs {
					if run, delay, err := procSched(pid); err == nil {
						s.samples[name] = append(s.samples[name], schedSample{at: now, run: run, delay: delay})
					}
				}
				busy, total := hostCPU()
				if total > lastTotal {
					s.busy = append(s.busy, hostBusy{at: now, share: float64(busy-lastBusy) / float64(total-lastTotal)})
				}
				lastBusy, lastTotal = busy, total
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *schedSampler) stop() {
	s.cancel()
	<-s.done
}

// around describes the interval [from, until]: per process, the CPU it ran and the time it waited to run, and the
// host's busiest share, each over the sampling intervals that overlap it.
func (s *schedSampler) around(from, until time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.samples {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		ss := s.samples[n]
		i := sort.Search(len(ss), func(i int) bool { return !ss[i].at.Before(from) })
		j := sort.Search(len(ss), func(i int) bool { return ss[i].at.After(until) })
		if i == 0 || j >= len(ss) {
			continue
		}
		// From the sample before from to the sample after until.
		a, b := ss[i-1], ss[j]
		parts = append(parts, fmt.Sprintf("%s ran %.0f ms, waited to run %.0f ms", n, ms(b.run-a.run), ms(b.delay-a.delay)))
	}
	top := 0.0
	for _, h := range s.busy {
		if !h.at.Before(from) && !h.at.After(until.Add(100*time.Millisecond)) {
			top = max(top, h.share)
		}
	}
	return fmt.Sprintf("over %.0f ms: %s; host CPU busy up to %.0f %%", ms(until.Sub(from)), strings.Join(parts, "; "), 100*top)
}

// procSched sums the run and run-queue wait times of every thread of pid.
func procSched(pid int) (run, delay time.Duration, err error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, 0, fmt.Errorf("no threads of %d: %v", pid, err)
	}
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue // the thread ended
		}
		f := strings.Fields(string(raw))
		if len(f) < 2 {
			continue
		}
		r, _ := strconv.ParseInt(f[0], 10, 64)
		d, _ := strconv.ParseInt(f[1], 10, 64)
		run += time.Duration(r)
		delay += time.Duration(d)
	}
	return run, delay, nil
}

// hostCPU returns the host's busy and total CPU time in USER_HZ ticks (/proc/stat).
func hostCPU() (busy, total int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}
