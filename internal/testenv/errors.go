package testenv

import (
	"context"
	"errors"
	"strconv"
	"testing"

	secrets "github.com/keyward/secrets"
)

// WantError checks that err is an *secrets.Error of code with exactly these
// Op, Backend and Ref: the fields the driver layer sets on every error of
// every backend.
func WantError(t testing.TB, what string, err error, code secrets.Code, op, backend, ref string) *secrets.Error {
	t.Helper()
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%s: %T is not a *secrets.Error: %v", what, err, err)
	}
	if !errors.Is(err, code) {
		t.Fatalf("%s: code %v (%v), want %v", what, e.Code, err, code)
	}
	if e.Op != op || e.Backend != backend || e.Ref != ref {
		t.Fatalf("%s: Op %q Backend %q Ref %q, want %q %q %q", what, e.Op, e.Backend, e.Ref, op, backend, ref)
	}
	return e
}

// WantContextError checks that err is exactly secrets.ContextError for
// ctxErr (context.Canceled or context.DeadlineExceeded), naming backend and
// ref.
func WantContextError(t testing.TB, what string, err, ctxErr error, op, backend, ref string) {
	t.Helper()
	got := WantError(t, what, err, secrets.CodeOf(ctxErr), op, backend, ref)
	want := secrets.ContextError(op, backend, ref, ctxErr)
	if !errors.Is(err, ctxErr) || got.Error() != want.Error() {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// WantBatchFailure checks the driver layer's shape of a ResolveMany whose
// whole call failed: the error returned (no Ref), and the same code on every
// Result, each naming its own ref.
func WantBatchFailure(t testing.TB, what string, out []secrets.Result, err error, refs []string, code secrets.Code, backend string) {
	t.Helper()
	WantError(t, what+": the whole error", err, code, "resolve", backend, "")
	if len(out) != len(refs) {
		t.Fatalf("%s: %d results for %d refs", what, len(out), len(refs))
	}
	for i, res := range out {
		if res.Ref != refs[i] {
			t.Fatalf("%s: result %d is for %q, want %q", what, i, res.Ref, refs[i])
		}
		WantError(t, what+": a result", res.Err, code, "resolve", backend, res.Ref)
	}
}

// Canceled returns a context that is already canceled.
func Canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// ResolveConcurrently resolves every refs[i] at once, one goroutine each (so
// a backend opens several connections), and fails t unless each gives
// want[i]. It never prints a value, only lengths.
func ResolveConcurrently(t testing.TB, r secrets.KeyResolver, refs, want []string) {
	t.Helper()
	errs := make([]error, len(refs))
	done := make(chan struct{})
	for i, ref := range refs {
		go func() {
			defer func() { done <- struct{}{} }()
			s, err := r.Resolve(context.Background(), ref)
			if err == nil && s.Reveal() != want[i] {
				err = errors.New("resolved a value that differs from the one stored (" + strconv.Itoa(s.Len()) + " bytes)")
			}
			errs[i] = err
		}()
	}
	for range refs {
		<-done
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Resolve(%q): %v", refs[i], err)
		}
	}
}
