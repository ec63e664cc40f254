package driver_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// histDriver keeps every version of each secret, oldest first, and has the
// versions and put abilities.
type histDriver struct {
	mu   sync.Mutex
	hist map[string][]driver.Value
	puts []driver.Value
}

func (h *histDriver) Get(_ context.Context, ref driver.Ref) (driver.Value, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	vs := h.hist[ref.Name]
	if len(vs) == 0 {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no secret named %s", ref.Name)
	}
	return vs[len(vs)-1], nil
}

func (h *histDriver) GetVersions(_ context.Context, ref driver.Ref, max int) ([]driver.Value, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	vs := h.hist[ref.Name]
	if len(vs) == 0 {
		return nil, driver.Errorf(secrets.CodeNotFound, "no secret named %s", ref.Name)
	}
	var out []driver.Value
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, vs[i])
	}
	return out, nil // more than max on purpose: the core cuts
}

func (h *histDriver) PutVersion(_ context.Context, ref driver.Ref, v driver.Value) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ref.Field != "" {
		return "", errors.New("the core passed a #field to PutVersion")
	}
	h.puts = append(h.puts, v)
	if v.Document != nil {
		b := new(strings.Builder)
		for _, k := range []string{"key", "note"} {
			if x, ok := v.Document[k]; ok {
				b.WriteString(k + "=" + x.(string) + ";")
			}
		}
		v = driver.Value{Data: b.String(), Document: v.Document}
	}
	v.Version = string(rune('a' + len(h.hist[ref.Name])))
	h.hist[ref.Name] = append(h.hist[ref.Name], v)
	return v.Version, nil
}

func TestResolveVersions(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	h := &histDriver{hist: map[string][]driver.Value{
		"ring": {
			{Data: "k1", Version: "1"},
			{Data: "k2", Version: "2", ExpiresAt: now.Add(-time.Minute)}, // an expired previous version: left out
			{Data: "k3", Version: "3"},
			{Data: "k4", Version: "4"},
		},
		"doc": {
			{Document: map[string]any{"key": "d1"}, Version: "1"},
			{Document: map[string]any{"key": "d2", "note": "x"}, Version: "2"},
		},
		"holes": {
			{Document: map[string]any{"key": "d1"}, Version: "1"},
			{Document: map[string]any{"other": "o2"}, Version: "2"},
			{Document: map[string]any{"key": "d3"}, Version: "3"},
		},
		"plainbefore": {
			{Data: "k1", Version: "1"},
			{Document: map[string]any{"key": "d2"}, Version: "2"},
		},
		"gone":  {{Data: "k1", Version: "1", ExpiresAt: now}},
		"names": {{Ref: "env:KEY", Version: "1"}},
	}}
	r := driver.New("hist", h, &driver.Options{Now: func() time.Time { return now }})
	ctx := context.Background()

	got := func(ref string, max int) []string {
		t.Helper()
		ss, err := r.ResolveVersions(ctx, ref, max)
		if err != nil {
			t.Fatalf("ResolveVersions(%q, %d): %v", ref, max, err)
		}
		var out []string
		for _, s := range ss {
			if s.Source.Backend != "hist" {
				t.Errorf("Source.Backend = %q", s.Source.Backend)
			}
			out = append(out, s.Version+"="+s.Reveal())
		}
		return out
	}
	if g := strings.Join(got("ring", 3), " "); g != "4=k4 3=k3" {
		// max 3 takes 4, 3, 2; 2 has expired and is left out.
		t.Errorf("ring, 3: %s", g)
	}
	if g := strings.Join(got("ring", 1), " "); g != "4=k4" {
		t.Errorf("ring, 1: %s", g)
	}
	if g := strings.Join(got("doc#key", 5), " "); g != "2=d2 1=d1" {
		t.Errorf("doc#key: %s", g)
	}
	// Version 2 of holes lacks the field: it is left out and version 1 is
	// still read (a lacking version used to fail the whole read, so a field
	// added to an existing document made the secret unreadable as a key
	// ring).
	if g := strings.Join(got("holes#key", 5), " "); g != "3=d3 1=d1" {
		t.Errorf("holes#key: %s", g)
	}

	for _, c := range []struct {
		ref  string
		max  int
		code secrets.Code
		say  string
	}{
		{"ring", 0, secrets.CodeInvalidRef, "1 to 25"},
		{"ring", secrets.MaxVersions + 1, secrets.CodeInvalidRef, "1 to 25"},
		{"missing", 2, secrets.CodeNotFound, "no secret"},
		{"plainbefore#key", 2, secrets.CodeInvalidRef, `version "1": the secret is not a JSON object`},
		{"gone", 2, secrets.CodeExpired, ""},
		{"names", 2, secrets.CodeInvalidRef, "names another ref"},
		{"ring?x=1", 2, secrets.CodeInvalidRef, ""},
	} {
		_, err := r.ResolveVersions(ctx, c.ref, c.max)
		var se *secrets.Error
		if !errors.As(err, &se) || se.Code != c.code || !strings.Contains(se.Error(), c.say) {
			t.Errorf("ResolveVersions(%q, %d) = %v, want code %v saying %q", c.ref, c.max, err, c.code, c.say)
			continue
		}
		if se.Op != "resolve versions" || se.Backend != "hist" || se.Ref != c.ref {
			t.Errorf("ResolveVersions(%q): Op %q Backend %q Ref %q", c.ref, se.Op, se.Backend, se.Ref)
		}
	}

	// A driver without the ability.
	plain := driver.New("plain", &mapDriver{values: map[string]driver.Value{"x": {Data: "v"}}}, nil)
	if _, err := plain.ResolveVersions(ctx, "x", 2); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "keeps no versions") {
		t.Errorf("no ability: %v", err)
	}
	if _, err := plain.PutVersion(ctx, "x", "v2"); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "cannot store") {
		t.Errorf("no put ability: %v", err)
	}
	if _, err := r.ResolveVersions(canceled(), "ring", 2); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestPutVersion(t *testing.T) {
	const value = "sk-put-value-0123456789"
	h := &histDriver{hist: map[string][]driver.Value{
		"doc":  {{Document: map[string]any{"note": "kept"}, Version: "a"}},
		"text": {{Data: "not json " + value, Version: "a"}},
	}}
	r := driver.New("hist", h, nil)
	ctx := context.Background()

	v, err := r.PutVersion(ctx, "new", value)
	if err != nil || v != "a" {
		t.Fatalf("PutVersion(new) = %q, %v", v, err)
	}
	if last := h.puts[len(h.puts)-1]; last.Data != value || last.Document != nil {
		t.Errorf("a plain put passed %+v", last.Document)
	}
	// A #field is set in the current document; the other fields stay.
	if v, err = r.PutVersion(ctx, "doc#key", value); err != nil || v != "b" {
		t.Fatalf("PutVersion(doc#key) = %q, %v", v, err)
	}
	if d := h.puts[len(h.puts)-1].Document; d["key"] != value || d["note"] != "kept" {
		t.Errorf("doc#key: the document put has key set %v, note %v", d["key"] == value, d["note"])
	}
	if s, err := r.Resolve(ctx, "doc#key"); err != nil || s.Reveal() != value {
		t.Errorf("Resolve(doc#key) after the put: %v", err)
	}
	// A #field of a secret that does not exist: a new document.
	if _, err = r.PutVersion(ctx, "fresh#key", value); err != nil {
		t.Fatal(err)
	}
	if d := h.puts[len(h.puts)-1].Document; len(d) != 1 || d["key"] != value {
		t.Errorf("fresh#key: put %d fields", len(d))
	}
	for _, c := range []struct {
		ref, value string
		say        string
	}{
		{"text#key", value, "not a JSON object"},
		{"x", "", "empty"},
		{"x?bogus=1", value, ""},
	} {
		_, err := r.PutVersion(ctx, c.ref, c.value)
		var se *secrets.Error
		if !errors.As(err, &se) || se.Code != secrets.CodeInvalidRef || !strings.Contains(se.Error(), c.say) {
			t.Errorf("PutVersion(%q) = %v, want ErrInvalidRef saying %q", c.ref, err, c.say)
			continue
		}
		if se.Op != "put version" || se.Ref != c.ref || strings.Contains(se.Error(), value) {
			t.Errorf("PutVersion(%q): Op %q Ref %q, or the value in %q", c.ref, se.Op, se.Ref, se.Error())
		}
	}
}

func TestFollowedThrough(t *testing.T) {
	r := driver.New("hist", &histDriver{}, nil)
	if r.FollowedThrough() != nil {
		t.Fatal("FollowedThrough before FollowThrough is not nil")
	}
	to := driver.New("other", &histDriver{}, nil)
	r.FollowThrough(to)
	if r.FollowedThrough() != to {
		t.Fatal("FollowedThrough does not return what FollowThrough was given")
	}
	r.FollowThrough(nil)
	if r.FollowedThrough() != nil {
		t.Fatal("FollowedThrough after FollowThrough(nil) is not nil")
	}
}
