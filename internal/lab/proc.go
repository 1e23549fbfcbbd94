package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Proc is a long-running process the lab started in a host's namespace.
type Proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	// graceful processes are stopped with SIGTERM by Close: they have children of their own to stop.
	graceful bool

	done chan struct{} // closed once the process is reaped; err is set then
	err  error
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log is the path of the file that receives its stdout and stderr.
func (p *Proc) Log() string { return p.log }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signalling %s (%d): %w", p.name, p.Pid(), err)
	}
	return nil
}

// Kill kills the process and the rest of its process group with SIGKILL. It does not wait: see Wait.
func (p *Proc) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("killing %s (%d): %w", p.name, p.Pid(), err)
	}
	return nil
}

// Wait waits for the process to exit and returns how it exited (nil for status 0). It may be called any number of
// times, from any goroutine.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited tells whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// LogTail is the end of the process's log, for error messages.
func (p *Proc) LogTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return tail(b)
}

// Start starts argv as a long-running process in h's namespace (`ip netns exec`, which execs argv in place, so
// Pid is argv's). env is added to this process's environment. stdout and stderr are appended to
// <Logs>/<name>.log. The process leads a process group of its own, is killed with SIGKILL should this process
// die, and is killed by Close.
func (l *Lab) Start(h *Host, name string, env []string, argv ...string) (*Proc, error) {
	return l.start(h, name, env, false, argv...)
}

// StartNetOnly is Start entering only h's network namespace (nsenter --net), not `ip netns exec`, which also
// remounts /sys for the namespace: runc, started by a containerd in h, needs the host's cgroup mounts under
// /sys/fs/cgroup, which that remount hides.
func (l *Lab) StartNetOnly(h *Host, name string, env []string, argv ...string) (*Proc, error) {
	return l.startWith(h, name, env, false,
		append([]string{"nsenter", "--net=" + filepath.Join(netnsDir, h.NS), "--"}, argv...)...)
}

// start is Start; graceful processes get SIGTERM when this process dies and from Close, instead of SIGKILL.
func (l *Lab) start(h *Host, name string, env []string, graceful bool, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("starting a process: no command")
	}
	return l.startWith(h, name, env, graceful, append([]string{"ip", "netns", "exec", h.NS}, argv...)...)
}

// startWith starts argv, a command that enters h's namespace and executes the process in place.
func (l *Lab) startWith(h *Host, name string, env []string, graceful bool, argv ...string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, errors.New("starting a process: no command")
	}
	if strings.ContainsAny(name, "/") || name == "" {
		return nil, fmt.Errorf("process name %q: want a file name", name)
	}
	logPath := filepath.Join(l.Logs, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the log of %s: %w", name, err)
	}
	defer f.Close() // the child has its own copy
	fmt.Fprintf(f, "=== lab: %s: starting in %s (%s): %s\n", time.Now().Format(time.RFC3339Nano), h.Name, h.NS,
		strings.Join(argv, " "))

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	deathSig := syscall.SIGKILL
	if graceful {
		deathSig = syscall.SIGTERM
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: deathSig}
	p := &Proc{name: name, cmd: cmd, log: logPath, graceful: graceful, done: make(chan struct{})}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("starting %s: the lab is closed", name)
	}
	if err := l.spawner.start(cmd); err != nil {
		return nil, fmt.Errorf("starting %s in %s: %w", name, h.Name, err)
	}
	l.procs = append(l.procs, p)
	go func() { // owned by p; Close waits for done
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.log.V(1).Info("started process", "process", name, "host", h.Name, "pid", p.Pid(), "log", logPath)
	return p, nil
}

// spawner starts processes from one OS thread that lives as long as the lab. The kernel sends a child its
// parent-death signal when the thread that forked it exits, not the process; Go ends threads (for example those
// that Host.Do switched into a namespace), so children are forked from a thread that no goroutine can end.
type spawner struct {
	reqs chan spawnRequest
	done chan struct{}
}

type spawnRequest struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnRequest), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	defer close(s.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for r := range s.reqs {
		r.err <- r.cmd.Start()
	}
}

func (s *spawner) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	s.reqs <- spawnRequest{cmd: cmd, err: errc}
	return <-errc
}

// stop ends the spawner once its children are gone; no start may follow.
func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}
