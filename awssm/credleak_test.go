package awssm_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/awssm"
)

// credentialProcessEnv points the SDK's default chain at endpoint, with no
// credentials in the environment and a default profile whose
// credential_process is a shell script in t.TempDir() printing output.
func credentialProcessEnv(t *testing.T, endpoint, output string) {
	t.Helper()
	setAWSEnv(t, endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	dir := t.TempDir()
	script := filepath.Join(dir, "creds.sh")
	// The output goes through a here-document so the shell prints it as is.
	body := "#!/bin/sh\ncat <<'EOF'\n" + output + "\nEOF\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "config")
	profile := "[default]\nregion = eu-west-1\ncredential_process = " + script + "\n"
	if err := os.WriteFile(cfg, []byte(profile), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", cfg)
}

// TestCredentialProcessOutputNotLeaked is the reviewer's scenario: a
// credential_process printing valid JSON followed by trailing text. The SDK's
// error quotes the whole output, secret access key included; the store's
// errors must not, however they are printed or unwrapped.
func TestCredentialProcessOutputNotLeaked(t *testing.T) {
	f := newFake(t)
	secretKey := "sk-aws-secret-" + token()
	credentialProcessEnv(t, f.srv.URL,
		`{"Version":1,"AccessKeyId":"AKIAEXAMPLE","SecretAccessKey":"`+secretKey+`"} trailing`)

	// The premise: the SDK itself does echo the key, so a store that kept
	// its error whole would fail the checks below.
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal("LoadDefaultConfig:", err)
	}
	if _, sdkErr := cfg.Credentials.Retrieve(context.Background()); sdkErr == nil ||
		!strings.Contains(sdkErr.Error(), secretKey) {
		// Not printed: it may hold the key.
		t.Fatalf("the SDK's error no longer quotes the process output (err nil: %v); this test needs a new premise", sdkErr == nil)
	}

	store := awssm.NewFromEnv("", "", nil)
	_, resolveErr := store.Resolve(context.Background(), "kw/any")
	res, batchErr := store.ResolveMany(context.Background(), []string{"kw/a", "kw/b"})
	if batchErr != nil {
		t.Fatal("ResolveMany failed as a whole")
	}
	errs := []error{resolveErr, store.Ping(context.Background())}
	for _, r := range res {
		errs = append(errs, r.Err)
	}
	// The leak check comes first and stops the test, so that no later
	// message prints an error holding the key.
	noLeak(t, secretKey, errs...)
	if t.Failed() {
		t.FailNow()
	}
	for _, err := range errs {
		wantKeywardError(t, err, secrets.ErrPermission)
	}
	if e := wantKeywardError(t, resolveErr, secrets.ErrPermission); !strings.Contains(e.Reason, "credential") {
		t.Errorf("Reason %q does not point at the credentials", e.Reason)
	}
	// errors.As to any error type must not reach the SDK's error either.
	var opErr interface{ Service() string }
	if errors.As(resolveErr, &opErr) {
		t.Errorf("errors.As reaches the SDK's operation error %T", opErr)
	}
	if n := f.count("GetSecretValue") + f.count("BatchGetSecretValue") + f.count("ListSecrets"); n != 0 {
		t.Errorf("%d calls reached the server without credentials", n)
	}
	t.Log(resolveErr) // safe to print: checked above
}

// TestCredentialProcessServes is the control: the same setup with clean
// output resolves, so the failing test above really ran the process.
func TestCredentialProcessServes(t *testing.T) {
	f := newFake(t)
	name, v := "kw/"+token(), secretValue()
	f.put(name, v)
	credentialProcessEnv(t, f.srv.URL,
		`{"Version":1,"AccessKeyId":"AKIDKEYWARDTEST","SecretAccessKey":"sk-aws-secret-`+token()+`"}`)
	s, err := awssm.NewFromEnv("", "", nil).Resolve(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != v {
		t.Fatal("resolved a different value")
	}
}

// TestCredentialProcessConnectionRefused: good credentials and nobody
// listening is ErrUnavailable, and the dial error is still reachable.
func TestCredentialProcessConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	secretKey := "sk-aws-secret-" + token()
	credentialProcessEnv(t, "http://"+addr,
		`{"Version":1,"AccessKeyId":"AKIDKEYWARDTEST","SecretAccessKey":"`+secretKey+`"}`)
	_, err = awssm.NewFromEnv("", "", nil).Resolve(context.Background(), "kw/any")
	noLeak(t, secretKey, err)
	if t.Failed() {
		t.FailNow() // before anything prints err
	}
	wantKeywardError(t, err, secrets.ErrUnavailable)
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Errorf("the dial error is not reachable with errors.As: %v", err)
	}
	if s := fmt.Sprint(err); !strings.Contains(s, "cannot connect") {
		t.Errorf("%q does not say the connection failed", s)
	}
}
