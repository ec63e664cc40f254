package driver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
	"github.com/keyward/secrets/internal/testenv"
)

// Without a follower, an entry naming a ref fails with ErrInvalidRef that
// names the ref and says what to do, in Resolve and ResolveMany alike.
func TestFollowWithoutFollower(t *testing.T) {
	m := &mapDriver{values: map[string]driver.Value{"row": {Ref: "env:ANTHROPIC_KEY_1"}, "plain": {Data: "sk-plain"}}}
	for _, r := range []*driver.Resolver{driver.New("rows", m, nil), driver.New("rows", batchDriver{m}, nil)} {
		_, err := r.Resolve(context.Background(), "row")
		e := testenv.WantError(t, "Resolve", err, secrets.CodeInvalidRef, "resolve", "rows", "row")
		for _, want := range []string{"env:ANTHROPIC_KEY_1", "secrets.OpenConfig", "FollowThrough"} {
			if !strings.Contains(e.Reason, want) {
				t.Errorf("Reason %q does not say %q", e.Reason, want)
			}
		}
		out, err := r.ResolveMany(context.Background(), []string{"plain", "row", "row#api_key"})
		if err != nil || len(out) != 3 || out[0].Err != nil || out[0].Secret.Reveal() != "sk-plain" {
			t.Fatalf("ResolveMany: %v %+v", err, out)
		}
		testenv.WantError(t, "ResolveMany row", out[1].Err, secrets.CodeInvalidRef, "resolve", "rows", "row")
		testenv.WantError(t, "ResolveMany row#api_key", out[2].Err, secrets.CodeInvalidRef, "resolve", "rows", "row#api_key")

		// Set, then taken away again.
		mux := new(secrets.Mux)
		mux.Handle("env", driver.New("env", &mapDriver{values: map[string]driver.Value{"ANTHROPIC_KEY_1": {Data: "sk-followed"}}}, nil))
		r.FollowThrough(mux)
		if s, err := r.Resolve(context.Background(), "row"); err != nil || s.Reveal() != "sk-followed" {
			t.Fatalf("with a follower: %v", err)
		}
		r.FollowThrough(nil)
		_, err = r.Resolve(context.Background(), "row")
		testenv.WantError(t, "FollowThrough(nil)", err, secrets.CodeInvalidRef, "resolve", "rows", "row")
	}
}

// sdkError stands for a backend SDK's error type, which errors.As must
// still reach through a follow.
type sdkError struct{}

func (sdkError) Error() string { return "sdk: throttled" }

// A followed ref's error keeps its code and its cause (errors.Is and
// errors.As), under the entry's Op, Backend and Ref; its text says where
// the key is and says everything once.
func TestFollowErrorShape(t *testing.T) {
	inner := &mapDriver{getErr: driver.Wrap(secrets.CodeUnavailable, sdkError{}, "the service is throttling")}
	mux := new(secrets.Mux)
	mux.Handle("awssm", driver.New("awssm", inner, nil))
	r := driver.New("rows", &mapDriver{values: map[string]driver.Value{"row": {Ref: "awssm:prod/key"}}}, nil)
	r.FollowThrough(mux)
	_, err := r.Resolve(context.Background(), "row")
	e := testenv.WantError(t, "row", err, secrets.CodeUnavailable, "resolve", "rows", "row")
	var sdk sdkError
	if !errors.As(err, &sdk) || !errors.Is(err, secrets.ErrUnavailable) {
		t.Errorf("errors.As/Is do not reach the followed ref's cause: %v", err)
	}
	if e.Reason != "its key is at awssm:prod/key: the service is throttling" {
		t.Errorf("Reason %q", e.Reason)
	}
	if want := `keyward: rows: resolve "row": unavailable: its key is at awssm:prod/key: the service is throttling: sdk: throttled`; err.Error() != want {
		t.Errorf("text %q\nwant %q", err, want)
	}
}

// Version, ExpiresAt and Source of a followed answer.
func TestFollowAnswer(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	inner := &mapDriver{values: map[string]driver.Value{
		"k":    {Data: "sk-k", Version: "v3", ExpiresAt: now.Add(2 * time.Hour), Plaintext: true},
		"none": {Data: "sk-none"},
	}}
	mux := new(secrets.Mux)
	mux.Handle("in", driver.New("in", inner, &driver.Options{Now: clock}))
	r := driver.New("rows", &mapDriver{values: map[string]driver.Value{
		"a": {Ref: "in:k", ExpiresAt: now.Add(time.Hour)},
		"b": {Ref: "in:k"},
		"c": {Ref: "in:none"},
	}}, &driver.Options{Now: clock})
	r.FollowThrough(mux)
	for ref, want := range map[string]time.Time{"a": now.Add(time.Hour), "b": now.Add(2 * time.Hour), "c": {}} {
		s, err := r.Resolve(context.Background(), ref)
		if err != nil || !s.ExpiresAt.Equal(want) {
			t.Errorf("%s: %v, ExpiresAt %v, want %v", ref, err, s.ExpiresAt, want)
		}
		if ref != "c" && (s.Version != "v3" || s.Source != (secrets.Source{Backend: "rows", Followed: "in:k", Plaintext: true})) {
			t.Errorf("%s: Version %q Source %+v", ref, s.Version, s.Source)
		}
	}
}

// FollowThrough may be called while resolves run (go test -race).
func TestFollowThroughConcurrent(t *testing.T) {
	mux := new(secrets.Mux)
	mux.Handle("in", driver.New("in", &mapDriver{values: map[string]driver.Value{"k": {Data: "sk-k"}}}, nil))
	r := driver.New("rows", batchDriver{&mapDriver{values: map[string]driver.Value{"row": {Ref: "in:k"}}}}, nil)
	r.FollowThrough(mux)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if g == 0 {
					r.FollowThrough(mux)
					continue
				}
				if s, err := r.Resolve(context.Background(), "row"); err != nil || s.Reveal() != "sk-k" {
					t.Errorf("Resolve: %v", err)
				}
				if out, err := r.ResolveMany(context.Background(), []string{"row", "row"}); err != nil || out[1].Secret.Reveal() != "sk-k" {
					t.Errorf("ResolveMany: %v", err)
				}
			}
		}()
	}
	wg.Wait()
}

// A ref an entry names comes from a column someone typed into: errors
// quote one that is not a plain line, and cut a long one.
func TestFollowRefShownSafely(t *testing.T) {
	long := "env:" + strings.Repeat("A", 1000)
	m := &mapDriver{values: map[string]driver.Value{"nl": {Ref: "env:A\nB"}, "long": {Ref: long}}}
	r := driver.New("rows", m, nil)
	_, err := r.Resolve(context.Background(), "nl")
	if e := testenv.WantError(t, "nl", err, secrets.CodeInvalidRef, "resolve", "rows", "nl"); !strings.Contains(e.Reason, `("env:A\nB")`) {
		t.Errorf("Reason %q does not quote the ref", e.Reason)
	}
	_, err = r.Resolve(context.Background(), "long")
	if e := testenv.WantError(t, "long", err, secrets.CodeInvalidRef, "resolve", "rows", "long"); len(e.Reason) > 500 {
		t.Errorf("Reason is %d bytes long", len(e.Reason))
	}
}

// BenchmarkFollow: a followed entry costs its own Get plus the followed
// ref's resolve (here through a Mux, no cache).
func BenchmarkFollow(b *testing.B) {
	mux := new(secrets.Mux)
	mux.Handle("in", driver.New("in", &mapDriver{values: map[string]driver.Value{"k": {Data: "sk-k"}}}, nil))
	r := driver.New("rows", &mapDriver{values: map[string]driver.Value{"row": {Ref: "in:k"}, "plain": {Data: "sk-p"}}}, nil)
	r.FollowThrough(mux)
	ctx := context.Background()
	for _, ref := range []string{"plain", "row"} {
		b.Run(ref, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Resolve(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
