package secrets_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// historyBackend is a backend with the versions and put abilities: each ref's
// versions, newest first.
type historyBackend struct {
	hist map[string][]string
}

func (v *historyBackend) Resolve(_ context.Context, ref string) (secrets.Secret, error) {
	if h := v.hist[ref]; len(h) > 0 {
		return secrets.NewSecret(h[0]), nil
	}
	return secrets.Secret{}, &secrets.Error{Op: "resolve", Ref: ref, Code: secrets.CodeNotFound}
}

func (v *historyBackend) ResolveVersions(_ context.Context, ref string, max int) ([]secrets.Secret, error) {
	var out []secrets.Secret
	for _, x := range v.hist[ref][:min(max, len(v.hist[ref]))] {
		out = append(out, secrets.NewSecret(x))
	}
	return out, nil
}

func (v *historyBackend) PutVersion(_ context.Context, ref, value string) (string, error) {
	v.hist[ref] = append([]string{value}, v.hist[ref]...)
	return "v" + string(rune('0'+len(v.hist[ref]))), nil
}

// hiddenBackend hides a backend behind a decorator, as a host's own may.
type hiddenBackend struct{ secrets.KeyResolver }

func (w hiddenBackend) Unwrap() secrets.KeyResolver { return w.KeyResolver }

// plainBackend keeps no versions.
type plainBackend struct{}

func (plainBackend) Resolve(context.Context, string) (secrets.Secret, error) {
	return secrets.NewSecret("x"), nil
}

func TestMuxVersions(t *testing.T) {
	sm := &historyBackend{hist: map[string][]string{"master": {"k2", "k1"}}}
	m := new(secrets.Mux)
	m.Handle("sm", hiddenBackend{sm})
	m.Handle("plain", plainBackend{})
	ctx := context.Background()

	ss, err := m.ResolveVersions(ctx, "sm:master", 5)
	if err != nil || len(ss) != 2 || ss[0].Reveal() != "k2" || ss[1].Reveal() != "k1" {
		t.Fatalf("ResolveVersions(sm:master) = %d secrets, %v", len(ss), err)
	}
	v, err := m.PutVersion(ctx, "sm:master", "k3")
	if err != nil || v != "v3" || sm.hist["master"][0] != "k3" {
		t.Fatalf("PutVersion(sm:master) = %q, %v", v, err)
	}

	for _, c := range []struct {
		ref  string
		code secrets.Code
		say  string
	}{
		{"plain:x", secrets.CodeInvalidRef, `scheme "plain" cannot`},
		{"nope:x", secrets.CodeUnknownScheme, `"nope"`},
		{"noscheme", secrets.CodeInvalidRef, "no scheme"},
	} {
		_, err := m.ResolveVersions(ctx, c.ref, 2)
		_, perr := m.PutVersion(ctx, c.ref, "k")
		for what, err := range map[string]error{"resolve versions": err, "put version": perr} {
			var se *secrets.Error
			if !errors.As(err, &se) || se.Code != c.code || se.Op != what || !strings.Contains(se.Reason, c.say) {
				t.Errorf("%s %q: %v, want code %v, op %q, saying %q", what, c.ref, err, c.code, what, c.say)
			}
		}
	}
}

// TestMuxVersionsLazy: a backend behind a Lazy not opened yet (OpenConfig
// serves a bare URL whose opener needs a variable so) is opened to find the
// ability; an opener that fails gives its own error.
func TestMuxVersionsLazy(t *testing.T) {
	sm := &historyBackend{hist: map[string][]string{"master": {"k2", "k1"}}}
	m := new(secrets.Mux)
	m.Handle("sm", secrets.Lazy(func(context.Context) (secrets.KeyResolver, error) { return sm, nil }))
	m.Handle("down", secrets.Lazy(func(context.Context) (secrets.KeyResolver, error) {
		return nil, &secrets.Error{Op: "open", Backend: "down", Code: secrets.CodeInvalidRef, Reason: "set DOWN_URL"}
	}))
	ctx := context.Background()
	if ss, err := m.ResolveVersions(ctx, "sm:master", 2); err != nil || len(ss) != 2 {
		t.Fatalf("ResolveVersions through an unopened Lazy: %d, %v", len(ss), err)
	}
	if _, err := m.PutVersion(ctx, "sm:master", "k3"); err != nil {
		t.Fatalf("PutVersion through a Lazy: %v", err)
	}
	_, err := m.ResolveVersions(ctx, "down:master", 2)
	if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "set DOWN_URL") {
		t.Fatalf("a Lazy whose open fails: %v, want its error", err)
	}
}
