package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

// batchBackend gives secretstest.Fake a batch ability and records each batch
// it is asked for, so a test sees exactly which refs reached the backend.
type batchBackend struct {
	*secretstest.Fake
	mu      sync.Mutex
	batches [][]string
}

func (b *batchBackend) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	b.mu.Lock()
	b.batches = append(b.batches, slices.Clone(refs))
	b.mu.Unlock()
	out := make([]secrets.Result, len(refs))
	for i, ref := range refs {
		s, err := b.Fake.Resolve(ctx, ref)
		out[i] = secrets.Result{Ref: ref, Secret: s, Err: err}
	}
	return out, nil
}

func (b *batchBackend) seen() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.batches)
}

// policyFixture is a Mux serving "env:" from a batch backend holding a
// public, a private and an expired secret.
type policyFixture struct {
	backend                  *batchBackend
	mux                      *secrets.Mux
	public, private, expired string
	now                      time.Time
}

func newPolicyFixture() *policyFixture {
	f := &policyFixture{
		backend: &batchBackend{Fake: new(secretstest.Fake)},
		mux:     new(secrets.Mux),
		public:  "sk-public-" + fmt.Sprint(time.Now().UnixNano()),
		private: "sk-private-CANARY-" + fmt.Sprint(time.Now().UnixNano()),
		expired: "sk-expired-CANARY-" + fmt.Sprint(time.Now().UnixNano()),
		now:     time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
	}
	f.backend.Set("public", f.public)
	f.backend.Set("private", f.private)
	old := secrets.NewSecret(f.expired)
	old.ExpiresAt = f.now.Add(-time.Minute)
	f.backend.SetSecret("old", old)
	f.mux.Handle("env", f.backend)
	return f
}

// noCanary fails if any result's error text holds one of the fixture's
// secret values.
func (f *policyFixture) noCanary(t *testing.T, res []secrets.Result, err error) {
	t.Helper()
	var texts []string
	if err != nil {
		texts = append(texts, err.Error())
	}
	for _, r := range res {
		if r.Err != nil {
			texts = append(texts, r.Err.Error(), fmt.Sprintf("%+v", r))
		}
	}
	for _, s := range texts {
		for _, v := range []string{f.public, f.private, f.expired} {
			if strings.Contains(s, v) {
				t.Fatalf("an error holds a secret value: %q", s)
			}
		}
	}
}

// Every decorator that judges a ref is itself a BatchResolver: a batch goes
// through its policy, and secrets.Find (which returns the first BatchResolver
// it meets) can no longer walk past it to one beneath. Each decorator also
// passes the refs it lets through on as one batch, so the backend's batch
// ability is still used.
func TestBatchGoesThroughEveryLayer(t *testing.T) {
	refs := []string{"env:public", "env:private", "env:old", "env:missing"}
	type want struct {
		codes   []error  // per ref: nil for success, else the code
		backend []string // the one batch the backend must see
	}
	for _, tc := range []struct {
		name  string
		build func(f *policyFixture, events *[]secrets.AuditEvent) secrets.KeyResolver
		want  want
	}{
		{"allow", func(f *policyFixture, _ *[]secrets.AuditEvent) secrets.KeyResolver {
			r, err := secrets.AllowRefs(f.mux, []string{"env:public", "env:old", "env:missing"})
			if err != nil {
				panic(err)
			}
			return r
		}, want{[]error{nil, secrets.ErrPermission, nil, secrets.ErrNotFound}, []string{"public", "old", "missing"}}},
		{"expiry", func(f *policyFixture, _ *[]secrets.AuditEvent) secrets.KeyResolver {
			return secrets.EnforceExpiry(f.mux, &secrets.ExpiryOptions{Now: func() time.Time { return f.now }})
		}, want{[]error{nil, nil, secrets.ErrExpired, secrets.ErrNotFound}, []string{"public", "private", "old", "missing"}}},
		{"audit", func(f *policyFixture, events *[]secrets.AuditEvent) secrets.KeyResolver {
			return secrets.NewAudit(f.mux, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) {
				*events = append(*events, ev)
			}), nil)
		}, want{[]error{nil, nil, nil, secrets.ErrNotFound}, []string{"public", "private", "old", "missing"}}},
		{"timeout", func(f *policyFixture, _ *[]secrets.AuditEvent) secrets.KeyResolver {
			return secrets.WithTimeout(f.mux, time.Minute)
		}, want{[]error{nil, nil, nil, secrets.ErrNotFound}, []string{"public", "private", "old", "missing"}}},
		{"stack", func(f *policyFixture, events *[]secrets.AuditEvent) secrets.KeyResolver {
			c, err := secrets.ParseConfig("allow = env:public, env:old, env:missing\naudit = on\ntimeout = 1m")
			if err != nil {
				panic(err)
			}
			st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{
				Backends: map[string]secrets.KeyResolver{"env": f.backend},
				Auditor:  secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { *events = append(*events, ev) }),
				Now:      func() time.Time { return f.now },
			})
			if err != nil {
				panic(err)
			}
			return st
		}, want{[]error{nil, secrets.ErrPermission, secrets.ErrExpired, secrets.ErrNotFound}, []string{"public", "old", "missing"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check := func(t *testing.T, how string, call func(r secrets.KeyResolver) ([]secrets.Result, error)) {
				f := newPolicyFixture()
				var events []secrets.AuditEvent
				r := tc.build(f, &events)
				res, err := call(r)
				if err != nil {
					t.Fatalf("%s: %v", how, err)
				}
				f.noCanary(t, res, err)
				if len(res) != len(refs) {
					t.Fatalf("%s: %d results for %d refs", how, len(res), len(refs))
				}
				for i, r := range res {
					code := tc.want.codes[i]
					if r.Ref != refs[i] {
						t.Errorf("%s: result %d is for %q, want %q", how, i, r.Ref, refs[i])
					}
					if code == nil && r.Err != nil || code != nil && !errors.Is(r.Err, code) {
						t.Errorf("%s: %q: err %v, want %v", how, refs[i], r.Err, code)
					}
					if r.Err != nil && r.Secret.Reveal() != "" {
						t.Errorf("%s: %q failed but returned a value", how, refs[i])
					}
				}
				if got := f.backend.seen(); len(got) != 1 || !slices.Equal(got[0], tc.want.backend) {
					t.Errorf("%s: the backend's batch calls were %q, want one with %q", how, got, tc.want.backend)
				}
				if tc.name == "audit" || tc.name == "stack" {
					if len(events) != len(refs) {
						t.Fatalf("%s: %d audit events for %d refs", how, len(events), len(refs))
					}
					for i, ev := range events {
						if ev.Ref != refs[i] || ev.Outcome != secrets.Outcome(res[i].Err) {
							t.Errorf("%s: audit event %d = %q %q, want %q %q", how, i, ev.Ref, ev.Outcome, refs[i], secrets.Outcome(res[i].Err))
						}
					}
				}
			}
			t.Run("ResolveMany", func(t *testing.T) {
				check(t, "secrets.ResolveMany", func(r secrets.KeyResolver) ([]secrets.Result, error) {
					return secrets.ResolveMany(context.Background(), r, refs)
				})
			})
			// Find must return the decorator itself, never an ability
			// beneath its policy.
			t.Run("Find", func(t *testing.T) {
				check(t, "Find[BatchResolver]", func(r secrets.KeyResolver) ([]secrets.Result, error) {
					b, ok := secrets.Find[secrets.BatchResolver](r)
					if !ok {
						t.Fatal("Find found no batch ability")
					}
					if b.(any) != r.(any) {
						t.Errorf("Find[BatchResolver] walked past the %T to a %T", r, b)
					}
					return b.ResolveMany(context.Background(), refs)
				})
			})
		})
	}
}

// shortBatch answers only the first ref of every batch: a misbehaving
// backend. A batch must still give one Result per ref, and never a zero
// Secret with a nil error for a ref nobody answered.
type shortBatch struct{ *secretstest.Fake }

func (s shortBatch) ResolveMany(ctx context.Context, refs []string) ([]secrets.Result, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	v, err := s.Fake.Resolve(ctx, refs[0])
	return []secrets.Result{{Ref: refs[0], Secret: v, Err: err}}, nil
}

func TestBatchKeepsItsShape(t *testing.T) {
	b := shortBatch{new(secretstest.Fake)}
	b.Set("a", "sk-a")
	b.Set("b", "sk-b")
	mux := new(secrets.Mux)
	mux.Handle("env", b)
	allowed, err := secrets.AllowRefs(mux, []string{"env:*", "nope:*"})
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{"env:a", "env:b", "nope:x"}
	for name, r := range map[string]secrets.KeyResolver{
		"mux": mux, "allow": allowed, "expiry": secrets.EnforceExpiry(mux, nil),
		"audit": secrets.NewAudit(mux, secrets.AuditFunc(func(context.Context, secrets.AuditEvent) {}), nil),
	} {
		res, err := secrets.ResolveMany(context.Background(), r, refs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(res) != len(refs) {
			t.Fatalf("%s: %d results for %d refs", name, len(res), len(refs))
		}
		if res[0].Err != nil || res[0].Secret.Reveal() != "sk-a" {
			t.Errorf("%s: env:a: %v", name, res[0].Err)
		}
		if !errors.Is(res[1].Err, secrets.ErrUnavailable) {
			t.Errorf("%s: env:b, which the backend did not answer: err %v, want ErrUnavailable", name, res[1].Err)
		}
		if !errors.Is(res[2].Err, secrets.ErrUnknownScheme) && !errors.Is(res[2].Err, secrets.ErrInvalidRef) {
			t.Errorf("%s: nope:x: err %v", name, res[2].Err)
		}
		for i, r := range res {
			if r.Ref != refs[i] {
				t.Errorf("%s: result %d is for %q, want %q", name, i, r.Ref, refs[i])
			}
		}
	}
}
