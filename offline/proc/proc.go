// Package proc starts and stops the child processes of the offline system
// (DynamoDB Local, moto_server, Pebble, pebble-challtestsrv, the Step
// Functions host, the system itself under `certflow-local demo`). Every
// child runs in a process group of its own and is stopped the same way:
// SIGTERM to the group, then SIGKILL after a grace period. Nothing else is
// ever signalled: a Process only signals the group it started.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is a started child process.
type Process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	stop sync.Once
}

// Start starts cmd as a process group of its own, so that stopping it stops
// what it spawned (java, node), and so that it dies with this process
// (Pdeathsig). name is used in errors and reports.
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Name is the name given to Start.
func (p *Process) Name() string { return p.name }

// PID is the process ID (also its process group ID).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group, waits up to grace for the
// process to exit, then sends SIGKILL to the group and waits. Stopping a
// stopped process does nothing.
func (p *Process) Stop(grace time.Duration) {
	if p == nil {
		return
	}
	p.stop.Do(func() {
		pid := p.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-p.done:
			return
		case <-time.After(grace):
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	})
}

// Signal sends sig to the process group (SIGSTOP and SIGCONT freeze and
// thaw a component in fault-injection runs).
func (p *Process) Signal(sig syscall.Signal) error {
	if ok, _ := p.Exited(); ok {
		return fmt.Errorf("signal %s: %s has exited", sig, p.name)
	}
	return syscall.Kill(-p.cmd.Process.Pid, sig)
}

// WaitReady polls check every 100 ms until it succeeds, the process exits
// or timeout (or ctx) ends.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if done, err := p.Exited(); done {
			return fmt.Errorf("%s exited before it was ready: %v", p.name, err)
		}
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", p.name, timeout, errors.Join(last, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TCPReady succeeds once addr accepts connections.
func TCPReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// FreeUDPAndTCPPort returns a port free for both UDP and TCP (DNS needs
// both).
func FreeUDPAndTCPPort() (int, error) {
	for range 20 {
		port, err := FreePort()
		if err != nil {
			return 0, err
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u.Close()
		return port, nil
	}
	return 0, errors.New("find a free port for DNS: none free for both TCP and UDP")
}

// PortOrFree returns port, or a free one when port is 0.
func PortOrFree(port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	return FreePort()
}
