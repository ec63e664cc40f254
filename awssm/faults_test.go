package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
)

// fakeStore returns a fake service holding one secret, and a store that
// reaches it through the real SDK client with attempts attempts a call.
func fakeStore(t *testing.T, attempts int) (*fakeSM, *awssm.Store, string, string) {
	t.Helper()
	f := newFake(t)
	name, v := "kw/"+token(), secretValue()
	f.put(name, v)
	return f, awssm.New(newClient(f.srv.URL, attempts, http.DefaultTransport), nil), name, v
}

// noLeak fails t if any of the errors, printed every way, holds value.
func noLeak(t *testing.T, value string, errs ...error) {
	t.Helper()
	for _, err := range errs {
		text := fmt.Sprintf("%v | %+v | %#v | %s", err, err, err, err)
		// Follow the chain too, as an error reporter that prints every
		// wrapped error would.
		for _, e := range chain(err) {
			text += " | " + e.Error()
		}
		if strings.Contains(text, value) {
			t.Errorf("an error's text holds the secret value (%d bytes)", len(value))
		}
	}
}

// chain returns err and every error it wraps, depth first.
func chain(err error) []error {
	if err == nil {
		return nil
	}
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		out = append(out, chain(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, chain(e)...)
		}
	}
	return out
}

func wantKeywardError(t *testing.T, err error, code error) *secrets.Error {
	t.Helper()
	if !errors.Is(err, code) {
		t.Fatalf("got %v (code %v), want %v", err, secrets.CodeOf(err), code)
	}
	var e *secrets.Error
	if !errors.As(err, &e) {
		t.Fatalf("%T is not a *secrets.Error", err)
	}
	if e.Backend != "awssm" {
		t.Errorf("Backend = %q, want awssm", e.Backend)
	}
	return e
}

func TestFakeResolve(t *testing.T) {
	f, store, name, v := fakeStore(t, 3)
	ctx := context.Background()
	s, err := store.Resolve(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != v || s.Version == "" {
		t.Fatalf("got %d bytes, version %q", s.Len(), s.Version)
	}
	if got := s.Source.Backend; got != "awssm" {
		t.Errorf("Source.Backend = %q, want awssm", got)
	}
	if _, err := store.Resolve(ctx, fakeARNPrefix+name+"-AbCdEf"); err != nil {
		t.Errorf("by ARN: %v", err)
	}
	if f.count("GetSecretValue") != 2 {
		t.Errorf("%d calls, want 2", f.count("GetSecretValue"))
	}
}

func TestThrottledOnceThenServed(t *testing.T) {
	f, store, name, v := fakeStore(t, 3)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		if n == 1 {
			writeAPIError(w, 400, "ThrottlingException", "Rate exceeded")
			return true
		}
		return false
	})
	s, err := store.Resolve(context.Background(), name)
	if err != nil {
		t.Fatalf("the SDK did not retry a throttled call: %v", err)
	}
	if s.Reveal() != v {
		t.Fatal("wrong value")
	}
	if got := f.count("GetSecretValue"); got != 2 {
		t.Errorf("%d attempts, want 2", got)
	}
}

func TestRetriesExhausted(t *testing.T) {
	for _, tc := range []struct {
		name, code string
		status     int
		body       string // raw body, instead of an API error, when set
	}{
		{"Throttling", "ThrottlingException", 400, ""},
		{"InternalServiceError", "InternalServiceError", 500, ""},
		{"Plain503", "", 503, "<html>Service Unavailable %s</html>"},
		{"Plain500", "", 500, "oops %s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, attempts := range []int{1, 4} {
				f, store, name, v := fakeStore(t, attempts)
				f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
					if tc.body != "" {
						w.WriteHeader(tc.status)
						fmt.Fprintf(w, tc.body, v)
						return true
					}
					writeAPIError(w, tc.status, tc.code, "slow down "+v)
					return true
				})
				_, err := store.Resolve(context.Background(), name)
				wantKeywardError(t, err, secrets.ErrUnavailable)
				if got := f.count("GetSecretValue"); got != attempts {
					t.Errorf("%d attempts made, want the configured %d", got, attempts)
				}
				if attempts > 1 && !strings.Contains(err.Error(), fmt.Sprintf("%d attempts", attempts)) {
					t.Errorf("error %q does not say how many attempts were made", err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d", tc.status)) {
					t.Errorf("error %q does not give the HTTP status", err)
				}
				noLeak(t, v, err)
			}
		})
	}
}

func TestSlowAnswer(t *testing.T) {
	f, store, name, _ := fakeStore(t, 3)
	release := make(chan struct{})
	defer close(release)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		// Answer only when the client has gone or the test ends.
		select {
		case <-r.Context().Done():
		case <-release:
		}
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := store.Resolve(ctx, name)
	wantKeywardError(t, err, secrets.ErrUnavailable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not match context.DeadlineExceeded", err)
	}
	if got := secrets.Outcome(err); got != "unavailable" {
		t.Errorf("Outcome = %q", got)
	}
}

func TestCanceledContext(t *testing.T) {
	f, store, name, _ := fakeStore(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := store.Resolve(ctx, name)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	_, err = store.ResolveMany(ctx, []string{name})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ResolveMany: got %v, want context.Canceled", err)
	}
	if err := store.Ping(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Ping: got %v, want context.Canceled", err)
	}
	if n := f.count("GetSecretValue") + f.count("BatchGetSecretValue") + f.count("ListSecrets"); n != 0 {
		t.Errorf("%d calls with a canceled context", n)
	}
}

func TestGarbageBodies(t *testing.T) {
	for _, tc := range []struct {
		name, body, ctype string
	}{
		{"TruncatedJSON", `{"Name":"x","SecretString":"%s`, "application/x-amz-json-1.1"},
		{"HTML", `<html><body>%s</body></html>`, "text/html"},
		{"WrongTypes", `{"SecretString":{"nested":"%s"}}`, "application/x-amz-json-1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, store, name, v := fakeStore(t, 2)
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(200)
				fmt.Fprintf(w, tc.body, v)
				return true
			})
			s, err := store.Resolve(context.Background(), name)
			wantKeywardError(t, err, secrets.ErrUnavailable)
			if s.Reveal() != "" {
				t.Error("a failed resolve returned a value")
			}
			var de *smithy.DeserializationError
			if errors.As(err, &de) {
				t.Error("the SDK's DeserializationError, which keeps a snapshot of the body, is reachable")
			}
			noLeak(t, v, err)
		})
	}
}

// TestErrorCodes checks the classification table with error bodies that echo
// the secret value, as a misbehaving proxy or emulator might.
func TestErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		code    string
		status  int
		message string
		want    error
		reason  string
	}{
		{"ResourceNotFoundException", 400, "not found", secrets.ErrNotFound, ""},
		{"ResourceNotFoundException", 404, "moto answers 404", secrets.ErrNotFound, ""},
		{"AccessDeniedException", 400, "User: arn:aws:iam::1:user/x is not authorized", secrets.ErrPermission, ""},
		{"AccessDeniedException", 404, "a status that lies", secrets.ErrPermission, ""},
		{"UnrecognizedClientException", 400, "The security token included in the request is invalid.", secrets.ErrPermission, ""},
		{"ExpiredTokenException", 400, "expired", secrets.ErrPermission, ""},
		{"DecryptionFailure", 400, "KMS says no", secrets.ErrUndecryptable, ""},
		{"InvalidRequestException", 400, "You can't perform this operation on the secret because it was marked for deletion.", secrets.ErrNotFound, "scheduled for deletion"},
		{"InvalidParameterException", 400, "bad version id", secrets.ErrInvalidRef, ""},
		{"InvalidRequestException", 400, "something else", secrets.CodeUnknown, ""},
		{"SomeNewException", 400, "new", secrets.CodeUnknown, ""},
		{"SomeNewServerException", 502, "new", secrets.ErrUnavailable, ""},
	} {
		t.Run(fmt.Sprintf("%s_%d", tc.code, tc.status), func(t *testing.T) {
			f, store, name, v := fakeStore(t, 1)
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				writeAPIError(w, tc.status, tc.code, tc.message+" value="+v)
				return true
			})
			_, err := store.Resolve(context.Background(), name)
			if tc.want == secrets.CodeUnknown {
				if c := secrets.CodeOf(err); c != secrets.CodeUnknown {
					t.Fatalf("got code %v (%v), want unknown", c, err)
				}
			} else {
				wantKeywardError(t, err, tc.want)
			}
			if tc.reason != "" && !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("error %q does not say %q", err, tc.reason)
			}
			if !strings.Contains(err.Error(), tc.code) {
				t.Errorf("error %q does not name the service's code", err)
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tc.code {
				t.Fatalf("errors.As(smithy.APIError) on %v: %v", err, api)
			}
			if api.ErrorMessage() != "" {
				t.Error("the reachable API error kept the service's message")
			}
			noLeak(t, v, err)
		})
	}
	// The typed exception stays reachable.
	f, store, name, v := fakeStore(t, 1)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		writeAPIError(w, 400, "ResourceNotFoundException", v)
		return true
	})
	_, err := store.Resolve(context.Background(), name)
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("errors.As(*types.ResourceNotFoundException) failed on %v", err)
	}
	var withID interface{ ServiceRequestID() string }
	if !errors.As(err, &withID) || withID.ServiceRequestID() == "" {
		t.Error("the request id is not reachable")
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	store := awssm.New(newClient("http://"+addr, 2, http.DefaultTransport), nil)
	_, err = store.Resolve(context.Background(), "kw/any")
	wantKeywardError(t, err, secrets.ErrUnavailable)
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("the dial error is not reachable with errors.As: %v", err)
	}
}

func TestFakeBatch(t *testing.T) {
	f := newFake(t)
	store := awssm.New(newClient(f.srv.URL, 1, http.DefaultTransport), &awssm.Options{MaxBatch: 7})
	var refList, want []string
	for i := range 30 {
		name, v := fmt.Sprintf("kw/b%02d", i), secretValue()
		f.put(name, v)
		refList, want = append(refList, name), append(want, v)
	}
	refList = append(refList, "kw/b00", "kw/missing")
	res, err := store.ResolveMany(context.Background(), refList)
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range want {
		if res[i].Err != nil || res[i].Secret.Reveal() != w || res[i].Secret.Version == "" {
			t.Errorf("%q: %v", refList[i], res[i].Err)
		}
	}
	if res[30].Secret.Reveal() != want[0] {
		t.Error("a repeated ref resolved differently")
	}
	wantKeywardError(t, res[31].Err, secrets.ErrNotFound)
	// 31 distinct ids, 7 a call.
	if got := f.count("BatchGetSecretValue"); got != 5 {
		t.Errorf("%d batch calls, want 5", got)
	}
	if got := f.count("GetSecretValue"); got != 0 {
		t.Errorf("%d single calls, want 0", got)
	}
}

func TestBatchDeniedFallsBack(t *testing.T) {
	for _, code := range []string{"AccessDeniedException", "UnknownOperationException"} {
		t.Run(code, func(t *testing.T) {
			f, store, name, v := fakeStore(t, 1)
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				if op == "BatchGetSecretValue" {
					writeAPIError(w, 400, code, "not allowed")
					return true
				}
				return false
			})
			res, err := store.ResolveMany(context.Background(), []string{name, name + "?stage=AWSCURRENT", "kw/missing"})
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Err != nil || res[0].Secret.Reveal() != v || res[1].Secret.Reveal() != v {
				t.Fatalf("fallback failed: %v, %v", res[0].Err, res[1].Err)
			}
			wantKeywardError(t, res[2].Err, secrets.ErrNotFound)
			if b, g := f.count("BatchGetSecretValue"), f.count("GetSecretValue"); b != 1 || g != 2 {
				t.Errorf("%d batch and %d single calls, want 1 and 2", b, g)
			}
		})
	}
}

func TestBatchUnavailable(t *testing.T) {
	f, store, name, v := fakeStore(t, 2)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		writeAPIError(w, 400, "ThrottlingException", v)
		return true
	})
	res, err := store.ResolveMany(context.Background(), []string{name, name + "#f"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		wantKeywardError(t, r.Err, secrets.ErrUnavailable)
		if r.Err.(*secrets.Error).Ref != r.Ref {
			t.Errorf("the error names ref %q, want %q", r.Err.(*secrets.Error).Ref, r.Ref)
		}
		noLeak(t, v, r.Err)
	}
	if b, g := f.count("BatchGetSecretValue"), f.count("GetSecretValue"); b != 2 || g != 0 {
		t.Errorf("%d batch and %d single calls, want 2 (one call, two attempts) and 0", b, g)
	}
}

func TestPing(t *testing.T) {
	f, store, _, _ := fakeStore(t, 1)
	if err := store.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if f.count("ListSecrets") != 1 {
		t.Errorf("%d ListSecrets calls, want 1", f.count("ListSecrets"))
	}
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		writeAPIError(w, 400, "AccessDeniedException", "no")
		return true
	})
	wantKeywardError(t, store.Ping(context.Background()), secrets.ErrPermission)
}

func TestOpenURL(t *testing.T) {
	for _, u := range []string{
		"awssm://?region=eu-west-1&endpoint=http://x",
		"awssm://?region=a&region=b",
		"awssm://myhost?region=eu-west-1",
		"awssm:///path",
		"awssm://key:secret@?region=eu-west-1",
	} {
		_, err := secrets.Open(context.Background(), u)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Open(%q) = %v, want ErrInvalidRef", u, err)
		}
	}

	f := newFake(t)
	name, v := "kw/opened", secretValue()
	f.put(name, v)
	setAWSEnv(t, f.srv.URL)
	r, err := secrets.Open(context.Background(), "awssm://?region=eu-west-1")
	if err != nil {
		t.Fatal(err)
	}
	if n := f.count("GetSecretValue"); n != 0 {
		t.Fatalf("Open made %d calls; it must do no I/O", n)
	}
	s, err := r.Resolve(context.Background(), name)
	if err != nil || s.Reveal() != v {
		t.Fatalf("Resolve through the opener: %v", err)
	}
	if _, ok := secrets.Find[secrets.BatchResolver](r); !ok {
		t.Error("the opened store is not a BatchResolver")
	}

	// Without a region anywhere, the first resolve says what to set.
	r, _ = secrets.Open(context.Background(), "awssm://")
	_, err = r.Resolve(context.Background(), name)
	wantKeywardError(t, err, secrets.ErrInvalidRef)
	if !strings.Contains(err.Error(), "AWS_REGION") {
		t.Errorf("%v does not mention AWS_REGION", err)
	}

	// A profile the shared files lack.
	r, _ = secrets.Open(context.Background(), "awssm://?region=eu-west-1&profile=kw-no-such-profile")
	_, err = r.Resolve(context.Background(), name)
	if err == nil || !strings.Contains(err.Error(), "AWS_PROFILE") {
		t.Errorf("a missing profile: %v", err)
	}
}

func TestNoCredentials(t *testing.T) {
	f := newFake(t)
	setAWSEnv(t, f.srv.URL)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	store := awssm.NewFromEnv("eu-west-1", "", nil)
	_, err := store.Resolve(context.Background(), "kw/any")
	wantKeywardError(t, err, secrets.ErrPermission)
	t.Log(err)
	if n := f.count("GetSecretValue"); n != 0 {
		t.Errorf("%d unsigned calls reached the server", n)
	}
}

// TestBatchBadCredentialsNoFallback: refused credentials fail the per-secret
// calls too, so the store does not make them.
func TestBatchBadCredentialsNoFallback(t *testing.T) {
	f, store, name, _ := fakeStore(t, 1)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		writeAPIError(w, 400, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return true
	})
	res, err := store.ResolveMany(context.Background(), []string{name, "kw/other"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		wantKeywardError(t, r.Err, secrets.ErrPermission)
	}
	if b, g := f.count("BatchGetSecretValue"), f.count("GetSecretValue"); b != 1 || g != 0 {
		t.Errorf("%d batch and %d single calls, want 1 and 0", b, g)
	}
}

// TestNamespacedErrorType: AWS may send __type with the service namespace
// ("com.amazonaws.secretsmanager#ResourceNotFoundException"); the SDK strips
// it and the table still matches.
func TestNamespacedErrorType(t *testing.T) {
	f, store, name, _ := fakeStore(t, 1)
	f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		writeAPIError(w, 400, "com.amazonaws.secretsmanager#ResourceNotFoundException", "gone")
		return true
	})
	_, err := store.Resolve(context.Background(), name)
	wantKeywardError(t, err, secrets.ErrNotFound)
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Errorf("errors.As(*types.ResourceNotFoundException) failed on %v", err)
	}
}
