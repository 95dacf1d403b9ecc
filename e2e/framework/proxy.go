package framework

import (
	"io"
	"net"
	"sync"
	"time"
)

// Balancer stands where a Service would in front of the manager's replicas:
// it listens on one loopback address and passes each TCP connection (TLS
// and all) to the next backend that accepts it, so that a replica that is
// down is skipped, as kube-proxy skips a pod that is not ready.
type Balancer struct {
	l        net.Listener
	backends []string
	mu       sync.Mutex
	next     int
	served   map[string]int
	conns    map[net.Conn]bool
	wg       sync.WaitGroup
}

// NewBalancer listens on addr and serves until Close.
func NewBalancer(addr string, backends ...string) (*Balancer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	b := &Balancer{l: l, backends: backends, served: map[string]int{}, conns: map[net.Conn]bool{}}
	b.wg.Go(b.serve)
	return b, nil
}

func (b *Balancer) serve() {
	for {
		c, err := b.l.Accept()
		if err != nil {
			return // closed
		}
		b.wg.Go(func() { b.pass(c) })
	}
}

// track keeps c until Close, or forgets it.
func (b *Balancer) track(c net.Conn, keep bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if keep {
		b.conns[c] = true
	} else {
		delete(b.conns, c)
	}
}

func (b *Balancer) pass(c net.Conn) {
	b.track(c, true)
	defer func() { c.Close(); b.track(c, false) }()
	b.mu.Lock()
	start := b.next
	b.next = (b.next + 1) % len(b.backends)
	b.mu.Unlock()
	for i := range b.backends {
		addr := b.backends[(start+i)%len(b.backends)]
		up, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		b.track(up, true)
		b.mu.Lock()
		b.served[addr]++
		b.mu.Unlock()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
		go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
		<-done
		up.Close()
		b.track(up, false)
		return
	}
}

// Served returns how many connections each backend took.
func (b *Balancer) Served() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.served))
	for k, v := range b.served {
		out[k] = v
	}
	return out
}

// Close stops listening and ends every connection it passed.
func (b *Balancer) Close() {
	b.l.Close()
	b.mu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
