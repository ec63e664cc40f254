package cache

import (
	"math"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

// With the real clock the lock-free path reads a coarse clock that may lag;
// it must hand over to the precise clock a guard's width before ExpiresAt,
// and no deadline may pass ExpiresAt. (Waiting for a real expiry would need
// a sleep; the deadlines are what decide it.)
func TestDeadlinesRespectExpiresAt(t *testing.T) {
	for _, fake := range []bool{false, true} {
		o := &Options{TTL: 5 * time.Minute, StaleGrace: time.Hour}
		if fake {
			o.Now = time.Now
		}
		c := New(new(secretstest.Fake), o)
		now := time.Now()
		for _, in := range []time.Duration{500 * time.Millisecond, 10 * time.Second, 4 * time.Minute, time.Hour} {
			s := secrets.NewSecret("sk-test")
			s.ExpiresAt = now.Add(in)
			v := c.newValue(s, nil, now.UnixNano())
			hard := s.ExpiresAt.UnixNano()
			if v.hardExpiry != hard || v.freshUntil > hard || v.staleUntil > hard || v.refreshAt > v.freshUntil {
				t.Errorf("ExpiresAt in %v: deadlines fresh %d stale %d refresh %d (ns after now) pass it at %d", in, v.freshUntil-now.UnixNano(), v.staleUntil-now.UnixNano(), v.refreshAt-now.UnixNano(), hard-now.UnixNano())
			}
			if !fake && v.fastUntil > hard-int64(expiryGuard) {
				t.Errorf("ExpiresAt in %v, coarse clock: the lock-free path answers until %v before it, want at least %v",
					in, time.Duration(hard-v.fastUntil), expiryGuard)
			}
		}
		c.Close()
	}
}

func TestBackoffIsCapped(t *testing.T) {
	c := New(new(secretstest.Fake), &Options{MinBackoff: time.Second, MaxBackoff: 30 * time.Second})
	defer c.Close()
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := c.backoff(int32(i + 1)); got != w {
			t.Errorf("backoff after %d failures = %v, want %v", i+1, got, w)
		}
	}
	if got := c.backoff(1 << 30); got != 30*time.Second {
		t.Errorf("backoff after many failures = %v, want the cap", got)
	}
}

// The longest MaxBackoff must not overflow the doubling into a negative wait
// (which retried a down backend on every resolve), nor the retry time.
func TestBackoffDoesNotOverflow(t *testing.T) {
	c := New(new(secretstest.Fake), &Options{MinBackoff: time.Second, MaxBackoff: math.MaxInt64})
	defer c.Close()
	prev := time.Duration(0)
	for f := int32(1); f < 100; f++ {
		d := c.backoff(f)
		if d < prev || d <= 0 {
			t.Fatalf("backoff after %d failures = %v, after %d it was %v: it must grow to the cap, never wrap", f, d, f-1, prev)
		}
		prev = d
	}
}

// Options out of range are clamped to what the cache can honour.
func TestOptionsAreClamped(t *testing.T) {
	o := normalise(Options{ClockResolution: time.Hour, Size: math.MaxInt})
	if o.ClockResolution != maxResolution || o.Size != MaxSize {
		t.Fatalf("normalise kept ClockResolution %v and Size %d; want %v and %d", o.ClockResolution, o.Size, maxResolution, MaxSize)
	}
}
