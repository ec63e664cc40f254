// Package secretstest helps test code that uses keyward: a Fake resolver for
// host applications' tests, and RunConformance, the suite every keyward
// backend and decorator passes.
package secretstest

import (
	"context"
	"strings"
	"sync"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// Fake is an in-memory KeyResolver. It holds copies of the values it is given,
// can fail or slow down on demand, and counts calls per ref. Refs take an
// optional "#field" to pick a key of a JSON value, like the document backends.
// The zero value is ready to use. It is served through the driver layer, so
// its errors follow the same rules as every backend's (Backend "fake"); it
// reports each secret's ExpiresAt but judges it only after SetClock, so a
// test's fake clock decides what has expired.
type Fake struct {
	coreOnce sync.Once
	core     *driver.Resolver

	mu      sync.Mutex
	now     func() time.Time
	values  map[string]secrets.Secret
	errs    map[string]error
	failAll error
	latency time.Duration
	calls   map[string]int
	total   int
}

var _ secrets.KeyResolver = (*Fake)(nil)

// Set stores value under name (replacing an injected error for it) and returns its ref.
func (f *Fake) Set(name, value string) string {
	return f.SetSecret(name, secrets.NewSecret(value))
}

// SetSecret stores s under name, with its Version and ExpiresAt.
func (f *Fake) SetSecret(name string, s secrets.Secret) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.values == nil {
		f.values = map[string]secrets.Secret{}
	}
	// strings.Clone: the fake must not share memory with the caller's value.
	v := secrets.NewSecret(strings.Clone(s.Reveal()))
	v.Version, v.ExpiresAt = s.Version, s.ExpiresAt
	f.values[name] = v
	delete(f.errs, name)
	return name
}

// Delete removes name.
func (f *Fake) Delete(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.values, name)
}

// Fail makes every resolve of name return err until Set or Fail(name, nil).
func (f *Fake) Fail(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.errs == nil {
		f.errs = map[string]error{}
	}
	if err == nil {
		delete(f.errs, name)
		return
	}
	f.errs[name] = err
}

// FailAll makes every resolve return err (a backend outage); nil ends it.
func (f *Fake) FailAll(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAll = err
}

// SetLatency makes every resolve wait d (or until its ctx is done).
func (f *Fake) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// Calls returns how many times ref was resolved.
func (f *Fake) Calls(ref string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[ref]
}

// TotalCalls returns how many resolves the fake has answered or failed.
func (f *Fake) TotalCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// SetClock makes the fake refuse, with ErrExpired, a secret whose ExpiresAt
// is not after now(), as a backend that enforces expiry does. nil turns it off.
func (f *Fake) SetClock(now func() time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = now
}

func (f *Fake) clock() time.Time {
	f.mu.Lock()
	now := f.now
	f.mu.Unlock()
	if now == nil {
		return time.Time{} // before every ExpiresAt: nothing has expired
	}
	return now()
}

// Resolve implements secrets.KeyResolver.
func (f *Fake) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[ref]++
	f.total++
	f.mu.Unlock()
	f.coreOnce.Do(func() {
		f.core = driver.New("fake", fakeDriver{f}, &driver.Options{Now: f.clock})
	})
	return f.core.Resolve(ctx, ref)
}

// fakeDriver is the Fake's driver: it returns copies, never the stored bytes.
type fakeDriver struct{ f *Fake }

func (d fakeDriver) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	f := d.f
	f.mu.Lock()
	latency, failAll := f.latency, f.failAll
	s, ok := f.values[ref.Name]
	injected := f.errs[ref.Name]
	f.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return driver.Value{}, ctx.Err()
		case <-t.C:
		}
	}
	if failAll != nil {
		return driver.Value{}, failAll
	}
	if injected != nil {
		return driver.Value{}, injected
	}
	if !ok {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no fake secret named %s: call Fake.Set first", ref.Name)
	}
	return driver.Value{Data: strings.Clone(s.Reveal()), Version: s.Version, ExpiresAt: s.ExpiresAt}, nil
}
