package cache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// coarseClock is the hit path's clock: an atomic read instead of time.Now.
// It holds no reference to the Cache, so an unclosed, unreachable Cache can
// still stop it (runtime.AddCleanup in startClock).
type coarseClock struct {
	nanos    atomic.Int64
	stop     chan struct{}
	stopOnce sync.Once
}

// startClock starts the coarse clock on the first miss (New starts nothing).
func (c *Cache) startClock() {
	if c.clk == nil {
		return
	}
	c.clockOnce.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		clk, res, wg := c.clk, c.o.ClockResolution, c.wg
		clk.nanos.Store(time.Now().UnixNano())
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(res)
			defer t.Stop()
			for {
				select {
				case <-clk.stop:
					return
				case <-t.C:
					// time.Now, not the tick's time: a late tick must not set the clock back.
					clk.nanos.Store(time.Now().UnixNano())
				}
			}
		}()
		runtime.AddCleanup(c, func(clk *coarseClock) { clk.stopOnce.Do(func() { close(clk.stop) }) }, clk)
	})
}

// stripes spreads the hit counters over cache lines so that parallel hits do
// not fight over one line. A power of two.
const (
	stripesLog2 = 3
	stripes     = 1 << stripesLog2
)

// stripedCounter is a counter whose increments pick a stripe by the address
// of the caller's stack frame: goroutine stacks are distinct allocations, so
// concurrent goroutines mostly keep to different stripes, at the cost of a
// multiply. (A random draw per hit, math/rand/v2, cost more than the rest of
// the hit path.) Collisions are harmless: the stripes are atomic.
type stripedCounter struct {
	s [stripes]struct {
		n atomic.Uint64
		_ [120]byte // two cache lines apart: adjacent-line prefetch
	}
}

func (c *stripedCounter) inc() {
	var frame byte
	h := uint64(uintptr(unsafe.Pointer(&frame))>>12) * 0x9E3779B97F4A7C15
	c.s[h>>(64-stripesLog2)].n.Add(1)
}

func (c *stripedCounter) load() uint64 {
	var n uint64
	for i := range c.s {
		n += c.s[i].n.Load()
	}
	return n
}
