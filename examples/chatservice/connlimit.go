package main

import (
	clist "container/list"
	"net"
	"net/http"
	"sync"
)

// connLimiter caps the connections the server holds at once, and those of
// one client. Idle keep-alive connections do not hold their slot against a
// newcomer: when the cap is reached, the oldest idle one is closed to make
// room (as nginx reuses keep-alive connections), so a client that parks
// connections cannot starve the others or the orchestrator's probes. Only
// when every connection is busy does a newcomer wait in the kernel's
// backlog; busy ones end within the read and write timeouts.
//
// Its ConnState is the server's ConnState hook.
type connLimiter struct {
	net.Listener
	max, perClient int
	exempt         func(net.Addr) bool // trusted proxies: many clients behind one address

	mu       sync.Mutex
	freed    *sync.Cond
	open     map[net.Conn]string // conn -> its client's key
	idle     *clist.List         // of net.Conn, oldest first
	idleAt   map[net.Conn]*clist.Element
	byClient map[string]int
	closed   bool
}

func newConnLimiter(ln net.Listener, max, perClient int, exempt func(net.Addr) bool) *connLimiter {
	l := &connLimiter{Listener: ln, max: max, perClient: perClient, exempt: exempt,
		open: map[net.Conn]string{}, byClient: map[string]int{}, idle: clist.New(), idleAt: map[net.Conn]*clist.Element{}}
	l.freed = sync.NewCond(&l.mu)
	return l
}

// Accept returns the next connection once there is room for it.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := ""
		if !l.exempt(c.RemoteAddr()) {
			key = rateKey(addrOf(c.RemoteAddr().String()))
		}
		l.mu.Lock()
		if key != "" && l.byClient[key] >= l.perClient {
			// Over its own share: refused at once, never queued, so one
			// client cannot fill the backlog either.
			l.mu.Unlock()
			c.Close()
			continue
		}
		for len(l.open) >= l.max && !l.closed {
			if front := l.idle.Front(); front != nil {
				oldest := front.Value.(net.Conn)
				l.dropIdle(oldest)
				// Its StateClosed frees the slot.
				oldest.Close()
			}
			l.freed.Wait()
		}
		if l.closed {
			l.mu.Unlock()
			c.Close()
			return nil, net.ErrClosed
		}
		l.open[c] = key
		if key != "" {
			l.byClient[key]++
		}
		l.mu.Unlock()
		return c, nil
	}
}

// ConnState tracks which connections are idle and frees the slot of a
// closed one.
func (l *connLimiter) ConnState(c net.Conn, state http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropIdle(c)
	switch state {
	case http.StateIdle:
		if _, ok := l.open[c]; ok {
			l.idleAt[c] = l.idle.PushBack(c)
		}
	case http.StateClosed, http.StateHijacked:
		if key, ok := l.open[c]; ok {
			delete(l.open, c)
			if key != "" {
				if l.byClient[key]--; l.byClient[key] <= 0 {
					delete(l.byClient, key)
				}
			}
			l.freed.Broadcast()
		}
	}
}

func (l *connLimiter) dropIdle(c net.Conn) {
	if e, ok := l.idleAt[c]; ok {
		l.idle.Remove(e)
		delete(l.idleAt, c)
	}
}

// Close closes the listener and wakes an Accept waiting for room.
func (l *connLimiter) Close() error {
	l.mu.Lock()
	l.closed = true
	l.freed.Broadcast()
	l.mu.Unlock()
	return l.Listener.Close()
}

// activeForTest is how many connections hold a slot and are not idle.
func (l *connLimiter) activeForTest() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.open) - l.idle.Len()
}
