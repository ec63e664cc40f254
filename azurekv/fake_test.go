package azurekv_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets/fake"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/azurekv"
)

// fakeSecret is one version the SDK's fake server answers with.
type fakeSecret struct {
	value string
	attrs *azsecrets.SecretAttributes
}

// newFakeStore returns a Store whose client talks to the SDK's own fake
// server (azsecrets/fake), which answers GetSecret from versions
// ("name" -> version id -> secret; the "" version is the current one).
func newFakeStore(t *testing.T, versions map[string]map[string]fakeSecret, now time.Time) (*azurekv.Store, *[]string) {
	t.Helper()
	var calls []string
	srv := fake.Server{
		GetSecret: func(ctx context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			calls = append(calls, name+"/"+version)
			s, ok := versions[name][version]
			if !ok {
				errResp.SetResponseError(http.StatusNotFound, "SecretNotFound")
				return
			}
			ver := version
			if ver == "" {
				ver = "current0000000000000000000000000"
			}
			resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: azsecrets.Secret{
				ID:         to.Ptr(azsecrets.ID("https://fake-vault.vault.azure.net/secrets/" + name + "/" + ver)),
				Value:      to.Ptr(s.value),
				Attributes: s.attrs,
			}}, nil)
			return
		},
	}
	client, err := azsecrets.NewClient("https://fake-vault.vault.azure.net/", &azfake.TokenCredential{},
		&azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(&srv)}})
	if err != nil {
		t.Fatal(err)
	}
	return azurekv.New(client, &azurekv.Options{Now: func() time.Time { return now }}), &calls
}

func TestSDKFake(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour)
	cur, old := "sk-ant-cur-"+token(), "sk-ant-old-"+token()
	store, calls := newFakeStore(t, map[string]map[string]fakeSecret{
		"bot-key": {
			"":                                 {value: cur, attrs: &azsecrets.SecretAttributes{Enabled: to.Ptr(true), Expires: &exp}},
			"0123456789abcdef0123456789abcdef": {value: old},
		},
		"bot-doc": {"": {value: `{"api_key":"` + cur + `"}`}},
		// The fake answers 200 with enabled:false, as an emulator might;
		// Key Vault itself answers 403 (see TestDisabled).
		"off":   {"": {value: cur, attrs: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}},
		"early": {"": {value: cur, attrs: &azsecrets.SecretAttributes{NotBefore: to.Ptr(now.Add(time.Minute))}}},
		"late":  {"": {value: cur, attrs: &azsecrets.SecretAttributes{Expires: to.Ptr(now)}}},
	}, now)
	ctx := context.Background()

	s, err := store.Resolve(ctx, "bot-key")
	if err != nil {
		t.Fatal(err)
	}
	if s.Reveal() != cur || s.Version != "current0000000000000000000000000" || !s.ExpiresAt.Equal(exp) {
		t.Errorf("found: version %q, expires %v, value matches %v", s.Version, s.ExpiresAt, s.Reveal() == cur)
	}
	s, err = store.Resolve(ctx, "bot-key/0123456789abcdef0123456789abcdef")
	if err != nil || s.Reveal() != old || s.Version != "0123456789abcdef0123456789abcdef" {
		t.Errorf("version: %v, version %q", err, s.Version)
	}
	s, err = store.Resolve(ctx, "bot-doc#api_key")
	if err != nil || s.Reveal() != cur {
		t.Errorf("field: %v", err)
	}
	want := []string{"bot-key/", "bot-key/0123456789abcdef0123456789abcdef", "bot-doc/"}
	if len(*calls) != len(want) {
		t.Fatalf("fake server saw %q, want %q", *calls, want)
	}
	for i := range want {
		if (*calls)[i] != want[i] {
			t.Errorf("call %d = %q, want %q", i, (*calls)[i], want[i])
		}
	}

	for _, c := range []struct {
		ref    string
		code   secrets.Code
		reason string
	}{
		{"nope", secrets.CodeNotFound, "no such secret"},
		{"bot-key/ffffffffffffffffffffffffffffffff", secrets.CodeNotFound, "no such secret"},
		{"off", secrets.CodePermission, "disabled"},
		{"early", secrets.CodeNotFound, "not valid before 2026-11-26T12:01:00Z"},
		{"late", secrets.CodeExpired, "expired at 2026-11-26T12:00:00Z"},
		{"bot-doc#missing", secrets.CodeNotFound, "no field"},
		{"bot-key#api_key", secrets.CodeInvalidRef, "not a JSON object"},
	} {
		_, err := store.Resolve(ctx, c.ref)
		t.Run(c.ref, func(t *testing.T) { wantErr(t, err, c.code, c.reason, cur) })
	}
	var re *azurekv.ResponseError
	if _, err := store.Resolve(ctx, "nope"); !errors.As(err, &re) || re.ErrorCode != "SecretNotFound" {
		t.Errorf("404 cause: %v", err)
	}
}
