// Package once opens a thing on first use, the way every keyward backend and
// the configured stack need it: callers that arrive while an open is under
// way share it, each waiting on its own ctx; a failed open is returned to the
// callers that shared it and tried again by the next call; an open that
// fails only because its caller's ctx ended is not anyone else's failure;
// Close marks it closed and closes what an open still under way produces.
package once

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("closed")

// Value opens a T with Open on first use. The zero Value is not usable; set
// Open. CloseFunc, if set, closes a T that was opened.
type Value[T any] struct {
	Open      func(ctx context.Context) (T, error)
	CloseFunc func(T) error

	v          atomic.Pointer[T]
	closedFast atomic.Bool // closed, readable without the lock

	mu      sync.Mutex
	attempt *attempt[T]
	closed  bool
}

type attempt[T any] struct {
	done chan struct{} // closed when v and err are set
	v    T
	err  error
}

// Loaded returns the opened T, if an open has succeeded (even after Close,
// so that a backend's own operations can report what they find).
func (o *Value[T]) Loaded() (T, bool) {
	if p := o.v.Load(); p != nil {
		return *p, true
	}
	var zero T
	return zero, false
}

// Get returns the opened T, opening it on the caller's ctx if no open has
// succeeded yet. It returns ctx.Err() if ctx ends while it waits, ErrClosed
// after Close, and otherwise what Open returned.
func (o *Value[T]) Get(ctx context.Context) (T, error) {
	var zero T
	for {
		if o.closedFast.Load() {
			return zero, ErrClosed
		}
		if p := o.v.Load(); p != nil {
			return *p, nil
		}
		if err := ctx.Err(); err != nil {
			return zero, err
		}
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return zero, ErrClosed
		}
		if p := o.v.Load(); p != nil {
			o.mu.Unlock()
			return *p, nil
		}
		if a := o.attempt; a != nil {
			o.mu.Unlock()
			select {
			case <-a.done:
			case <-ctx.Done():
				return zero, ctx.Err()
			}
			// The opener's own cancellation is not this caller's failure.
			if a.err != nil && (errors.Is(a.err, context.Canceled) || errors.Is(a.err, context.DeadlineExceeded)) {
				continue
			}
			return a.v, a.err
		}
		a := &attempt[T]{done: make(chan struct{})}
		o.attempt = a
		o.mu.Unlock()

		a.v, a.err = o.Open(ctx)

		o.mu.Lock()
		o.attempt = nil
		if a.err == nil {
			if o.closed {
				// Closed while opening: close what was opened, outside the lock.
				if o.CloseFunc != nil {
					defer o.CloseFunc(a.v)
				}
				a.v, a.err = zero, ErrClosed
			} else {
				v := a.v
				o.v.Store(&v)
			}
		}
		close(a.done)
		o.mu.Unlock()
		return a.v, a.err
	}
}

// Closed reports whether Close was called.
func (o *Value[T]) Closed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// Close marks o closed and closes the opened T, if any. It is idempotent:
// only the first call closes.
func (o *Value[T]) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	o.closed = true
	o.closedFast.Store(true)
	o.mu.Unlock()
	if p := o.v.Load(); p != nil && o.CloseFunc != nil {
		return o.CloseFunc(*p)
	}
	return nil
}
