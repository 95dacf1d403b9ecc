// Package dashboard is the web UI of `kubectl sluice dashboard`: a page
// served from assets embedded in the binary, the runs of a namespace, the
// selected run's graph redrawn as its tasks change, a task's details on a
// click, and a pipeline's runs compared. It reads through a Source, which
// the plugin backs with informers (watches) on the user's credentials; a
// change the informers see is pushed to every open page as a Server-Sent
// Event, and the page then reads what changed.
package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// ErrNotFound is what a Source returns for a run or task it does not have.
var ErrNotFound = errors.New("not found")

// Source is what the dashboard shows.
type Source interface {
	// Runs returns the namespace's runs, each with its tasks, as JSON.
	Runs(ctx context.Context) (any, error)
	// Graph writes the run's graph as SVG.
	Graph(ctx context.Context, run string, w io.Writer) error
	// Task returns one task's details (its status, events and the last
	// lines of its log), as JSON.
	Task(ctx context.Context, run, task string) (any, error)
}

// Server serves the dashboard.
type Server struct {
	src Source
	// namespace is the one the dashboard shows, for the page's title.
	namespace string
	// anyHost accepts requests for any Host; else only loopback names, so
	// that a web page elsewhere cannot reach the dashboard through DNS
	// rebinding and read the cluster with the user's credentials.
	anyHost bool
	// minGap is the least time between two change events to one page: a
	// run of thousands of tasks changing at once is drawn a few times a
	// second, not once per task.
	minGap time.Duration

	mu    sync.Mutex
	pages map[chan struct{}]bool
}

// New returns a dashboard of namespace ns reading src. With anyHost,
// requests naming any host are served (the dashboard listens beyond
// loopback).
func New(src Source, ns string, anyHost bool) *Server {
	return &Server{src: src, namespace: ns, anyHost: anyHost, minGap: 250 * time.Millisecond, pages: map[chan struct{}]bool{}}
}

// Changed tells every open page that something changed: call it from the
// informers' event handlers. It never blocks; changes coalesce.
func (s *Server) Changed() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.pages {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Handler is the dashboard's HTTP handler.
func (s *Server) Handler() http.Handler {
	static, _ := fs.Sub(assets, "assets")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(static))
	mux.HandleFunc("GET /api/runs", s.runs)
	mux.HandleFunc("GET /api/runs/{run}/graph.svg", s.graph)
	mux.HandleFunc("GET /api/runs/{run}/tasks/{task}", s.task)
	mux.HandleFunc("GET /api/changes", s.changes)
	return s.hostCheck(mux)
}

func (s *Server) hostCheck(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.anyHost && !loopbackHost(r.Host) {
			http.Error(w, fmt.Sprintf("dashboard: host %q refused: it serves loopback only; open it as http://127.0.0.1:PORT/ (or start it with --address)", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a request's Host names this machine.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	v, err := s.src.Runs(r.Context())
	w.Header().Set("X-Sluice-Namespace", s.namespace)
	writeJSON(w, v, err)
}

func (s *Server) task(w http.ResponseWriter, r *http.Request) {
	v, err := s.src.Task(r.Context(), r.PathValue("run"), r.PathValue("task"))
	writeJSON(w, v, err)
}

func (s *Server) graph(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	if err := s.src.Graph(r.Context(), r.PathValue("run"), &b); err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, b.String())
}

func writeJSON(w http.ResponseWriter, v any, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, ErrNotFound) {
		code = http.StatusNotFound
	}
	http.Error(w, err.Error(), code)
}

// changes streams a "change" event to the page whenever the cluster
// changed (and once at the start), as Server-Sent Events.
func (s *Server) changes(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan struct{}, 1)
	ch <- struct{}{}
	s.mu.Lock()
	s.pages[ch] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pages, ch)
		s.mu.Unlock()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	keepAlive := time.NewTicker(25 * time.Second)
	defer keepAlive.Stop()
	for n := 0; ; {
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			_, _ = io.WriteString(w, ": keep-alive\n\n")
		case <-ch:
			n++
			_, _ = fmt.Fprintf(w, "event: change\ndata: %d\n\n", n)
			flusher.Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(s.minGap):
			}
			continue
		}
		flusher.Flush()
	}
}
