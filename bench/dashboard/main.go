// Command dashboard measures the dashboard with a run of 1 -> N -> 1 steps
// (N=1000 by default) in headless Chromium: the graph's layout and SVG on
// the server, the first draw, and, for rounds of changes to a fifth of the
// steps, the time from the change to the page showing it (the change event,
// the page reading the runs and the graph, and its redraw). It prints its
// figures and asserts nothing. No cluster is needed: the runs come from a
// source in memory, served by the dashboard's own server.
//
//	go run ./bench/dashboard -n 1000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sluice-dev/sluice/dashboard"
	"github.com/sluice-dev/sluice/draw"
)

// fan is a run of 1 -> n -> 1 steps whose phases the bench changes.
type fan struct {
	mu  sync.Mutex
	run draw.Run
}

func newFan(n int) *fan {
	r := draw.Run{Namespace: "bench", Name: "fan", Outcome: "Running"}
	r.Tasks = append(r.Tasks, draw.Task{Name: "start", Phase: "Succeeded"})
	var shards []string
	for i := range n {
		name := fmt.Sprintf("shard-%04d", i)
		shards = append(shards, name)
		r.Tasks = append(r.Tasks, draw.Task{Name: name, Phase: "Running", Upstreams: []string{"start"}})
	}
	r.Tasks = append(r.Tasks, draw.Task{Name: "join", Phase: "Waiting", Upstreams: shards, When: "true"})
	return &fan{run: r}
}

func (f *fan) Runs(context.Context) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	phases := map[string]int{}
	tasks := make([]map[string]string, len(f.run.Tasks))
	for i, t := range f.run.Tasks {
		phases[t.Phase]++
		tasks[i] = map[string]string{"task": t.Name, "phase": t.Phase}
	}
	return []map[string]any{{"namespace": "bench", "run": "fan", "pipeline": "bench", "outcome": "Running", "phases": phases, "tasks": tasks}}, nil
}

func (f *fan) Graph(_ context.Context, _ string, w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return draw.SVG(w, f.run)
}

func (f *fan) Task(context.Context, string, string) (any, error) {
	return nil, dashboard.ErrNotFound
}

// succeed marks the next k running shards Succeeded and returns how many
// steps have succeeded.
func (f *fan) succeed(k int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	done := 0
	for i := range f.run.Tasks {
		t := &f.run.Tasks[i]
		if t.Phase == "Running" && k > 0 {
			t.Phase, k = "Succeeded", k-1
		}
		if t.Phase == "Succeeded" {
			done++
		}
	}
	return done
}

func main() {
	n := flag.Int("n", 1000, "steps in the fan-out")
	rounds := flag.Int("rounds", 5, "rounds of changes, each to n/5 steps")
	flag.Parse()
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/dashboard:", err)
		os.Exit(1)
	}
}

func run(n, rounds int) error {
	f := newFan(n)
	// The server's part of a redraw: layout and SVG of the whole graph.
	const renders = 20
	start := time.Now()
	var size int
	for range renders {
		var b countingWriter
		if err := f.Graph(context.Background(), "fan", &b); err != nil {
			return err
		}
		size = int(b)
	}
	perRender := time.Since(start) / renders

	srv := dashboard.New(f, "bench", false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(ln, srv.Handler()) }()
	url := "http://" + ln.Addr().String() + "/#run=fan"

	path, err := exec.LookPath("chromium")
	if err != nil {
		return fmt.Errorf("no chromium: apt-get install chromium (%w)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	total := n + 2
	start = time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(url),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelectorAll("#graph g.task").length === %d`, total), chromedp.WithPollingTimeout(time.Minute))); err != nil {
		return err
	}
	first := time.Since(start)
	var changes []time.Duration
	for range rounds {
		done := f.succeed(n / 5)
		start := time.Now()
		srv.Changed()
		err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](
			fmt.Sprintf(`document.querySelectorAll('#graph g.task[data-phase="Succeeded"]').length === %d`, done),
			chromedp.WithPollingInterval(5*time.Millisecond), chromedp.WithPollingTimeout(time.Minute)))
		if err != nil {
			return err
		}
		changes = append(changes, time.Since(start))
	}
	drawMs, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("graph").dataset.drawMs`))
	if err != nil {
		return err
	}
	slices.Sort(changes)
	fmt.Printf("dashboard, a run of 1 -> %d -> 1 (%d steps) in headless Chromium:\n", n, total)
	fmt.Printf("  server: layout + SVG of the graph   %s (%d KB)\n", perRender.Round(10*time.Microsecond), size/1024)
	fmt.Printf("  page: open to graph drawn           %s\n", first.Round(time.Millisecond))
	fmt.Printf("  page: change to redrawn (%d rounds)  median %s, max %s\n", rounds, changes[len(changes)/2].Round(time.Millisecond), changes[len(changes)-1].Round(time.Millisecond))
	fmt.Printf("  page: last SVG inserted into the DOM in %s ms\n", drawMs)
	return nil
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
