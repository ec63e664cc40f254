package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// errorTexts returns err printed every way, and the text of every error it
// wraps, as an error reporter that prints the chain would.
func errorTexts(err error) string {
	text := fmt.Sprintf("%v | %+v | %#v | %s", err, err, err, err)
	for e := err; e != nil; e = errors.Unwrap(e) {
		text += " | " + e.Error()
	}
	return text
}

// TestMalformedAddressNotQuoted: a VAULT_ADDR (or agent or proxy address)
// that does not parse as a URL is reported by name with how to fix it, and
// its value, which may carry a password in its user info, is never quoted:
// url.Parse's error quotes the whole URL.
func TestMalformedAddressNotQuoted(t *testing.T) {
	const canary = "kwCANARYpass7f3e"
	for _, tc := range []struct{ variable, value string }{
		{"VAULT_ADDR", "http://u:" + canary + "@[::1"},
		{"VAULT_ADDR", "http://u:" + canary + "@host:port"},
		{"VAULT_AGENT_ADDR", "http://u:" + canary + "@[::1"},
		{"VAULT_PROXY_ADDR", "http://u:" + canary + "@[::1"},
		{"VAULT_HTTP_PROXY", "http://u:" + canary + "@[::1"},
	} {
		t.Run(tc.variable+" "+strings.TrimPrefix(tc.value, "http://u:"+canary), func(t *testing.T) {
			t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
			t.Setenv(tc.variable, tc.value)
			t.Setenv("VAULT_TOKEN", "kw-not-a-real-token")
			s := New(nil, nil)
			defer s.Close()
			_, rerr := s.Resolve(context.Background(), "secret/x#k")
			_, cerr := s.Client()
			perr := s.Ping(context.Background())
			for _, err := range []error{rerr, cerr, perr} {
				if !errors.Is(err, secrets.ErrInvalidRef) {
					t.Fatalf("got %v, want ErrInvalidRef", secrets.CodeOf(err))
				}
				text := errorTexts(err)
				if strings.Contains(text, canary) {
					t.Fatalf("the error quotes %s's password (%d bytes of text)", tc.variable, len(text))
				}
				example := "https://vault.example.com:8200"
				if strings.Contains(tc.variable, "PROXY") {
					example = "http://proxy.example.com:3128"
				}
				for _, want := range []string{tc.variable + " is malformed", example} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
			}
		})
	}
}
