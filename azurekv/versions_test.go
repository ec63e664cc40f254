package azurekv_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// vaultVersion is one version the history fake keeps.
type vaultVersion struct {
	id       string
	value    string
	disabled bool
	created  time.Time
}

// vaultHistory is a Key Vault for the SDK's fake server (azsecrets/fake)
// that keeps every version of each secret, lists them two a page in an
// order other than creation, and sets new ones.
type vaultHistory struct {
	mu   sync.Mutex
	hist map[string][]vaultVersion // in creation order
	now  time.Time
}

func (h *vaultHistory) server() *fake.Server {
	return &fake.Server{
		GetSecret: func(_ context.Context, name, version string, _ *azsecrets.GetSecretOptions) (resp azfake.Responder[azsecrets.GetSecretResponse], errResp azfake.ErrorResponder) {
			h.mu.Lock()
			defer h.mu.Unlock()
			vs := h.hist[name]
			var v *vaultVersion
			for i := range vs {
				if vs[i].id == version || (version == "" && i == len(vs)-1) {
					v = &vs[i]
				}
			}
			switch {
			case v == nil:
				errResp.SetResponseError(http.StatusNotFound, "SecretNotFound")
			case v.disabled:
				errResp.SetResponseError(http.StatusForbidden, "Forbidden")
			default:
				resp.SetResponse(http.StatusOK, azsecrets.GetSecretResponse{Secret: h.secret(name, *v, true)}, nil)
			}
			return
		},
		NewListSecretPropertiesVersionsPager: func(name string, _ *azsecrets.ListSecretPropertiesVersionsOptions) (resp azfake.PagerResponder[azsecrets.ListSecretPropertiesVersionsResponse]) {
			h.mu.Lock()
			defer h.mu.Unlock()
			vs := h.hist[name]
			// Oldest last but one, newest first, then the rest: not in
			// creation order, as Key Vault promises none.
			var order []vaultVersion
			for i := len(vs) - 1; i >= 0; i -= 2 {
				order = append(order, vs[i])
			}
			for i := len(vs) - 2; i >= 0; i -= 2 {
				order = append(order, vs[i])
			}
			for start := 0; start < len(order); start += 2 {
				var page azsecrets.ListSecretPropertiesVersionsResponse
				for _, v := range order[start:min(start+2, len(order))] {
					s := h.secret(name, v, false)
					page.Value = append(page.Value, &azsecrets.SecretProperties{ID: s.ID, Attributes: s.Attributes})
				}
				resp.AddPage(http.StatusOK, page, nil)
			}
			return
		},
		SetSecret: func(_ context.Context, name string, p azsecrets.SetSecretParameters, _ *azsecrets.SetSecretOptions) (resp azfake.Responder[azsecrets.SetSecretResponse], errResp azfake.ErrorResponder) {
			v := h.add(name, *p.Value, false)
			h.mu.Lock()
			defer h.mu.Unlock()
			resp.SetResponse(http.StatusOK, azsecrets.SetSecretResponse{Secret: h.secret(name, v, true)}, nil)
			return
		},
	}
}

func (h *vaultHistory) secret(name string, v vaultVersion, withValue bool) azsecrets.Secret {
	s := azsecrets.Secret{
		ID:         to.Ptr(azsecrets.ID("https://fake-vault.vault.azure.net/secrets/" + name + "/" + v.id)),
		Attributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(!v.disabled), Created: to.Ptr(v.created)},
	}
	if withValue {
		s.Value = to.Ptr(v.value)
	}
	return s
}

// add stores a version created a minute after the last.
func (h *vaultHistory) add(name, value string, disabled bool) vaultVersion {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.now = h.now.Add(time.Minute)
	v := vaultVersion{id: fmt.Sprintf("%032x", h.now.Unix()), value: value, disabled: disabled, created: h.now}
	h.hist[name] = append(h.hist[name], v)
	return v
}

func TestKeyVaultKeyVersions(t *testing.T) {
	h := &vaultHistory{hist: map[string][]vaultVersion{}, now: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	client, err := azsecrets.NewClient("https://fake-vault.vault.azure.net/", &azfake.TokenCredential{},
		&azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: fake.NewServerTransport(h.server())}})
	if err != nil {
		t.Fatal(err)
	}
	store := azurekv.New(client, nil)
	ctx := context.Background()
	var vals []string
	for i := range 5 {
		vals = append(vals, fmt.Sprintf("sk-kv-%d-%s", i+1, token()))
	}

	var ids []string
	for i, v := range vals {
		if i == 2 {
			h.add("keyward-master", v, true) // version 3 is disabled
			ids = append(ids, "")
			continue
		}
		id, err := store.PutVersion(ctx, "keyward-master", v)
		if err != nil || id == "" {
			t.Fatalf("PutVersion %d = %q, %v", i+1, id, err)
		}
		ids = append(ids, id)
	}
	got := func(ref string, max int) string {
		t.Helper()
		ss, err := store.ResolveVersions(ctx, ref, max)
		if err != nil {
			t.Fatalf("ResolveVersions(%q, %d): %v", ref, max, err)
		}
		var out []string
		for _, s := range ss {
			n := 0
			for i, v := range vals {
				if s.Reveal() == v && s.Version == ids[i] {
					n = i + 1
				}
			}
			out = append(out, fmt.Sprint(n))
		}
		return strings.Join(out, " ")
	}
	// Newest first by creation time, the disabled version 3 left out.
	if g := got("keyward-master", 5); g != "5 4 2 1" {
		t.Errorf("all: %s", g)
	}
	if g := got("keyward-master", 3); g != "5 4 2" {
		t.Errorf("max 3: %s", g)
	}
	if g := got("keyward-master", 1); g != "5" {
		t.Errorf("max 1: %s", g)
	}
	// A #field: set in the current document.
	h.add("keyward-doc", `{"key":"`+vals[0]+`","note":"kept"}`, false)
	if _, err := store.PutVersion(ctx, "keyward-doc#key", vals[1]); err != nil {
		t.Fatal(err)
	}
	ss, err := store.ResolveVersions(ctx, "keyward-doc#key", 5)
	if err != nil || len(ss) != 2 || ss[0].Reveal() != vals[1] || ss[1].Reveal() != vals[0] {
		t.Fatalf("doc#key: %d versions, %v", len(ss), err)
	}
	if s, err := store.Resolve(ctx, "keyward-doc#note"); err != nil || s.Reveal() != "kept" {
		t.Errorf("doc#note after the put: %v", err)
	}
	for _, ref := range []string{"keyward-master/" + ids[0]} {
		_, err := store.ResolveVersions(ctx, ref, 2)
		_, perr := store.PutVersion(ctx, ref, vals[0])
		for _, e := range []error{err, perr} {
			if !errors.Is(e, secrets.ErrInvalidRef) || !strings.Contains(e.Error(), "without /version") {
				t.Errorf("%s: %v", ref, e)
			}
		}
	}
	_, err = store.ResolveVersions(ctx, "keyward-missing", 3)
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Errorf("a missing secret: %v", err)
	}
	for _, v := range vals {
		if strings.Contains(err.Error(), v) {
			t.Error("an error holds a value")
		}
	}
}
