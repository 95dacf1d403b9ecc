package dashboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeSource holds one run, "r", with one task, "a".
type fakeSource struct{}

func (fakeSource) Runs(context.Context) (any, error) {
	return []map[string]string{{"run": "r"}}, nil
}

func (fakeSource) Graph(_ context.Context, run string, w io.Writer) error {
	if run != "r" {
		return fmt.Errorf("%w: no run %q", ErrNotFound, run)
	}
	_, err := io.WriteString(w, `<svg xmlns="http://www.w3.org/2000/svg"><g class="task" data-task="a"/></svg>`)
	return err
}

func (fakeSource) Task(_ context.Context, run, task string) (any, error) {
	if run != "r" || task != "a" {
		return nil, fmt.Errorf("%w: no task %q in run %q", ErrNotFound, task, run)
	}
	return map[string]string{"task": "a"}, nil
}

func get(t *testing.T, h http.Handler, host, path string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Host = host
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServer(t *testing.T) {
	h := New(fakeSource{}, "ml", false).Handler()
	cases := []struct {
		host, path string
		code       int
		body, typ  string
	}{
		{"127.0.0.1:8765", "/", 200, "<title>sluice dashboard</title>", "text/html"},
		{"localhost:8765", "/app.js", 200, "EventSource", "text/javascript"},
		{"[::1]:8765", "/api/runs", 200, `[{"run":"r"}]`, "application/json"},
		{"127.0.0.1:8765", "/api/runs/r/graph.svg", 200, `data-task="a"`, "image/svg+xml"},
		{"127.0.0.1:8765", "/api/runs/nope/graph.svg", 404, `no run "nope"`, ""},
		{"127.0.0.1:8765", "/api/runs/r/tasks/a", 200, `{"task":"a"}`, "application/json"},
		{"127.0.0.1:8765", "/api/runs/r/tasks/b", 404, `no task "b"`, ""},
		// A page elsewhere that rebinds its name to 127.0.0.1 is refused.
		{"evil.example:8765", "/api/runs", 403, "serves loopback only", ""},
	}
	for _, tc := range cases {
		rec := get(t, h, tc.host, tc.path)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.body) || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.typ) {
			t.Errorf("GET %s (Host %s): %d %q, %s; want %d with %q, %s", tc.path, tc.host, rec.Code, rec.Body.String(), rec.Header().Get("Content-Type"), tc.code, tc.body, tc.typ)
		}
	}
	if rec := get(t, h, "127.0.0.1:1", "/api/runs"); rec.Header().Get("X-Sluice-Namespace") != "ml" {
		t.Errorf("runs: X-Sluice-Namespace %q, want ml", rec.Header().Get("X-Sluice-Namespace"))
	}
	if rec := get(t, New(fakeSource{}, "ml", true).Handler(), "dashboard.example:80", "/api/runs"); rec.Code != 200 {
		t.Errorf("with any host allowed: %d", rec.Code)
	}
}

// TestChanges: a page gets a change event when it connects and after the
// cluster changed; many changes at once come as one event.
func TestChanges(t *testing.T) {
	s := New(fakeSource{}, "ml", false)
	s.minGap = 50 * time.Millisecond
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/changes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- data
			}
		}
		close(events)
	}()
	next := func() string {
		select {
		case e := <-events:
			return e
		case <-time.After(5 * time.Second):
			return "none"
		}
	}
	if e := next(); e != "1" {
		t.Fatalf("first event %q, want 1 on connecting", e)
	}
	for !subscribed(s) {
		time.Sleep(time.Millisecond)
	}
	for range 100 {
		s.Changed()
	}
	if e := next(); e != "2" {
		t.Fatalf("event after 100 changes %q, want 2", e)
	}
	select {
	case e := <-events:
		t.Errorf("a third event %q for changes already sent", e)
	case <-time.After(300 * time.Millisecond):
	}
}

func subscribed(s *Server) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pages) > 0
}
