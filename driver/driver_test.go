package driver_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// mapDriver is a Driver over a map, counting Gets and GetManys.
type mapDriver struct {
	mu      sync.Mutex
	values  map[string]driver.Value
	gets    atomic.Int64
	batches atomic.Int64
	closed  atomic.Int64
	getErr  error
	block   chan struct{} // when set, Get waits for it or ctx
}

func (m *mapDriver) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	m.gets.Add(1)
	if m.block != nil {
		select {
		case <-m.block:
		case <-ctx.Done():
			return driver.Value{}, ctx.Err()
		}
	}
	if m.getErr != nil {
		return driver.Value{}, m.getErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.values[ref.Name]
	if !ok {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no secret named %s", ref.Name)
	}
	return v, nil
}

func (m *mapDriver) Close() error { m.closed.Add(1); return nil }

type batchDriver struct{ *mapDriver }

func (b batchDriver) GetMany(ctx context.Context, refs []driver.Ref) ([]driver.Value, []error, error) {
	b.batches.Add(1)
	vals := make([]driver.Value, len(refs))
	errs := make([]error, len(refs))
	for i, r := range refs {
		if r.Field != "" {
			return nil, nil, fmt.Errorf("core passed a #field to the batch")
		}
		b.mu.Lock()
		v, ok := b.values[r.Name]
		b.mu.Unlock()
		if !ok {
			errs[i] = driver.Errorf(secrets.CodeNotFound, "no secret named %s", r.Name)
			continue
		}
		vals[i] = v
	}
	return vals, errs, nil
}

func newMap() *mapDriver {
	return &mapDriver{values: map[string]driver.Value{
		"plain": {Data: "sk-plain", Version: "v1"},
		"doc":   {Data: `{"api_key":"sk-doc","n":3}`},
		"vdoc":  {Document: map[string]any{"api_key": "sk-vdoc", "n": 3.0}},
		"old":   {Data: "sk-old", ExpiresAt: time.Unix(1000, 0)},
	}}
}

func wantErr(t *testing.T, err error, code secrets.Code, backend, ref string) *secrets.Error {
	t.Helper()
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *secrets.Error", err, err)
	}
	if !errors.Is(err, code) || e.Code != code {
		t.Fatalf("error %v: code %v, want %v", err, e.Code, code)
	}
	if e.Backend != backend || e.Ref != ref || e.Op == "" {
		t.Fatalf("error %v: Op %q Backend %q Ref %q, want backend %q ref %q", err, e.Op, e.Backend, e.Ref, backend, ref)
	}
	return e
}

func TestResolveRules(t *testing.T) {
	now := time.Unix(2000, 0)
	r := driver.New("test", newMap(), &driver.Options{Params: []string{"version"}, Now: func() time.Time { return now }})
	ctx := context.Background()

	s, err := r.Resolve(ctx, "plain")
	if err != nil || s.Reveal() != "sk-plain" || s.Version != "v1" {
		t.Fatalf("plain: %q %q %v", s.Reveal(), s.Version, err)
	}
	for _, ref := range []string{"doc#api_key", "vdoc#api_key"} {
		if s, err := r.Resolve(ctx, ref); err != nil || !strings.HasPrefix(s.Reveal(), "sk-") {
			t.Fatalf("%s: %v", ref, err)
		}
	}
	if s, err := r.Resolve(ctx, "vdoc#n"); err != nil || s.Reveal() != "3" {
		t.Fatalf("vdoc#n: %q %v", s.Reveal(), err)
	}
	wantErr(t, must(r.Resolve(ctx, "doc#nope")), secrets.CodeNotFound, "test", "doc#nope")
	wantErr(t, must(r.Resolve(ctx, "vdoc#nope")), secrets.CodeNotFound, "test", "vdoc#nope")
	e := wantErr(t, must(r.Resolve(ctx, "plain#f")), secrets.CodeInvalidRef, "test", "plain#f")
	if strings.Contains(e.Error(), "sk-plain") {
		t.Fatal("the #field error quotes the value")
	}
	wantErr(t, must(r.Resolve(ctx, "missing")), secrets.CodeNotFound, "test", "missing")
	wantErr(t, must(r.Resolve(ctx, "plain?stage=x")), secrets.CodeInvalidRef, "test", "plain?stage=x")
	wantErr(t, must(r.Resolve(ctx, "")), secrets.CodeInvalidRef, "test", "")
	if _, err := r.Resolve(ctx, "plain?version=2"); err != nil {
		t.Fatalf("declared option refused: %v", err)
	}
	wantErr(t, must(r.Resolve(ctx, "old")), secrets.CodeExpired, "test", "old")
}

func must(_ secrets.Secret, err error) error { return err }

func TestContextRule(t *testing.T) {
	m := newMap()
	m.block = make(chan struct{})
	r := driver.New("test", m, nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := must(r.Resolve(ctx, "plain"))
	e := wantErr(t, err, secrets.CodeUnknown, "test", "plain")
	if !errors.Is(err, context.Canceled) || e.Op != "resolve" {
		t.Fatalf("canceled before the call: %v", err)
	}

	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	err = must(r.Resolve(dctx, "plain")) // blocks in Get until the deadline
	wantErr(t, err, secrets.CodeUnavailable, "test", "plain")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline during the call: %v", err)
	}

	// A driver's own timeout with a live caller ctx is unavailable.
	m2 := newMap()
	m2.getErr = fmt.Errorf("client: %w", context.DeadlineExceeded)
	err = must(driver.New("test", m2, nil).Resolve(context.Background(), "plain"))
	wantErr(t, err, secrets.CodeUnavailable, "test", "plain")
}

func TestErrorText(t *testing.T) {
	m := newMap()
	m.getErr = errors.New("upstream said: value=sk-canary-123")
	err := must(driver.New("test", m, nil).Resolve(context.Background(), "plain"))
	wantErr(t, err, secrets.CodeUnknown, "test", "plain")
	if strings.Contains(err.Error(), "sk-canary") {
		t.Fatalf("an unclassified error's text was kept: %v", err)
	}
	// A driver's *Error has Op, Backend and Ref overwritten, always.
	m.getErr = &secrets.Error{Op: "login", Backend: "other", Ref: "x", Code: secrets.CodePermission, Reason: "denied"}
	err = must(driver.New("test", m, nil).Resolve(context.Background(), "plain"))
	e := wantErr(t, err, secrets.CodePermission, "test", "plain")
	if e.Op != "resolve" || e.Reason != "denied" {
		t.Fatalf("Op %q Reason %q", e.Op, e.Reason)
	}
	// The driver's own error value is not modified.
	if m.getErr.(*secrets.Error).Backend != "other" {
		t.Fatal("the core modified the driver's error in place")
	}
}

func TestResolveManyShape(t *testing.T) {
	for _, batch := range []bool{false, true} {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) {
			m := newMap()
			var d driver.Driver = m
			if batch {
				d = batchDriver{m}
			}
			r := driver.New("test", d, nil)
			refs := []string{"doc#api_key", "missing", "", "doc#n", "plain", "doc#api_key"}
			out, err := r.ResolveMany(context.Background(), refs)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != len(refs) {
				t.Fatalf("%d results for %d refs", len(out), len(refs))
			}
			for i, res := range out {
				if res.Ref != refs[i] {
					t.Fatalf("result %d is for %q, want %q", i, res.Ref, refs[i])
				}
			}
			if out[0].Secret.Reveal() != "sk-doc" || out[3].Secret.Reveal() != "3" || out[4].Secret.Reveal() != "sk-plain" || out[5].Secret.Reveal() != "sk-doc" {
				t.Fatalf("values wrong: %v", out)
			}
			wantErr(t, out[1].Err, secrets.CodeNotFound, "test", "missing")
			wantErr(t, out[2].Err, secrets.CodeInvalidRef, "test", "")
			// doc, missing and plain: three distinct secrets.
			if batch {
				if m.batches.Load() != 1 || m.gets.Load() != 0 {
					t.Fatalf("batch: %d batches %d gets", m.batches.Load(), m.gets.Load())
				}
			} else if m.gets.Load() != 3 {
				t.Fatalf("%d gets for 3 distinct secrets", m.gets.Load())
			}
		})
	}
}

func TestResolveManyWholeFailure(t *testing.T) {
	r := driver.Open("test", func(context.Context) (driver.Driver, error) {
		return nil, driver.Errorf(secrets.CodePermission, "no credentials: set TEST_TOKEN")
	}, nil)
	refs := []string{"a", "?bad", "b"}
	out, err := r.ResolveMany(context.Background(), refs)
	if len(out) != 3 {
		t.Fatalf("%d results", len(out))
	}
	wantErr(t, err, secrets.CodePermission, "test", "")
	wantErr(t, out[0].Err, secrets.CodePermission, "test", "a")
	wantErr(t, out[1].Err, secrets.CodeInvalidRef, "test", "?bad")
	wantErr(t, out[2].Err, secrets.CodePermission, "test", "b")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, err = driver.New("test", newMap(), nil).ResolveMany(ctx, refs)
	if len(out) != 3 || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %d results, %v", len(out), err)
	}
	for _, res := range out {
		if !errors.Is(res.Err, context.Canceled) {
			t.Fatalf("result %q: %v", res.Ref, res.Err)
		}
	}
}

func TestLazyOpenAndClose(t *testing.T) {
	var opens atomic.Int64
	m := newMap()
	fail := atomic.Bool{}
	fail.Store(true)
	r := driver.Open("test", func(ctx context.Context) (driver.Driver, error) {
		opens.Add(1)
		if fail.Load() {
			return nil, driver.Errorf(secrets.CodeUnavailable, "server down")
		}
		return m, nil
	}, nil)
	if opens.Load() != 0 {
		t.Fatal("Open did I/O")
	}
	wantErr(t, must(r.Resolve(context.Background(), "plain")), secrets.CodeUnavailable, "test", "plain")
	fail.Store(false)
	if _, err := r.Resolve(context.Background(), "plain"); err != nil {
		t.Fatalf("the open was not retried: %v", err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.Resolve(context.Background(), "plain"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if opens.Load() != 2 {
		t.Fatalf("%d opens, want 2 (one failed, one kept)", opens.Load())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if m.closed.Load() != 1 {
		t.Fatalf("driver closed %d times", m.closed.Load())
	}
	wantErr(t, must(r.Resolve(context.Background(), "plain")), secrets.CodeUnavailable, "test", "plain")
	wantErr(t, r.Ping(context.Background()), secrets.CodeUnavailable, "test", "")
}

func TestCloseDuringOpen(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	m := newMap()
	r := driver.Open("test", func(ctx context.Context) (driver.Driver, error) {
		close(started)
		<-release
		return m, nil
	}, nil)
	done := make(chan error)
	go func() { done <- must(r.Resolve(context.Background(), "plain")) }()
	<-started
	r.Close() // while the open is under way
	close(release)
	wantErr(t, <-done, secrets.CodeUnavailable, "test", "plain")
	if m.closed.Load() != 1 {
		t.Fatalf("a driver opened after Close was closed %d times, want 1", m.closed.Load())
	}
	if _, err := r.Resolve(context.Background(), "plain"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("resolve after Close: %v", err)
	}
}

func TestWaiterOwnContext(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	r := driver.Open("test", func(ctx context.Context) (driver.Driver, error) {
		close(started)
		<-release
		return newMap(), nil
	}, nil)
	defer close(release)
	go r.Resolve(context.Background(), "plain")
	<-started // the other caller is opening; this one waits on its own ctx
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := must(r.Resolve(ctx, "plain"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter with a deadline got %v", err)
	}
	wantErr(t, err, secrets.CodeUnavailable, "test", "plain")
}

// Options.Check runs the backend's ref rules before the driver is opened: a
// refused ref costs no open, fails alone in a batch, and gets the core's
// error fields.
func TestCheckBeforeOpen(t *testing.T) {
	var opens atomic.Int64
	m := newMap()
	r := driver.Open("test", func(context.Context) (driver.Driver, error) {
		opens.Add(1)
		return m, nil
	}, &driver.Options{Check: func(ref driver.Ref) error {
		if strings.Contains(ref.Name, "..") {
			return driver.Errorf(secrets.CodeInvalidRef, "no '..' in names")
		}
		return nil
	}})
	e := wantErr(t, must(r.Resolve(context.Background(), "a/../b#f")), secrets.CodeInvalidRef, "test", "a/../b#f")
	if e.Op != "resolve" || !strings.Contains(e.Reason, "no '..'") {
		t.Fatalf("refused ref: %v", e)
	}
	if _, err := r.ParseRef("x/.."); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Fatalf("ParseRef does not apply Check: %v", err)
	}
	if n := opens.Load(); n != 0 {
		t.Fatalf("a refused ref opened the driver %d times", n)
	}
	out, err := r.ResolveMany(context.Background(), []string{"plain", ".."})
	if err != nil || out[0].Err != nil {
		t.Fatalf("ResolveMany: %v, %v", err, out[0].Err)
	}
	wantErr(t, out[1].Err, secrets.CodeInvalidRef, "test", "..")
}
