package secrets_test

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/refs"
	"github.com/keyward/secrets/secretstest"
)

// Issue 10 item 6, as reported: awssm:bots/a%2Fb passes a one-level bots/*
// and reads bots/a/b. The fake decodes refs as every backend does.
func TestAllowRefsPercentSlashDoesNotReachDeeper(t *testing.T) {
	fake := new(secretstest.Fake)
	fake.Set("bots/a", "sk-bots-a")
	deeper := "sk-bots-a-b-CANARY"
	fake.Set("bots/a/b", deeper)
	mux := new(secrets.Mux)
	mux.Handle("awssm", fake)
	allowed, err := secrets.AllowRefs(mux, []string{"awssm:bots/*"})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := allowed.Resolve(context.Background(), "awssm:bots/a"); err != nil || s.Reveal() != "sk-bots-a" {
		t.Fatalf("awssm:bots/a: %v", err)
	}
	for _, ref := range []string{"awssm:bots/a%2Fb", "awssm:bots/a%2fb", "awssm:bots/a%252Fb", "awssm:bots/a/b"} {
		s, err := allowed.Resolve(context.Background(), ref)
		if s.Reveal() != "" || !errors.Is(err, secrets.ErrPermission) {
			t.Errorf("%s: err %v, want ErrPermission and no value", ref, err)
		}
		if err != nil && strings.Contains(err.Error(), deeper) {
			t.Errorf("%s: the error holds the value", ref)
		}
	}
	if n := fake.Calls("bots/a%2Fb") + fake.Calls("bots/a%2fb") + fake.Calls("bots/a%252Fb"); n != 0 {
		t.Errorf("refused refs reached the backend %d times", n)
	}
}

// recorder answers every ref with a fixed value and records the refs it was
// given: what a backend behind the allow list would actually read.
type recorder struct {
	mu   sync.Mutex
	refs []string
}

func (r *recorder) Resolve(_ context.Context, ref string) (secrets.Secret, error) {
	r.mu.Lock()
	r.refs = append(r.refs, ref)
	r.mu.Unlock()
	return secrets.NewSecret("sk-recorded"), nil
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.refs)
}

// The allow list matches the ref a backend will read (the %-decoded name),
// not the raw text: awssm:bots/a%2Fb names bots/a/b, two levels under bots/,
// so a one-level bots/* must refuse it. Refs whose decoded name is
// ambiguous (double encoding, dot or empty segments, a backslash) are
// refused, and refs that cannot be decoded are invalid. #field and ?options
// still match what users write.
func TestAllowRefsMatchesTheDecodedRef(t *testing.T) {
	patterns := []string{"awssm:bots/*", "awssm:shared/*/key", "awssm:one#*", "db:*", "env:ANTHROPIC_*"}
	cases := []struct {
		ref  string
		want error // nil: passed down to the backend
	}{
		{"awssm:bots/a", nil},
		{"awssm:bots/a#api_key", nil},
		{"awssm:bots/a?version=v1", nil},
		{"awssm:bots/a?stage=AWSPREVIOUS#api_key", nil},
		{"awssm:bots/a#x%2Fy", nil}, // a field with a '/' is still a field of bots/a
		{"awssm:bots/a%20b", nil},   // decodes to "bots/a b", one level under bots/
		{"db:7", nil},
		{"db:7#org", nil},
		{"env:ANTHROPIC_API_KEY", nil},
		{"env:ANTHROPIC%5FAPI_KEY", nil}, // decodes to ANTHROPIC_API_KEY
		{"awssm:one#api_key", nil},

		{"awssm:bots/a%2Fb", secrets.ErrPermission},
		{"awssm:bots/a%2fb", secrets.ErrPermission},
		{"awssm:bots/a%2Fb#api_key", secrets.ErrPermission},
		{"awssm:bots/a%252Fb", secrets.ErrPermission}, // double encoding
		{"awssm:bots/%2E%2E", secrets.ErrPermission},
		{"awssm:bots/..", secrets.ErrPermission},
		{"awssm:bots/.", secrets.ErrPermission},
		{"awssm:bots/%2e%2e%2fadmin", secrets.ErrPermission},
		{"awssm:shared//key", secrets.ErrPermission},   // an empty segment
		{"awssm:shared/../key", secrets.ErrPermission}, // a dot segment
		{`awssm:bots/a\b`, secrets.ErrPermission},
		{"awssm:one%23api_key", secrets.ErrPermission}, // a name with a literal '#', not a #field of one
		{"awssm:other", secrets.ErrPermission},
		{"env:OTHER_KEY", secrets.ErrPermission},
		{"env:ANTHROPIC%2FX", secrets.ErrPermission}, // ANTHROPIC/X: not what ANTHROPIC_* names

		{"awssm:bots/a%zz", secrets.ErrInvalidRef},
		{"awssm:bots/a%", secrets.ErrInvalidRef},
		{"awssm:bots/a%00", secrets.ErrInvalidRef},
		{"awssm:", secrets.ErrInvalidRef},
		{"awssm:bots/a#", secrets.ErrInvalidRef},
		{"awssm:bots/a?version=%zz", secrets.ErrInvalidRef},
		{"no-scheme", secrets.ErrInvalidRef},
	}
	for _, how := range []string{"Resolve", "ResolveMany"} {
		t.Run(how, func(t *testing.T) {
			aws, db, env := new(recorder), new(recorder), new(recorder)
			mux := new(secrets.Mux)
			mux.Handle("awssm", aws)
			mux.Handle("db", db)
			mux.Handle("env", env)
			allowed, err := secrets.AllowRefs(mux, patterns)
			if err != nil {
				t.Fatal(err)
			}
			errs := make([]error, len(cases))
			if how == "Resolve" {
				for i, tc := range cases {
					_, errs[i] = allowed.Resolve(context.Background(), tc.ref)
				}
			} else {
				refs := make([]string, len(cases))
				for i, tc := range cases {
					refs[i] = tc.ref
				}
				res, err := secrets.ResolveMany(context.Background(), allowed, refs)
				if err != nil || len(res) != len(refs) {
					t.Fatalf("ResolveMany: %d results, %v", len(res), err)
				}
				for i := range res {
					errs[i] = res[i].Err
				}
			}
			var passed []string
			for i, tc := range cases {
				err := errs[i]
				switch {
				case tc.want == nil && err != nil:
					t.Errorf("%q refused: %v", tc.ref, err)
				case tc.want != nil && !errors.Is(err, tc.want):
					t.Errorf("%q: err %v, want %v", tc.ref, err, tc.want)
				case tc.want != nil:
					var e *secrets.Error
					if !errors.As(err, &e) || e.Reason == "" {
						t.Errorf("%q: %v is not a *secrets.Error saying why", tc.ref, err)
					}
				}
				if tc.want == nil {
					_, rest, _ := strings.Cut(tc.ref, ":")
					passed = append(passed, rest)
				}
			}
			got := append(append(aws.got(), db.got()...), env.got()...)
			slices.Sort(got)
			slices.Sort(passed)
			if !slices.Equal(got, passed) {
				t.Errorf("the backends read %q, want exactly the allowed %q", got, passed)
			}
		})
	}
}

// A refusal says what to write instead.
func TestAllowRefsRefusalIsClear(t *testing.T) {
	allowed, err := secrets.AllowRefs(new(recorder), []string{"awssm:bots/*"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = allowed.Resolve(context.Background(), "awssm:bots/a%2Fb")
	if err == nil || !strings.Contains(err.Error(), "bots/a/b") {
		t.Errorf("the refusal %v does not name the decoded ref bots/a/b", err)
	}
	_, err = allowed.Resolve(context.Background(), "awssm:bots/a%252Fb")
	if err == nil || !strings.Contains(err.Error(), "%") {
		t.Errorf("the refusal of a double-encoded ref does not say why: %v", err)
	}
}

// FuzzAllowRefs checks, for any ref, that the allow list never panics, fails
// only with ErrPermission or ErrInvalidRef, and passes a ref to the backend
// only if what the backend will read is one level under bots/ (or a field
// or option of such a secret).
func FuzzAllowRefs(f *testing.F) {
	for _, s := range []string{
		"awssm:bots/a", "awssm:bots/a%2Fb", "awssm:bots/a%252Fb", "awssm:bots/%2E%2E", "awssm:bots/a#x/y",
		"awssm:bots/a?version=1#f", "awssm:bots/a%23b", "awssm:bots//", "awssm:bots/a%3F", "x", "awssm:bots/\\",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		rec := new(recorder)
		mux := new(secrets.Mux)
		mux.Handle("awssm", rec)
		allowed, err := secrets.AllowRefs(mux, []string{"awssm:bots/*"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = allowed.Resolve(context.Background(), ref)
		if err != nil {
			if !errors.Is(err, secrets.ErrPermission) && !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("%q: %v", ref, err)
			}
			if len(rec.got()) != 0 {
				t.Fatalf("%q was refused but reached the backend", ref)
			}
			return
		}
		_, rest, _ := strings.Cut(ref, ":")
		head, _, _ := strings.Cut(rest, "#")
		var options []string
		if _, q, ok := strings.Cut(head, "?"); ok {
			v, err := url.ParseQuery(q)
			if err != nil {
				t.Fatalf("%q passed with a bad query", ref)
			}
			for k := range v {
				options = append(options, k)
			}
		}
		r, err := refs.Parse(rest, options...)
		if err != nil {
			t.Fatalf("%q passed but the backend cannot parse it: %v", ref, err)
		}
		seg := strings.Split(r.Path, "/")
		if len(seg) != 2 || seg[0] != "bots" || seg[1] == "" || seg[1] == "." || seg[1] == ".." ||
			strings.ContainsAny(seg[1], `%\`) {
			t.Fatalf("%q passed awssm:bots/* but the backend reads %q", ref, r.Path)
		}
	})
}
