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
	"github.com/keyward/secrets/internal/refs"
)

// Fake is an in-memory KeyResolver. It holds copies of the values it is given,
// can fail or slow down on demand, and counts calls per ref. Refs take an
// optional "#field" to pick a key of a JSON value, like the document backends.
// The zero value is ready to use.
type Fake struct {
	mu      sync.Mutex
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

// Resolve implements secrets.KeyResolver.
func (f *Fake) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[ref]++
	f.total++
	latency, failAll := f.latency, f.failAll
	f.mu.Unlock()

	if err := ctx.Err(); err != nil {
		return secrets.Secret{}, err
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return secrets.Secret{}, ctx.Err()
		case <-t.C:
		}
	}
	if failAll != nil {
		return secrets.Secret{}, failAll
	}
	fail := func(code secrets.Code, reason string) error {
		return &secrets.Error{Op: "resolve", Backend: "fake", Ref: ref, Code: code, Reason: reason}
	}
	r, err := refs.Parse(ref)
	if err != nil {
		return secrets.Secret{}, fail(secrets.CodeInvalidRef, err.Error())
	}
	f.mu.Lock()
	s, ok := f.values[r.Path]
	injected := f.errs[r.Path]
	f.mu.Unlock()
	if injected != nil {
		return secrets.Secret{}, injected
	}
	if !ok {
		return secrets.Secret{}, fail(secrets.CodeNotFound, "no fake secret named "+r.Path+": call Fake.Set first")
	}
	value := s.Reveal()
	if r.Field != "" {
		v, err := refs.Field([]byte(value), r.Field)
		if err == refs.ErrNoField {
			return secrets.Secret{}, fail(secrets.CodeNotFound, err.Error())
		} else if err != nil {
			return secrets.Secret{}, fail(secrets.CodeInvalidRef, err.Error())
		}
		value = v
	}
	out := secrets.NewSecret(strings.Clone(value))
	out.Version, out.ExpiresAt = s.Version, s.ExpiresAt
	secrets.InfoFrom(ctx).SetBackend("fake")
	return out, nil
}
