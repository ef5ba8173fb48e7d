// Background processes inside a namespace.
//
// Start runs `ip netns exec <ns> <program>`; ip switches namespace and execs
// the program in place, so the process we hold is the program itself and
// signals reach it directly. One goroutine waits for it and records how it
// ended; Stop, Kill and Wait all work from that record.

package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
const stopGrace = 5 * time.Second

// Proc is a program running in a namespace.
type Proc struct {
	ns   *NS
	cmd  *exec.Cmd
	desc string
	log  *os.File
	done chan struct{}
	err  error // how it ended; valid once done is closed
}

// Start runs a program in the background inside the namespace, with its
// standard output and error appended to logPath ("" discards them). When ctx
// ends, the program gets SIGTERM, then SIGKILL after 5s.
func (n *NS) Start(ctx context.Context, logPath string, name string, args ...string) (*Proc, error) {
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("netns %s: closed", n.Name)
	}
	p := &Proc{ns: n, desc: strings.Join(append([]string{name}, args...), " "), done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	// Files, not writers: a pipe would make Wait wait for every child that
	// inherited it. Without a log the output goes to /dev/null.
	if logPath != "" {
		f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("netns %s: log for %s: %w", n.Name, name, err)
		}
		p.log = f
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	p.cmd = cmd
	if err := cmd.Start(); err != nil {
		if p.log != nil {
			p.log.Close()
		}
		return nil, fmt.Errorf("netns %s: start %s: %w", n.Name, p.desc, err)
	}
	n.mu.Lock()
	n.procs[p] = struct{}{}
	n.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		if p.log != nil {
			p.log.Close()
		}
		n.mu.Lock()
		delete(n.procs, p)
		n.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// Pid is the program's process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the program has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the program to exit and returns how it ended (nil for exit
// status 0).
func (p *Proc) Wait() error {
	<-p.done
	if p.err != nil {
		return fmt.Errorf("netns %s: %s: %w", p.ns.Name, p.desc, p.err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the program to exit.
func (p *Proc) Kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return nil
}

// Stop sends SIGTERM, waits up to 5s, then sends SIGKILL. It returns nil when
// the program exited cleanly or because of our SIGTERM, the exit error when
// it failed on its own, and an error when it had to be killed.
func (p *Proc) Stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.exitErr()
	case <-time.After(stopGrace):
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return fmt.Errorf("netns %s: %s ignored SIGTERM for %v and was killed", p.ns.Name, p.desc, stopGrace)
}

// exitErr is the ending, with death by SIGTERM counted as a clean stop.
func (p *Proc) exitErr() error {
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	if p.err != nil {
		return fmt.Errorf("netns %s: %s: %w", p.ns.Name, p.desc, p.err)
	}
	return nil
}
