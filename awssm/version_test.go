package awssm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
	"github.com/keyward/secrets/internal/testenv"
)

// TestMotoCurrentVersion checks CurrentVersion against moto_server through
// the real SDK: it equals the Version a Resolve of the same ref gives, before
// and after a new version is put, for AWSCURRENT, AWSPREVIOUS and a custom
// stage, with one DescribeSecret call and no GetSecretValue.
func TestMotoCurrentVersion(t *testing.T) {
	endpoint := testenv.MotoServer(t)
	calls := newCounter(nil)
	client := newClient(endpoint, 3, calls)
	m := &moto{endpoint: endpoint, calls: calls, client: client, store: awssm.New(client, nil)}
	ctx := context.Background()

	current := func(t *testing.T, ref string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := m.store.CurrentVersion(cctx, ref)
		if err != nil {
			t.Fatalf("CurrentVersion(%q): %v", ref, err)
		}
		return v
	}
	// same checks that CurrentVersion equals a fresh Resolve's Version and
	// costs exactly one DescribeSecret, and returns it.
	same := func(t *testing.T, ref, value string) string {
		t.Helper()
		calls.reset()
		v := current(t, ref)
		if d, g := calls.count("DescribeSecret"), calls.count("GetSecretValue"); d != 1 || g != 0 {
			t.Errorf("CurrentVersion(%q) made %d DescribeSecret and %d GetSecretValue calls, want 1 and 0", ref, d, g)
		}
		s := m.mustResolve(t, ref, value)
		if s.Version != v {
			t.Errorf("CurrentVersion(%q) = %q, but Resolve gives Version %q", ref, v, s.Version)
		}
		return v
	}

	t.Run("Rotation", func(t *testing.T) {
		name := "kw/version-" + token()
		v1, v2, v3 := secretValue(), secretValue(), secretValue()
		doc, _ := json.Marshal(map[string]string{"api_key": v1})
		created := m.create(t, name, string(doc))

		first := same(t, name, string(doc))
		if first != aws.ToString(created.VersionId) {
			t.Errorf("CurrentVersion = %q, want the created VersionId %q", first, aws.ToString(created.VersionId))
		}
		// A #field and an explicit AWSCURRENT name the same version.
		same(t, name+"#api_key", v1)
		same(t, name+"?stage=AWSCURRENT", string(doc))
		same(t, aws.ToString(created.ARN), string(doc))
		// No previous version yet.
		_, err := m.store.CurrentVersion(ctx, name+"?stage=AWSPREVIOUS")
		wantKeywardError(t, err, secrets.ErrNotFound)

		put, err := m.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String(v2)})
		if err != nil {
			t.Fatal(err)
		}
		second := same(t, name, v2)
		if second == first || second != aws.ToString(put.VersionId) {
			t.Errorf("after PutSecretValue: CurrentVersion = %q (was %q), want the new VersionId %q", second, first, aws.ToString(put.VersionId))
		}
		if prev := same(t, name+"?stage=AWSPREVIOUS", string(doc)); prev != first {
			t.Errorf("AWSPREVIOUS = %q, want the first version %q", prev, first)
		}
		// A version with only a custom label leaves AWSCURRENT alone.
		blue, err := m.client.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String(v3), VersionStages: []string{"blue"}})
		if err != nil {
			t.Fatal(err)
		}
		if got := same(t, name, v2); got != second {
			t.Errorf("a custom-label version moved AWSCURRENT: %q, want %q", got, second)
		}
		if got := same(t, name+"?stage=blue", v3); got != aws.ToString(blue.VersionId) {
			t.Errorf("?stage=blue = %q, want %q", got, aws.ToString(blue.VersionId))
		}
		_, err = m.store.CurrentVersion(ctx, name+"?stage=green")
		e := wantKeywardError(t, err, secrets.ErrNotFound)
		if e.Op != "version" || !strings.Contains(e.Reason, "green") {
			t.Errorf("a missing stage: %v", err)
		}

		// A pinned version is itself, with no call.
		calls.reset()
		if got := current(t, name+"?version="+first); got != first {
			t.Errorf("pinned: %q, want %q", got, first)
		}
		if n := calls.count("DescribeSecret") + calls.count("GetSecretValue"); n != 0 {
			t.Errorf("a pinned ref made %d calls", n)
		}
		noLeak(t, v1, err)
	})

	t.Run("NotFound", func(t *testing.T) {
		_, err := m.store.CurrentVersion(ctx, "kw-missing-"+token())
		e := wantKeywardError(t, err, secrets.ErrNotFound)
		if e.Op != "version" {
			t.Errorf("Op = %q, want version", e.Op)
		}
		var rnf *types.ResourceNotFoundException
		if !errors.As(err, &rnf) {
			t.Errorf("errors.As(*types.ResourceNotFoundException) failed on %v", err)
		}
		if !strings.Contains(err.Error(), "DescribeSecret") {
			t.Errorf("error %q does not name the call", err)
		}
	})

	t.Run("DeletionScheduled", func(t *testing.T) {
		name := "kw-version-deleted-" + token()
		m.create(t, name, secretValue())
		if _, err := m.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
			SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
			t.Fatal(err)
		}
		// Resolve refuses it, so CurrentVersion must not report it
		// unchanged. DescribeSecret still answers (with DeletedDate), so
		// the error is the store's own: no service error behind it.
		_, err := m.store.CurrentVersion(ctx, name)
		wantKeywardError(t, err, secrets.ErrNotFound)
		var api smithy.APIError
		if errors.As(err, &api) {
			t.Errorf("the service refused DescribeSecret (%s): the DeletedDate check is not exercised", api.ErrorCode())
		}
		if !strings.Contains(err.Error(), "scheduled for deletion") {
			t.Errorf("error %q does not say the secret is scheduled for deletion", err)
		}
	})

	t.Run("InvalidRef", func(t *testing.T) {
		calls.reset()
		for _, ref := range []string{"name?stage=AWSCURRENT&version=abc", "name?bogus=1", "name?stage=", "#field"} {
			_, err := m.store.CurrentVersion(ctx, ref)
			e := wantKeywardError(t, err, secrets.ErrInvalidRef)
			if e.Op != "version" || e.Ref != ref {
				t.Errorf("%q: Op %q Ref %q", ref, e.Op, e.Ref)
			}
		}
		if n := calls.count("DescribeSecret"); n != 0 {
			t.Errorf("invalid refs made %d calls", n)
		}
	})

	t.Run("ThroughMux", func(t *testing.T) {
		name := "kw/version-mux-" + token()
		v := secretValue()
		m.create(t, name, v)
		var mux secrets.Mux
		mux.Handle("awssm", m.store)
		got, err := mux.CurrentVersion(ctx, "awssm:"+name)
		if err != nil {
			t.Fatal(err)
		}
		s, err := mux.Resolve(ctx, "awssm:"+name)
		if err != nil || s.Version != got {
			t.Errorf("through the Mux: CurrentVersion %q, Resolve's Version %q (%v)", got, s.Version, err)
		}
	})
}

// describeHook answers DescribeSecret for the fake from its secrets, as
// Secrets Manager does: the versions and their stages, no value.
func describeHook(f *fakeSM) func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
	return func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
		if op != "DescribeSecret" {
			return false
		}
		body, _ := io.ReadAll(r.Body)
		var in struct{ SecretId string }
		json.Unmarshal(body, &in)
		f.mu.Lock()
		s, ok := f.secrets[in.SecretId]
		f.mu.Unlock()
		if !ok {
			writeAPIError(w, 400, "ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
			return true
		}
		writeJSON(w, 200, map[string]any{
			"ARN": fakeARNPrefix + in.SecretId + "-AbCdEf", "Name": in.SecretId,
			"VersionIdsToStages": map[string][]string{s.version: {"AWSCURRENT"}},
		})
		return true
	}
}

func TestFakeCurrentVersion(t *testing.T) {
	f, store, name, v := fakeStore(t, 3)
	f.setHook(describeHook(f))
	ctx := context.Background()
	got, err := store.CurrentVersion(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := store.Resolve(ctx, name)
	if err != nil || s.Version != got {
		t.Fatalf("CurrentVersion %q, Resolve's Version %q (%v)", got, s.Version, err)
	}
	if d, g := f.count("DescribeSecret"), f.count("GetSecretValue"); d != 1 || g != 1 {
		t.Errorf("%d DescribeSecret and %d GetSecretValue calls, want 1 and 1", d, g)
	}
	noLeak(t, v, err)
}

// TestCurrentVersionThrottled: throttling and 5xx are retried by the SDK
// and, once the attempts are spent, ErrUnavailable, as for Get.
func TestCurrentVersionThrottled(t *testing.T) {
	t.Run("OnceThenServed", func(t *testing.T) {
		f, store, name, _ := fakeStore(t, 3)
		describe := describeHook(f)
		f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
			if op == "DescribeSecret" && n == 1 {
				writeAPIError(w, 400, "ThrottlingException", "Rate exceeded")
				return true
			}
			return describe(w, r, op, n)
		})
		if _, err := store.CurrentVersion(context.Background(), name); err != nil {
			t.Fatalf("the SDK did not retry a throttled DescribeSecret: %v", err)
		}
		if got := f.count("DescribeSecret"); got != 2 {
			t.Errorf("%d attempts, want 2", got)
		}
	})
	for _, tc := range []struct {
		name, code string
		status     int
		want       error
	}{
		{"Throttling", "ThrottlingException", 400, secrets.ErrUnavailable},
		{"TooManyRequests", "TooManyRequestsException", 400, secrets.ErrUnavailable},
		{"InternalServiceError", "InternalServiceError", 500, secrets.ErrUnavailable},
		{"AccessDenied", "AccessDeniedException", 400, secrets.ErrPermission},
		{"NotFound", "ResourceNotFoundException", 400, secrets.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, store, name, v := fakeStore(t, 3)
			f.setHook(func(w http.ResponseWriter, r *http.Request, op string, n int) bool {
				writeAPIError(w, tc.status, tc.code, "echo "+v)
				return true
			})
			_, err := store.CurrentVersion(context.Background(), name)
			e := wantKeywardError(t, err, tc.want)
			if e.Op != "version" || e.Ref != name {
				t.Errorf("Op %q Ref %q", e.Op, e.Ref)
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tc.code {
				t.Errorf("errors.As(smithy.APIError) on %v: %v", err, api)
			}
			if tc.want == secrets.ErrPermission && !strings.Contains(e.Reason, "secretsmanager:DescribeSecret") {
				t.Errorf("the permission reason does not name secretsmanager:DescribeSecret: %q", e.Reason)
			}
			if tc.want == secrets.ErrUnavailable {
				if got := f.count("DescribeSecret"); got != 3 {
					t.Errorf("%d attempts, want the configured 3", got)
				}
			}
			noLeak(t, v, err)
		})
	}
}

// apiOnly is an awssm.API without DescribeSecret, as a host's wrapper may be.
type apiOnly struct{ awssm.API }

func TestCurrentVersionClientWithoutDescribe(t *testing.T) {
	f, _, name, _ := fakeStore(t, 1)
	store := awssm.New(apiOnly{newClient(f.srv.URL, 1, http.DefaultTransport)}, nil)
	_, err := store.CurrentVersion(context.Background(), name)
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("%v does not match errors.ErrUnsupported", err)
	}
	if !strings.Contains(fmt.Sprint(err), "DescribeSecret") {
		t.Errorf("error %q does not say what is missing", err)
	}
	// A pinned version needs no call, so it still answers.
	if got, err := store.CurrentVersion(context.Background(), name+"?version=v-pinned"); err != nil || got != "v-pinned" {
		t.Errorf("pinned: %q, %v", got, err)
	}
	if n := f.count("DescribeSecret") + f.count("GetSecretValue"); n != 0 {
		t.Errorf("%d calls", n)
	}
}
