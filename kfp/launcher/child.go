package launcher

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

// runChild runs the component and gives its exit code, 128+N when signal N
// killed it, as a shell reports it. The launcher is the container's first
// process, which alone receives the kubelet's SIGTERM: every signal on
// l.Signals is passed on to the component while it runs.
func (l *Launcher) runChild(argv []string) (int, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = l.Stdin, l.Stdout, l.Stderr
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting the component: %w", err)
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for {
			select {
			case sig := <-l.Signals:
				_ = cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	<-forwarded
	if cmd.ProcessState == nil {
		return 0, fmt.Errorf("waiting for the component: %w", err)
	}
	return exitCode(cmd.ProcessState), nil
}

func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
