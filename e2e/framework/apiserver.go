package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// RestartAPIServer kills the cluster's kube-apiserver abruptly (SIGKILL, as
// a crashed or replaced control-plane host would), keeps it down for down,
// and has kwokctl start it again with its own flags; it returns once the
// API server is ready, and how long it was unavailable.
func (c *Cluster) RestartAPIServer(ctx context.Context, down time.Duration) (time.Duration, error) {
	pidfile := filepath.Join(c.stateDir, "clusters", ClusterName, "pids", "kube-apiserver.pid")
	pid, err := readPID(pidfile)
	if err != nil {
		return 0, err
	}
	outage()
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("killing kube-apiserver (pid %d): %w", pid, err)
	}
	// Until it is ready again its authorizer may refuse what RBAC allows
	// (its informers have not synced): refusals then are no missing rule.
	c.mu.Lock()
	c.restarts = append(c.restarts, window{from: killed, to: time.Now().Add(time.Hour)})
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.restarts[len(c.restarts)-1].to = time.Now()
		c.mu.Unlock()
	}()
	// It is dead once it is gone or a zombie; kwokctl takes a zombie for a
	// live process (it only sends it signal 0), so the pidfile goes too
	// and kwokctl starts a new one.
	if err := wait.PollUntilContextTimeout(ctx, Interval, time.Minute, true, func(context.Context) (bool, error) { return !alive(pid), nil }); err != nil {
		return 0, fmt.Errorf("kube-apiserver (pid %d) still running after SIGKILL: %w", pid, err)
	}
	if err := os.Remove(pidfile); err != nil {
		return 0, err
	}
	select {
	case <-time.After(down - time.Since(killed)):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	root := RepoRoot()
	start := exec.CommandContext(ctx, filepath.Join(root, "bin", "kwokctl"), "--name", ClusterName, "start", "cluster")
	start.Env = append(os.Environ(), "KWOK_WORKDIR="+c.stateDir, "KWOK_KUBECTL_BINARY="+filepath.Join(root, "bin", "kubectl"))
	if out, err := start.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("kwokctl start cluster: %w\n%s", err, out)
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return 0, err
	}
	if err := wait.PollUntilContextTimeout(ctx, Interval, time.Minute, true, func(ctx context.Context) (bool, error) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").Timeout(5 * time.Second).DoRaw(ctx)
		return err == nil && string(body) == "ok", nil
	}); err != nil {
		return 0, fmt.Errorf("kube-apiserver not ready after kwokctl started it (log: %s): %w",
			filepath.Join(c.stateDir, "clusters", ClusterName, "logs", "kube-apiserver.log"), err)
	}
	return time.Since(killed), nil
}

func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	}
	return pid, nil
}

// alive says whether pid is a process that has not exited: one that is
// gone, or a zombie waiting to be reaped, is not.
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	state := s[i+2]
	return state != 'Z' && state != 'X'
}

// window is a span of time.
type window struct{ from, to time.Time }

// RefusalsOf returns p's refused requests (Process.Refusals) except those
// logged while the API server was restarting.
func (c *Cluster) RefusalsOf(p *Process) ([]string, error) {
	lines, err := p.Refusals()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	restarts := slices.Clone(c.restarts)
	c.mu.Unlock()
	return slices.DeleteFunc(lines, func(line string) bool {
		at, ok := klogTime(line)
		return ok && slices.ContainsFunc(restarts, func(w window) bool { return !at.Before(w.from) && !at.After(w.to) })
	}), nil
}

// klogTime reads the time of a klog line ("E1202 14:06:27.894633 ..."), of
// this year, in local time as klog writes it.
func klogTime(line string) (time.Time, bool) {
	if len(line) < 21 || !strings.ContainsRune("IWEF", rune(line[0])) {
		return time.Time{}, false
	}
	at, err := time.ParseInLocation("0102 15:04:05.000000", line[1:21], time.Local)
	if err != nil {
		return time.Time{}, false
	}
	return at.AddDate(time.Now().Year(), 0, 0), true
}
