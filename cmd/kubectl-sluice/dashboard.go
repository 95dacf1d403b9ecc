package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sluice-dev/sluice/annotations"
	"github.com/sluice-dev/sluice/dashboard"
	"github.com/sluice-dev/sluice/draw"
)

// logTail is how many lines of a step's log the dashboard shows.
const logTail = 40

func newDashboardCommand(kube *genericclioptions.ConfigFlags) *cobra.Command {
	var port int
	var address string
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a web page of the namespace's runs, their graphs live, and a pipeline's runs compared",
		Long: `dashboard serves a web page on this machine (127.0.0.1 unless --address
says otherwise) and prints its URL. It reads the cluster with your
credentials, through watches: a step's color changes as it runs and
finishes. The page shows the namespace's runs, the selected run's graph
(phases as colors; a conditional step's border dashed, a skipped one struck
through), a step's phase, reason, results, events and last log lines on a
click, and the runs of the selected run's pipeline compared: outcome,
duration and every result, as a table and a plot per value. Nothing is
installed in the cluster; Ctrl-C stops it.`,
		Example: `  kubectl sluice dashboard -n ml
  kubectl sluice dashboard --port 8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveDashboard(cmd.Context(), kube, cmd.OutOrStdout(), address, port)
		},
	}
	cmd.Flags().IntVar(&port, "port", 8765, "the port to listen on (0: any free one)")
	cmd.Flags().StringVar(&address, "address", "127.0.0.1", "the address to listen on; other than loopback, anyone who reaches it reads the cluster as you")
	return cmd
}

func serveDashboard(ctx context.Context, kube *genericclioptions.ConfigFlags, w io.Writer, address string, port int) error {
	cfg, ns, err := kubeconfig(kube)
	if err != nil {
		return err
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	// A plain read first: a refusal or an unreachable cluster is one clear
	// error here, where informers would retry in silence.
	for _, list := range []client.ObjectList{&batchv1.JobList{}, &corev1.PodList{}} {
		if err := direct.List(ctx, list, client.InNamespace(ns), client.Limit(1)); err != nil {
			return fmt.Errorf("reading namespace %s: %w", ns, err)
		}
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	hasRun, _ := labels.NewRequirement(annotations.RunLabel, selection.Exists, nil)
	steps := cache.ByObject{Label: labels.NewSelector().Add(*hasRun)}
	c, err := cache.New(cfg, cache.Options{
		Scheme:            scheme.Scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		ByObject:          map[client.Object]cache.ByObject{&batchv1.Job{}: steps, &corev1.Pod{}: steps},
	})
	if err != nil {
		return err
	}
	src := &clusterSource{cache: c, direct: direct, cs: cs, ns: ns}
	srv := dashboard.New(src, ns, !net.ParseIP(address).IsLoopback() && address != "localhost")
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			return err
		}
		changed := func(any) { srv.Changed() }
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc: changed, UpdateFunc: func(any, any) { srv.Changed() }, DeleteFunc: changed,
		}); err != nil {
			return err
		}
	}
	go func() { _ = c.Start(ctx) }()
	syncCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(syncCtx) {
		return fmt.Errorf("watching the Jobs and Pods of namespace %s: not in sync after a minute", ns)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(address, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("dashboard: %w (--port picks another port)", err)
	}
	server := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shut, done := context.WithTimeout(context.Background(), 2*time.Second)
		defer done()
		_ = server.Shutdown(shut)
	}()
	fmt.Fprintf(w, "sluice dashboard of namespace %s: http://%s/ (Ctrl-C stops it)\n", ns, ln.Addr())
	if err := server.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// clusterSource is the dashboard's view of one namespace: runs and graphs
// from the informers' cache, a task's events and log from the API server
// when a page asks for them.
type clusterSource struct {
	cache  client.Reader
	direct client.Reader
	cs     kubernetes.Interface
	ns     string
}

func (s *clusterSource) Runs(ctx context.Context) (any, error) {
	runs, err := readRuns(ctx, s.cache, s.ns, "", time.Now())
	if runs == nil {
		runs = []*runStatus{}
	}
	return runs, err
}

func (s *clusterSource) run(ctx context.Context, run string) (*runStatus, error) {
	runs, err := readRuns(ctx, s.cache, s.ns, run, time.Now())
	switch {
	case err != nil:
		return nil, err
	case len(runs) == 0:
		return nil, fmt.Errorf("%w: %v", dashboard.ErrNotFound, noRun(run, s.ns))
	}
	return runs[0], nil
}

func (s *clusterSource) Graph(ctx context.Context, run string, w io.Writer) error {
	rs, err := s.run(ctx, run)
	if err != nil {
		return err
	}
	return draw.SVG(w, drawing(rs))
}

// taskDetails is what the page shows of a step.
type taskDetails struct {
	Task     taskStatus    `json:"task"`
	Events   []eventDetail `json:"events"`
	Log      string        `json:"log,omitempty"`
	LogError string        `json:"logError,omitempty"`
}

type eventDetail struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Object  string `json:"object"`
	Last    string `json:"last,omitempty"`
}

func (s *clusterSource) Task(ctx context.Context, run, task string) (any, error) {
	rs, err := s.run(ctx, run)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(rs.Tasks, func(t taskStatus) bool { return t.Task == task })
	if i < 0 {
		return nil, fmt.Errorf("%w: run %s has no task %q", dashboard.ErrNotFound, run, task)
	}
	d := taskDetails{Task: rs.Tasks[i], Events: []eventDetail{}}
	// The task's object's events, and its pods' (the scheduler's, the
	// kubelet's), newest last.
	involved := []string{d.Task.object}
	var pods corev1.PodList
	podsErr := s.cache.List(ctx, &pods, client.InNamespace(s.ns), client.MatchingLabels{annotations.RunLabel: run, annotations.TaskLabel: task})
	steps := make([]*corev1.Pod, len(pods.Items))
	for i := range pods.Items {
		steps[i] = &pods.Items[i]
		if name := pods.Items[i].Name; name != d.Task.object {
			involved = append(involved, name)
		}
	}
	for _, name := range involved {
		var evs corev1.EventList
		sel := fields.OneTermEqualSelector("involvedObject.name", name)
		if err := s.direct.List(ctx, &evs, client.InNamespace(s.ns), client.MatchingFieldsSelector{Selector: sel}); err != nil {
			d.Events = append(d.Events, eventDetail{Type: "Error", Reason: "NotRead", Message: err.Error(), Object: name})
			continue
		}
		for _, e := range evs.Items {
			d.Events = append(d.Events, eventDetail{Type: e.Type, Reason: e.Reason, Message: e.Message, Object: e.InvolvedObject.Kind + "/" + name, Last: lastSeen(e).Format(time.RFC3339)})
		}
	}
	slices.SortStableFunc(d.Events, func(a, b eventDetail) int { return strings.Compare(a.Last, b.Last) })
	// The log of its newest pod, read from the pods the cache gave.
	var log strings.Builder
	switch {
	case podsErr != nil:
		d.LogError = podsErr.Error()
	case len(steps) == 0:
		d.LogError = fmt.Sprintf("task %q of run %s has no pod (yet)", task, run)
	default:
		if err := podLogs(ctx, s.cs, &log, newest(steps), logsOptions{tail: logTail}); err != nil {
			d.LogError = err.Error()
		}
	}
	d.Log = log.String()
	return d, nil
}

// lastSeen is when an event last happened, whichever API wrote it.
func lastSeen(e corev1.Event) time.Time {
	for _, t := range []metav1.Time{e.LastTimestamp, {Time: e.EventTime.Time}, e.FirstTimestamp, e.CreationTimestamp} {
		if !t.IsZero() {
			return t.Time
		}
	}
	return time.Time{}
}
