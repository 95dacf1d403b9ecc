// Command suite is `make bench`: sluice's speed and scale benchmarks, side by
// side with ideal drivers. It prints a markdown table and writes
// bench/out/results.json, which maps each benchmark to each contender's
// makespan in seconds (and a few more figures under keys of their own).
//
//	make dev-up && go run ./bench/suite [-only chain50,fan1000,runs100,admission] [-scale large]
//	make bench-peers   # Argo Workflows' controller on chain50 and fan1000 (-contenders argo-default,argo-best -merge)
//
// The pipeline benchmarks run on the local cluster (`make dev-up`) with
// zero-duration simulated steps on its kwok nodes; the admission benchmark
// needs no cluster. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// results maps benchmark -> key -> value: contenders' makespans in seconds,
// and figures such as "sluice-jobs/release-p99-ms" beside them.
type results map[string]map[string]float64

func (r results) set(bench, key string, v float64) {
	if r[bench] == nil {
		r[bench] = map[string]float64{}
	}
	r[bench][key] = v
}

// clear drops a contender's figures from a benchmark: its makespan and the
// keys under "name/".
func (r results) clear(bench, name string) {
	for key := range r[bench] {
		if key == name || strings.HasPrefix(key, name+"/") {
			delete(r[bench], key)
		}
	}
}

func main() {
	var (
		only, scale, out, kubeconfig, stateDir string
		onlyContenders, argoController         string
		admissionFor                           time.Duration
		merge                                  bool
	)
	// Only the bench's own flags: libraries register some of theirs (kubeconfig).
	flag.CommandLine = flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	flag.StringVar(&only, "only", "chain50,fan1000,runs100,admission", "benchmarks to run, comma-separated")
	flag.StringVar(&onlyContenders, "contenders", "", "contenders to run, comma-separated (default: every one that applies)")
	flag.StringVar(&scale, "scale", envOr("BENCH_SCALE", "default"), "default or large (fan1000 becomes 1 -> 10,000 -> 1); also BENCH_SCALE")
	flag.StringVar(&out, "out", filepath.Join("bench", "out", "results.json"), "where the results go")
	flag.StringVar(&kubeconfig, "kubeconfig", filepath.Join(".kwok", "kubeconfig"), "the local cluster's kubeconfig (make dev-up)")
	flag.StringVar(&stateDir, "state-dir", ".kwok", "the local cluster's state directory, for its processes' pids")
	flag.DurationVar(&admissionFor, "admission-duration", 3*time.Second, "how long each admission measurement runs")
	flag.StringVar(&argoController, "argo-controller", filepath.Join("bin", "argo-workflow-controller"), "Argo Workflows' workflow-controller, for the argo-* contenders (make bench-peers builds it)")
	flag.BoolVar(&merge, "merge", false, "keep the figures already in -out that this run does not measure (make bench-peers)")
	flag.Parse()
	if scale != "default" && scale != "large" {
		fail(fmt.Errorf("-scale %q: expected default or large", scale))
	}
	ctrllog.SetLogger(logr.Discard()) // the webhook server's request logs would drown the figures
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	res := results{}
	if merge {
		if data, err := os.ReadFile(out); err == nil {
			if err := json.Unmarshal(data, &res); err != nil {
				fail(fmt.Errorf("-merge: %s: %w", out, err))
			}
		} else if !os.IsNotExist(err) {
			fail(err)
		}
	}
	selected := strings.Split(only, ",")
	known := []string{"chain50", "fan1000", "runs100", "admission"}
	for _, s := range selected {
		if !slices.Contains(known, s) {
			fail(fmt.Errorf("-only: unknown benchmark %q (known: %s)", s, strings.Join(known, ", ")))
		}
	}
	var cl *cluster
	if slices.ContainsFunc(selected, func(s string) bool { return s != "admission" }) {
		var err error
		if cl, err = connect(kubeconfig, stateDir); err != nil {
			fail(err)
		}
		cl.argo = &argoPeer{binary: argoController}
	}
	for _, name := range selected {
		start := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", name)
		var table string
		var err error
		switch name {
		case "admission":
			table, err = runAdmission(ctx, res, admissionFor)
		default:
			table, err = runPipelines(ctx, cl, res, name, scale, onlyContenders)
		}
		if err != nil {
			fail(fmt.Errorf("%s: %w", name, err))
		}
		fmt.Fprintf(os.Stderr, "bench: %s took %s\n", name, time.Since(start).Round(time.Second))
		// Each table as soon as it is measured, and the file kept current,
		// so that a long run shows its figures on the way.
		fmt.Println(table)
		if err := write(out, res); err != nil {
			fail(err)
		}
	}
	fmt.Fprintln(os.Stderr, "bench: wrote", out)
}

func write(out string, res results) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(data, '\n'), 0o644)
}

func runAdmission(ctx context.Context, res results, d time.Duration) (string, error) {
	b := admissionBench{runTasks: 10_000, concurrency: []int{1, 8, 32}, duration: d}
	rows, err := b.run(ctx)
	if err != nil {
		return "", err
	}
	floor := map[int]admissionResult{}
	for _, r := range rows {
		if r.Endpoint == "/noop" {
			floor[r.Concurrency] = r
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "### admission: AdmissionReview over TLS on loopback, run of %d tasks\n\n", b.runTasks)
	sb.WriteString("| endpoint | concurrency | requests | p50 ms | p99 ms | req/s | p99 / floor | req/s / floor |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		f := floor[r.Concurrency]
		fmt.Fprintf(&sb, "| %s | %d | %d | %.3f | %.3f | %.0f | %.2f | %.2f |\n", r.Endpoint, r.Concurrency, r.Requests,
			r.P50ms, r.P99ms, r.PerSecond, r.P99ms/f.P99ms, r.PerSecond/f.PerSecond)
		key := fmt.Sprintf("%s/c%d", strings.TrimPrefix(r.Endpoint, "/"), r.Concurrency)
		res.set("admission", key+"/p50-ms", r.P50ms)
		res.set("admission", key+"/p99-ms", r.P99ms)
		res.set("admission", key+"/per-second", r.PerSecond)
	}
	return sb.String(), nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
