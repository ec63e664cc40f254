package azurekv

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/azurekvtest"
	"github.com/keyward/secrets/internal/refs"
)

// parseRef parses a ref as Resolve does: the core's grammar, then Key
// Vault's name and version rules.
func parseRef(s string) (ref, error) {
	r, err := New(nil, nil).ParseRef(s)
	if err != nil {
		return ref{}, err
	}
	name, version, err := splitName(r.Name)
	if err != nil {
		return ref{}, err
	}
	return ref{name: name, version: version, field: r.Field}, nil
}

type ref struct{ name, version, field string }

// FuzzParseRef checks that parsing never panics, that what it accepts obeys
// Key Vault's name and version rules, and that it round-trips.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"name", "name/4387e9f3d6e14c459867679a90fd0f79", "name#field", "name/v1#a%23b",
		"a-b-C-9", "bad_name", "a/b/c", "name/", "/v", "n%61me", "name?x=1", "name#",
		strings.Repeat("a", 127), strings.Repeat("a", 128), "ключ", "name/ver#f#g", "%zz",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseRef(s)
		if err != nil {
			return
		}
		if !nameRE.MatchString(r.name) {
			t.Fatalf("parseRef(%q) accepted name %q", s, r.name)
		}
		if r.version != "" && !versionRE.MatchString(r.version) {
			t.Fatalf("parseRef(%q) accepted version %q", s, r.version)
		}
		again := r.name
		if r.version != "" {
			again += "/" + r.version
		}
		if r.field != "" {
			// Escape only what the grammar needs, so the rebuilt ref stays
			// close to the input's length.
			again += "#" + strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F").Replace(r.field)
		}
		if len(again) > refs.MaxLen {
			return // escaping pushed it past the length limit: a different ref
		}
		r2, err := parseRef(again)
		if err != nil || r2 != r {
			t.Fatalf("parseRef(%q) = %+v, but its rebuilt form %q parses to %+v, %v", s, r, again, r2, err)
		}
	})
}

// FuzzErrorBody feeds Key Vault error answers with arbitrary bodies to the
// classifier: it must not panic, must give a code, and must never copy the
// body's message (here always marked "sk-...") into the error's text.
func FuzzErrorBody(f *testing.F) {
	f.Add(404, "SecretNotFound", "", "not found", false)
	f.Add(403, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.", false)
	f.Add(429, "Throttled", "", "slow down", false)
	f.Add(500, "", "", `{"error":`, true)
	f.Add(401, "Unauthorized", "x", "AKV10000", true)
	f.Fuzz(func(t *testing.T, status int, code, inner, message string, raw bool) {
		if status < 100 || status > 999 {
			return
		}
		mark := "sk-" + message
		body := azurekvtest.ErrorBody(code, inner, mark)
		if raw {
			body = mark
		}
		resp := &http.Response{
			StatusCode: status, Status: mark, Header: http.Header{},
			Body:    io.NopCloser(strings.NewReader(body)),
			Request: &http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "v.vault.azure.net", Path: "/secrets/x/"}, Header: http.Header{"Authorization": {"Bearer " + mark}}},
		}
		var err *secrets.Error
		if !errors.As(classify(nil, runtime.NewResponseError(resp)), &err) {
			t.Fatal("classify did not return a *secrets.Error")
		}
		want := secrets.CodeUnknown
		switch {
		case status == 404:
			want = secrets.CodeNotFound
		case status == 401 || status == 403:
			want = secrets.CodePermission
		case status == 429 || status == 408 || status >= 500:
			want = secrets.CodeUnavailable
		case status == 400:
			want = secrets.CodeInvalidRef
		}
		if err.Code != want {
			t.Fatalf("status %d classified %v, want %v", status, err.Code, want)
		}
		text := err.Error() + err.Err.Error()
		if len(message) > 0 && strings.Contains(text, mark) {
			t.Fatalf("the error text copies the body's message: %q", text)
		}
		if strings.Contains(text, "sk-") {
			t.Fatalf("the error text copies part of the body: %q", text)
		}
	})
}
