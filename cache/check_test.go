package cache_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
)

// versioned is a refBackend that can tell an entry's current version without
// its value (secrets.VersionChecker), counting those checks per ref. checkErr
// makes every check fail; checkGate, while set, holds every check.
type versioned struct {
	*refBackend
	vmu       sync.Mutex
	checks    map[string]int
	checkErr  error
	checkGate chan struct{}
	noVersion map[string]bool // schemes whose checks are unsupported
}

var _ secrets.VersionChecker = (*versioned)(nil)

func newVersioned() *versioned {
	return &versioned{refBackend: newRefBackend(), checks: map[string]int{}}
}

func (v *versioned) CurrentVersion(ctx context.Context, ref string) (string, error) {
	v.vmu.Lock()
	v.checks[ref]++
	err, gate := v.checkErr, v.checkGate
	if scheme, _, _ := strings.Cut(ref, ":"); v.noVersion[scheme] {
		err = fmt.Errorf("the refs backend has no versions for %s: %w", scheme, errors.ErrUnsupported)
	}
	v.vmu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if err != nil {
		return "", err
	}
	v.mu.Lock()
	s, ok := v.vals[base(ref)]
	v.mu.Unlock()
	if !ok {
		return "", &secrets.Error{Op: "version", Backend: "refs", Ref: ref, Code: secrets.CodeNotFound, Reason: "no such entry"}
	}
	return s.Version, nil
}

// unsupported makes the checks of scheme's refs fail with ErrUnsupported.
func (v *versioned) unsupported(scheme string) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	if v.noVersion == nil {
		v.noVersion = map[string]bool{}
	}
	v.noVersion[scheme] = true
}

func (v *versioned) checksOf(ref string) int {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	return v.checks[ref]
}

func (v *versioned) failChecks(err error) {
	v.vmu.Lock()
	defer v.vmu.Unlock()
	v.checkErr = err
}

// holdChecks makes the checks from now on wait until release is called.
func (v *versioned) holdChecks() (release func()) {
	g := make(chan struct{})
	v.vmu.Lock()
	v.checkGate = g
	v.vmu.Unlock()
	return func() {
		v.vmu.Lock()
		v.checkGate = nil
		v.vmu.Unlock()
		close(g)
	}
}

// checkOptions: a long TTL, checks every 5 minutes, no refresh sweep, so the
// only background calls are the checks and what they start.
func checkOptions() cache.Options {
	return cache.Options{TTL: time.Hour, Jitter: -1, CheckInterval: 5 * time.Minute, LazyRefresh: true}
}

// step moves the clock past one check interval (and its bucket), resolves
// trigger (a hit that runs the sweep) and waits for what that started.
func step(t *testing.T, c *cache.Cache, clk *fakeClock, trigger string) {
	t.Helper()
	clk.Advance(5*time.Minute + time.Minute)
	if _, err := c.Resolve(context.Background(), trigger); err != nil {
		t.Fatal(err)
	}
	c.Quiesce()
}

func TestVersionCheck(t *testing.T) {
	b := newVersioned()
	v1, v2 := "sk-ant-test-v1-"+token(), "sk-ant-test-v2-"+token()
	b.set("awssm:bot", v1, "1")
	clk := newClock()
	c := newCache(t, b, clk, checkOptions())
	mustResolve(t, c, "awssm:bot", v1)
	mustResolve(t, c, "awssm:bot", v1) // hit since its fetch

	step(t, c, clk, "awssm:bot")
	if n := b.checksOf("awssm:bot"); n != 1 {
		t.Fatalf("%d version checks after one interval, want 1", n)
	}
	if n := b.callsOf("awssm:bot"); n != 1 {
		t.Fatalf("the same version was fetched again: %d calls", n)
	}

	b.set("awssm:bot", v2, "2") // rotated
	step(t, c, clk, "awssm:bot")
	if n := b.checksOf("awssm:bot"); n != 2 {
		t.Fatalf("%d version checks after two intervals, want 2", n)
	}
	misses := c.Stats().Misses
	mustResolve(t, c, "awssm:bot", v2) // refreshed in the background: a hit on the new value
	st := c.Stats()
	if st.Misses != misses {
		t.Fatal("the refresh after the changed version was not stored: the next resolve missed")
	}
	m := st.Backends["awssm"]
	if m.Calls["version"] != 2 || m.Calls["resolve"] != 2 || b.callsOf("awssm:bot") != 2 {
		t.Fatalf("meter %+v, backend %d resolves: want 2 version checks and 2 resolves", m, b.callsOf("awssm:bot"))
	}
	checkMeterConsistent(t, st, 0)
}

// An entry not hit since its last check costs no call; one without a
// Version is never checked.
func TestVersionCheckOnlyUsedEntries(t *testing.T) {
	b := newVersioned()
	for _, r := range []string{"awssm:idle", "awssm:hot"} {
		b.set(r, "sk-"+token(), "1")
	}
	b.set("awssm:noversion", "sk-"+token(), "")
	clk := newClock()
	c := newCache(t, b, clk, checkOptions())
	for _, r := range []string{"awssm:idle", "awssm:hot", "awssm:noversion", "awssm:noversion"} {
		c.Resolve(context.Background(), r)
	}
	for range 3 {
		step(t, c, clk, "awssm:hot") // awssm:hot is hit each interval, the others are not
	}
	if n := b.checksOf("awssm:hot"); n != 3 {
		t.Errorf("the entry hit every interval was checked %d times in 3 intervals, want 3", n)
	}
	if n := b.checksOf("awssm:idle"); n != 0 {
		t.Errorf("the entry not hit since its fetch was checked %d times", n)
	}
	if n := b.checksOf("awssm:noversion"); n != 0 {
		t.Errorf("the entry without a Version was checked %d times", n)
	}
	// Hit again, the idle entry is checked within two intervals.
	c.Resolve(context.Background(), "awssm:idle")
	step(t, c, clk, "awssm:hot")
	step(t, c, clk, "awssm:hot")
	if n := b.checksOf("awssm:idle"); n != 1 {
		t.Errorf("the entry hit again was checked %d times, want 1", n)
	}
}

// A scheme whose checks are unsupported is never checked again; other
// failures are ignored and the check is tried again next interval.
func TestVersionCheckFailures(t *testing.T) {
	b := newVersioned()
	refs := []string{"awssm:a", "awssm:b", "vault:a"}
	for _, r := range refs {
		b.set(r, "sk-"+token(), "1")
	}
	clk := newClock()
	c := newCache(t, b, clk, checkOptions())
	interval := func() { // every entry hit, then one interval passes
		for _, r := range refs {
			c.Resolve(context.Background(), r)
		}
		step(t, c, clk, "vault:a")
	}
	for _, r := range refs {
		c.Resolve(context.Background(), r) // fetched: the first checks are due one interval on
	}
	b.failChecks(&secrets.Error{Op: "version", Backend: "refs", Code: secrets.CodeUnavailable, Reason: "down"})
	interval()
	interval()
	if n := b.checksOf("awssm:a"); n != 2 {
		t.Fatalf("after failed checks, %d checks in 2 intervals, want 2 (a failure is retried next interval)", n)
	}
	if _, err := c.Resolve(context.Background(), "awssm:a"); err != nil || b.callsOf("awssm:a") != 1 {
		t.Fatalf("after failed checks: %v, %d fetches; want the cached value (a failed check drops nothing)", err, b.callsOf("awssm:a"))
	}
	b.failChecks(nil)
	b.unsupported("awssm")
	interval() // awssm:a and awssm:b learn that awssm cannot be checked
	for range 3 {
		interval()
	}
	if a, bb := b.checksOf("awssm:a"), b.checksOf("awssm:b"); a != 3 || bb != 3 {
		t.Fatalf("after ErrUnsupported: awssm:a and awssm:b checked %d and %d times, want 3 each (no more)", a, bb)
	}
	if n := b.checksOf("vault:a"); n != 6 {
		t.Fatalf("the other scheme was checked %d times in 6 intervals, want 6", n)
	}
	// A new entry of the scheme is not checked either.
	b.set("awssm:c", "sk-"+token(), "1")
	c.Resolve(context.Background(), "awssm:c")
	refs = append(refs, "awssm:c")
	interval()
	if n := b.checksOf("awssm:c"); n != 0 {
		t.Fatalf("a new entry of a scheme that refused checks was checked %d times", n)
	}
}

// A check never stores over an Invalidate, and never blocks a hit.
func TestVersionCheckAfterInvalidate(t *testing.T) {
	b := newVersioned()
	v1, v2 := "sk-ant-test-v1-"+token(), "sk-ant-test-v2-"+token()
	b.set("awssm:bot", v1, "1")
	b.set("awssm:other", "sk-"+token(), "1")
	clk := newClock()
	c := newCache(t, b, clk, checkOptions())
	mustResolve(t, c, "awssm:bot", v1)
	mustResolve(t, c, "awssm:bot", v1)
	c.Resolve(context.Background(), "awssm:other")
	release := b.holdChecks()
	clk.Advance(6 * time.Minute)
	mustResolve(t, c, "awssm:bot", v1) // starts the check, which is held
	waitFor(t, "the check", func() bool { return b.checksOf("awssm:bot") == 1 })
	mustResolve(t, c, "awssm:bot", v1) // a hit does not wait for the check
	b.set("awssm:bot", v2, "2")
	c.Invalidate("awssm:bot")
	release()
	c.Quiesce()
	if n := b.callsOf("awssm:bot"); n != 1 {
		t.Fatalf("the check of an invalidated entry started a fetch: %d calls", n)
	}
	if c.Len() != 1 {
		t.Fatalf("the cache holds %d refs, want only awssm:other", c.Len())
	}
	mustResolve(t, c, "awssm:bot", v2)
}

// Checks never keep a value past its ExpiresAt (nor its TTL), and a value
// whose refresh fails after its version changed is dropped, not served.
func TestVersionCheckBounds(t *testing.T) {
	t.Run("ExpiresAt", func(t *testing.T) {
		b := newVersioned()
		clk := newClock()
		s := secrets.NewSecret("sk-" + token())
		b.set("awssm:bot", s.Reveal(), "1")
		b.mu.Lock()
		e := b.vals["awssm:bot"]
		e.ExpiresAt = clk.Now().Add(8 * time.Minute)
		b.vals["awssm:bot"] = e
		b.mu.Unlock()
		c := newCache(t, b, clk, checkOptions())
		c.Resolve(context.Background(), "awssm:bot")
		c.Resolve(context.Background(), "awssm:bot")
		step(t, c, clk, "awssm:bot") // +6m: checked, the same
		if n := b.checksOf("awssm:bot"); n != 1 {
			t.Fatalf("%d checks, want 1", n)
		}
		clk.Advance(3 * time.Minute) // +9m: past ExpiresAt
		c.Resolve(context.Background(), "awssm:bot")
		if n := b.callsOf("awssm:bot"); n != 2 {
			t.Fatalf("a value past its ExpiresAt was served after a check: %d fetches, want 2", n)
		}
	})
	t.Run("refresh-fails", func(t *testing.T) {
		b := newVersioned()
		b.set("awssm:bot", "sk-"+token(), "1")
		clk := newClock()
		c := newCache(t, b, clk, checkOptions())
		c.Resolve(context.Background(), "awssm:bot")
		c.Resolve(context.Background(), "awssm:bot")
		b.set("awssm:bot", "sk-"+token(), "2") // rotated, and then the backend fails
		b.failResolves(unavailable("awssm:bot"))
		step(t, c, clk, "awssm:bot")
		if n := b.checksOf("awssm:bot"); n != 1 {
			t.Fatalf("%d checks, want 1", n)
		}
		if c.Len() != 0 {
			t.Fatal("the value was kept after its version changed and the refresh failed")
		}
		_, err := c.Resolve(context.Background(), "awssm:bot")
		wantCode(t, err, secrets.ErrUnavailable) // the replaced value is not served stale
	})
}

// Without a VersionChecker beneath, CheckInterval changes nothing.
func TestVersionCheckWithoutChecker(t *testing.T) {
	b := newRefBackend()
	b.set("awssm:bot", "sk-"+token(), "1")
	clk := newClock()
	c := newCache(t, b, clk, checkOptions())
	c.Resolve(context.Background(), "awssm:bot")
	step(t, c, clk, "awssm:bot")
	if st := c.Stats(); st.BackendCalls != 1 || st.Backends["awssm"].Calls["version"] != 0 {
		t.Fatalf("Stats = %+v, want the one fetch", st)
	}
}

func TestCheckParam(t *testing.T) {
	for in, want := range map[string]time.Duration{"5m": 5 * time.Minute, "0": -1, "1h": time.Hour} {
		o, err := cache.ParseParams(url.Values{"check": {in}})
		if err != nil || o.CheckInterval != want {
			t.Errorf("check=%s: %v, %v; want %v", in, o, err, want)
		}
	}
	for _, bad := range []string{"-1m", "often", "9000h"} {
		if _, err := cache.ParseParams(url.Values{"check": {bad}}); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("check=%s: %v, want ErrInvalidRef", bad, err)
		}
	}
}
