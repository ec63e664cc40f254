package awssm_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/internal/testenv"
)

// The rules the driver layer owns, checked on awssm: each of these drifted
// between backends before (issue 11).

// TestCanceledBatchShape: a ctx canceled before or during ResolveMany gives
// one Result per ref, each secrets.ContextError naming its ref, and the same
// as the whole-call error; awssm returned no Results at all. An invalid ref
// still fails alone once the call has begun.
func TestCanceledBatchShape(t *testing.T) {
	f, store, name, _ := fakeStore(t, 3)
	refList := []string{name, name + "#api_key", "kw/other", "bad?opt=1"}
	// check wants every Result canceled but the invalid ref's, which is
	// invalid: canceled too when the ctx ended before the call.
	check := func(t *testing.T, res []secrets.Result, err error, invalid secrets.Code) {
		t.Helper()
		testenv.WantContextError(t, "the whole error", err, context.Canceled, "resolve", awssm.Backend, "")
		if len(res) != len(refList) {
			t.Fatalf("%d results for %d refs", len(res), len(refList))
		}
		for i, r := range res[:3] {
			if r.Ref != refList[i] {
				t.Fatalf("result %d is for %q, want %q", i, r.Ref, refList[i])
			}
			testenv.WantContextError(t, r.Ref, r.Err, context.Canceled, "resolve", awssm.Backend, r.Ref)
		}
		testenv.WantError(t, "the invalid ref", res[3].Err, invalid, "resolve", awssm.Backend, refList[3])
	}
	t.Run("before", func(t *testing.T) {
		res, err := store.ResolveMany(testenv.Canceled(), refList)
		check(t, res, err, secrets.CodeOf(context.Canceled))
	})
	t.Run("during", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		release := make(chan struct{})
		defer close(release)
		f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
			cancel()
			// Answer only when the client has gone or the test ends.
			io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return true
		})
		res, err := store.ResolveMany(ctx, refList)
		check(t, res, err, secrets.CodeInvalidRef)
		if n := f.count("BatchGetSecretValue"); n != 1 {
			t.Errorf("%d batch calls, want 1 (no retry after the cancel)", n)
		}
	})
}

// TestOpenFailureRetried: a Store from the environment whose first open
// fails (no region) opens again on the next call, which then succeeds once
// AWS_REGION is set; awssm kept the first failure for the Store's life.
func TestOpenFailureRetried(t *testing.T) {
	f := newFake(t)
	name, v := "kw/"+token(), secretValue()
	f.put(name, v)
	setAWSEnv(t, f.srv.URL)
	store := awssm.NewFromEnv("", "", nil)
	t.Cleanup(func() { store.Close() })
	_, err := store.Resolve(context.Background(), name)
	testenv.WantError(t, "Resolve without a region", err, secrets.CodeInvalidRef, "resolve", awssm.Backend, name)
	if !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("%v does not say to set AWS_REGION", err)
	}
	t.Setenv("AWS_REGION", "us-east-1")
	s, err := store.Resolve(context.Background(), name)
	if err != nil || s.Reveal() != v {
		t.Fatalf("Resolve once AWS_REGION is set: (%d bytes, %v), want the value", s.Len(), err)
	}
}

// TestOpenFailureShape: an open failure is reported like every other error
// of the call it failed: Op "ping" for Ping (awssm said "open"), the ref for
// Resolve, and for ResolveMany on every Result and as the whole-call error
// (awssm returned nil for the whole call). A ref awssm refuses is refused
// before the open.
func TestOpenFailureShape(t *testing.T) {
	f := newFake(t)
	setAWSEnv(t, f.srv.URL)
	store := awssm.NewFromEnv("", "", nil)
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	testenv.WantError(t, "Ping", store.Ping(ctx), secrets.CodeInvalidRef, "ping", awssm.Backend, "")
	_, err := store.Resolve(ctx, "kw/a")
	testenv.WantError(t, "Resolve", err, secrets.CodeInvalidRef, "resolve", awssm.Backend, "kw/a")
	refList := []string{"kw/a", "kw/b#f"}
	res, err := store.ResolveMany(ctx, refList)
	testenv.WantBatchFailure(t, "ResolveMany", res, err, refList, secrets.CodeInvalidRef, awssm.Backend)
	for _, r := range res {
		if !strings.Contains(r.Err.Error(), "no AWS region") {
			t.Errorf("%q: %v, want the open's error", r.Ref, r.Err)
		}
	}
	_, err = store.Resolve(ctx, "kw/a?stage=")
	if e := testenv.WantError(t, "an empty ?stage=", err, secrets.CodeInvalidRef, "resolve", awssm.Backend, "kw/a?stage="); !strings.Contains(e.Reason, "stage") {
		t.Errorf("%v does not name ?stage=", err)
	}
	if n := f.count("GetSecretValue") + f.count("BatchGetSecretValue") + f.count("ListSecrets"); n != 0 {
		t.Errorf("%d calls reached the server without a region", n)
	}
}
