package azurekv_test

// One test per drift the driver layer removes (issue 11): each checks that
// azurekv follows the core's one rule, not a rule of its own.

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/azurekv"
	"github.com/keyward/secrets/internal/azurekvtest"
	"github.com/keyward/secrets/internal/testenv"
	"github.com/keyward/secrets/secretstest"
)

func wantFields(t *testing.T, what string, err error, code secrets.Code, op, ref string) *secrets.Error {
	t.Helper()
	return testenv.WantError(t, what, err, code, op, azurekv.Backend, ref)
}

// The #field rule is the core's: azurekv answers every (document, field)
// exactly as the Fake does, value for value and code for code.
func TestDriftField(t *testing.T) {
	e := newEnv(t)
	var fake secretstest.Fake
	docs := map[string]string{
		"obj":    `{"api_key":"sk-1","n":60,"f":1.5,"t":true,"z":null,"arr":[1,"a"],"o":{"rpm":60},"e":"","u":"\u00e9\n","a#b":"hash"}`,
		"arr":    `["sk-1"]`,
		"str":    `"sk-1"`,
		"num":    `42`,
		"plain":  `sk-plain`,
		"broken": `{"api_key":"sk-1"`,
		"dup":    `{"k":"first","k":"second"}`,
	}
	for name, v := range docs {
		e.srv.Set(name, v, azurekvtest.Attributes{})
		fake.Set(name, v)
	}
	ctx := context.Background()
	for name := range docs {
		for _, f := range []string{"api_key", "n", "f", "t", "z", "arr", "o", "e", "u", "a%23b", "missing", "k"} {
			ref := name + "#" + f
			want, wantErr := fake.Resolve(ctx, ref)
			got, err := e.store.Resolve(ctx, ref)
			switch {
			case wantErr != nil:
				if secrets.CodeOf(err) != secrets.CodeOf(wantErr) {
					t.Errorf("%s: azurekv gives %v, the core's rule %v", ref, err, wantErr)
				}
			case err != nil:
				t.Errorf("%s: azurekv gives %v, the core's rule a value", ref, err)
			case got.Reveal() != want.Reveal():
				t.Errorf("%s: azurekv gives %q, the core's rule %q", ref, got.Reveal(), want.Reveal())
			}
		}
	}
}

// Every error names the caller's operation, the backend and the ref as the
// caller wrote it (#field included), whichever path made it.
func TestDriftErrorFields(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("off", "sk-off-"+token(), azurekvtest.Attributes{Disabled: true})
	e.srv.Set("early", "sk-early-"+token(), azurekvtest.Attributes{NotBefore: e.now.Add(time.Hour)})
	e.srv.Set("late", `{"api_key":"sk-late-`+token()+`"}`, azurekvtest.Attributes{Expires: e.now.Add(-time.Hour)})
	e.srv.Set("plain", "sk-plain-"+token(), azurekvtest.Attributes{})
	e.srv.Set("down", "sk-down-"+token(), azurekvtest.Attributes{})
	e.srv.Inject(azurekvtest.Fault{Name: "down", Status: 503})
	e.srv.Inject(azurekvtest.Fault{Name: "mangled", Status: 200, Body: "<html>"})
	for _, c := range []struct {
		ref  string
		code secrets.Code
	}{
		{"missing#api_key", secrets.CodeNotFound},
		{"off#api_key", secrets.CodePermission},
		{"early", secrets.CodeNotFound},
		{"late#api_key", secrets.CodeExpired},
		{"plain#api_key", secrets.CodeInvalidRef},
		{"down", secrets.CodeUnavailable},
		{"mangled", secrets.CodeUnavailable},
		{"bad_name#x", secrets.CodeInvalidRef},
		{"name/bad-version", secrets.CodeInvalidRef},
	} {
		_, err := e.resolve(t, c.ref)
		wantFields(t, c.ref, err, c.code, "resolve", c.ref)
	}
	_, err := azurekv.New(nil, nil).Resolve(context.Background(), "x#f")
	wantFields(t, "a nil client", err, secrets.CodePermission, "resolve", "x#f")
	e.srv.Inject(azurekvtest.Fault{Name: azurekv.PingName, Status: 403})
	wantFields(t, "Ping with a 403", e.store.Ping(context.Background()), secrets.CodePermission, "ping", "")
}

// Expiry is the core's rule: the error is the one the expiry decorator and
// the cache give, secrets.ExpiredError.
func TestDriftExpiry(t *testing.T) {
	e := newEnv(t)
	exp := e.now.Add(-time.Minute).Truncate(time.Second)
	e.srv.Set("late", "sk-late-"+token(), azurekvtest.Attributes{Expires: exp})
	_, err := e.resolve(t, "late")
	want := secrets.ExpiredError("resolve", azurekv.Backend, "late", exp)
	if err == nil || err.Error() != want.Error() {
		t.Fatalf("an expired secret: %v, want %v", err, want)
	}
	wantFields(t, "an expired secret", err, secrets.CodeExpired, "resolve", "late")
}

// The context rule: a caller's ended ctx, before the call or during it, is
// secrets.ContextError naming the backend and the ref, in Resolve, Ping and
// every Result of ResolveMany.
func TestDriftContext(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	canceled := testenv.Canceled()
	check := func(what string, err error, ref, op string) {
		t.Helper()
		testenv.WantContextError(t, what, err, context.Canceled, op, azurekv.Backend, ref)
	}
	_, err := e.store.Resolve(canceled, "greeting#api_key")
	check("Resolve, canceled before", err, "greeting#api_key", "resolve")
	check("Ping, canceled before", e.store.Ping(canceled), "", "ping")
	out, err := secrets.ResolveMany(canceled, e.store, []string{"greeting", "missing#f"})
	check("ResolveMany's whole error", err, "", "resolve")
	if len(out) != 2 {
		t.Fatalf("ResolveMany with a canceled ctx: %d results for 2 refs", len(out))
	}
	for _, res := range out {
		check("ResolveMany's result", res.Err, res.Ref, "resolve")
	}
	if n := len(e.srv.Log()); n != 0 {
		t.Errorf("calls with a canceled ctx made %d requests", n)
	}

	// Canceled while the SDK waits between retries of a 503.
	e.srv.Inject(azurekvtest.Fault{Name: "greeting", Status: 503})
	client, _, _ := e.srv.NewClient(1000)
	store := azurekv.New(client, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := store.Resolve(ctx, "greeting"); done <- err }()
	for e.srv.Gets("greeting") < 3 {
		time.Sleep(time.Millisecond) // polling the server, not waiting for a timer
	}
	cancel()
	check("Resolve, canceled during retries", <-done, "greeting", "resolve")

	// A deadline that passes while the vault hangs is ErrUnavailable too.
	e.srv.ClearFaults()
	e.srv.Inject(azurekvtest.Fault{Name: "greeting", Hang: true})
	dl, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	_, err = e.store.Resolve(dl, "greeting")
	testenv.WantContextError(t, "Resolve past the deadline", err, context.DeadlineExceeded, "resolve", azurekv.Backend, "greeting")
}

// Lazy opening is the core's: an open that failed (DefaultAzureCredential
// could not be made) is tried again by the next call, not kept forever.
func TestDriftLazyOpenRetried(t *testing.T) {
	srv := azurekvtest.NewServer()
	defer srv.Close()
	srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	store, err := azurekv.NewVault(srv.URL, &azurekv.Options{ClientOptions: srv.ClientOptions(retries)})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "no-such-credential")
	_, err = store.Resolve(context.Background(), "greeting")
	e := wantFields(t, "a failed open", err, secrets.CodePermission, "resolve", "greeting")
	if !strings.Contains(e.Error(), "cannot make DefaultAzureCredential") {
		t.Fatalf("a failed open: %v, want it to say the credential could not be made", err)
	}
	if n := len(srv.Log()); n != 0 {
		t.Fatalf("a failed open made %d requests", n)
	}
	// Key Vault's name rules are checked before the open: a bad name is the
	// ref's fault, whatever the credential's state.
	_, err = store.Resolve(context.Background(), "bad_name")
	wantFields(t, "a bad name while the open fails", err, secrets.CodeInvalidRef, "resolve", "bad_name")

	// Fixed configuration: the Azure CLI credential, with no az on PATH. The
	// open now succeeds and the request reaches the vault; the token cannot
	// be had, which is a different error.
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "AzureCLICredential")
	t.Setenv("PATH", t.TempDir())
	_, err = store.Resolve(context.Background(), "greeting")
	if err == nil || strings.Contains(err.Error(), "cannot make DefaultAzureCredential") {
		t.Fatalf("the open was not tried again after the configuration was fixed: %v", err)
	}
	wantFields(t, "after the open succeeded", err, secrets.CodePermission, "resolve", "greeting")
	if n := len(srv.Log()); n == 0 {
		t.Fatal("after the open succeeded no request reached the vault")
	}
}

// ResolveMany has the core's shape: one Result per ref, in order; refs that
// differ only by #field cost one GET; invalid refs fail alone; a failure of
// the whole call (the open) is on every Result and also returned.
func TestDriftResolveMany(t *testing.T) {
	e := newEnv(t)
	key := "sk-ant-" + token()
	doc, _ := json.Marshal(map[string]string{"api_key": key, "org": "org-1"})
	e.srv.Set("doc", string(doc), azurekvtest.Attributes{})
	refs := []string{"doc#api_key", "bad_name", "doc#org", "doc", "missing"}
	out, err := secrets.ResolveMany(context.Background(), e.store, refs)
	if err != nil {
		t.Fatalf("ResolveMany: %v", err)
	}
	want := []string{key, "", "org-1", string(doc), ""}
	for i, res := range out {
		if res.Ref != refs[i] {
			t.Fatalf("result %d is for %q, want %q", i, res.Ref, refs[i])
		}
		if want[i] != "" && (res.Err != nil || res.Secret.Reveal() != want[i]) {
			t.Errorf("result %q: %v", refs[i], res.Err)
		}
	}
	wantFields(t, "an invalid ref in a batch", out[1].Err, secrets.CodeInvalidRef, "resolve", "bad_name")
	wantFields(t, "a missing secret in a batch", out[4].Err, secrets.CodeNotFound, "resolve", "missing")
	if n := e.srv.Gets("doc"); n != 1 {
		t.Errorf("three refs to one secret cost %d GETs, want 1", n)
	}

	srv := azurekvtest.NewServer()
	defer srv.Close()
	store, err := azurekv.NewVault(srv.URL, &azurekv.Options{ClientOptions: srv.ClientOptions(retries)})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "no-such-credential")
	refs = []string{"a", "b#f"}
	out, err = secrets.ResolveMany(context.Background(), store, refs)
	testenv.WantBatchFailure(t, "a failed open", out, err, refs, secrets.CodePermission, azurekv.Backend)
}

// The closed state is the core's: after Close every call fails with
// ErrUnavailable; Close twice is safe.
func TestDriftClosed(t *testing.T) {
	e := newEnv(t)
	e.srv.Set("greeting", "sk-ant-test-"+token(), azurekvtest.Attributes{})
	c, ok := any(e.store).(io.Closer)
	if !ok {
		t.Fatal("*azurekv.Store has no Close")
	}
	if _, err := e.resolve(t, "greeting"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, err := e.resolve(t, "greeting")
	wantFields(t, "Resolve after Close", err, secrets.CodeUnavailable, "resolve", "greeting")
	wantFields(t, "Ping after Close", e.store.Ping(context.Background()), secrets.CodeUnavailable, "ping", "")
	out, _ := secrets.ResolveMany(context.Background(), e.store, []string{"greeting"})
	wantFields(t, "ResolveMany after Close", out[0].Err, secrets.CodeUnavailable, "resolve", "greeting")
	if err := c.Close(); err != nil {
		t.Fatalf("a second Close: %v", err)
	}
	if n := e.srv.Gets("greeting"); n != 1 {
		t.Errorf("calls after Close reached the vault: %d GETs, want 1", n)
	}
}
