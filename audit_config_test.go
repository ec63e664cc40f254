package secrets_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/secretstest"
)

// TestAuditConfigForms: the audit key takes on, off, db and db?table=NAME;
// anything else is an error naming the line and the accepted forms.
func TestAuditConfigForms(t *testing.T) {
	for _, c := range []struct {
		line  string
		on    bool
		table string
	}{
		{"audit = on", true, ""}, {"audit = off", false, ""}, {"audit = yes", true, ""},
		{"audit = db", true, secrets.DefaultAuditTable}, {"audit = DB", true, secrets.DefaultAuditTable},
		{"audit = db?table=usage", true, "usage"}, {"audit = db?table=app.usage", true, "app.usage"},
	} {
		cfg, err := secrets.ParseConfig(c.line)
		if err != nil || cfg.Audit != c.on || cfg.AuditTable != c.table {
			t.Errorf("%s: %+v, %v; want audit %v, table %q", c.line, cfg, err, c.on, c.table)
		}
	}
	for _, line := range []string{"audit = sometimes", "audit = db?bogus=1", "audit = db?table=", "audit = db?table=1x",
		"audit = db?table=a&table=b", "audit = db?table=%zz", "audit = db?table=a.b.c", "audit = dbx"} {
		_, err := secrets.ParseConfig("env = env://\n" + line)
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "line 2") ||
			!strings.Contains(err.Error(), "on or off, or db") || !strings.Contains(err.Error(), "db?table=NAME") {
			t.Errorf("%s: %v; want ErrInvalidRef naming line 2 and the forms", line, err)
		}
	}
	_, err := secrets.ParseConfig("audit = db?bogus=1")
	if err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("audit = db?bogus=1: %v; want it to name the parameter", err)
	}
}

// TestRequester: the audit decorator fills Requester from the context, for
// a Resolve and for each ref of a batch, and SlogAuditor logs it.
func TestRequester(t *testing.T) {
	fake := new(secretstest.Fake)
	fake.Set("a", "va")
	fake.Set("b", "vb")
	var got []secrets.AuditEvent
	var logs bytes.Buffer
	log := secrets.SlogAuditor(slog.New(slog.NewTextHandler(&logs, nil)))
	r := secrets.NewAudit(fake, secrets.AuditFunc(func(ctx context.Context, ev secrets.AuditEvent) {
		got = append(got, ev)
		log.Audit(ctx, ev)
	}), nil)
	ctx := secrets.WithRequester(context.Background(), "user-42")
	if secrets.RequesterFrom(ctx) != "user-42" || secrets.RequesterFrom(context.Background()) != "" {
		t.Fatal("RequesterFrom does not return what WithRequester set")
	}
	r.Resolve(ctx, "a")
	secrets.ResolveMany(ctx, r, []string{"a", "b"})
	r.Resolve(context.Background(), "b")
	if len(got) != 4 {
		t.Fatalf("%d events, want 4", len(got))
	}
	for i, ev := range got[:3] {
		if ev.Requester != "user-42" {
			t.Errorf("event %d: requester %q", i, ev.Requester)
		}
	}
	if got[3].Requester != "" {
		t.Errorf("an event without a requester has %q", got[3].Requester)
	}
	if n := strings.Count(logs.String(), "requester=user-42"); n != 3 {
		t.Errorf("SlogAuditor logged the requester %d times, want 3:\n%s", n, logs.String())
	}
}

// FuzzAuditConfig: any audit value parses or fails with ErrInvalidRef
// naming the line, never panics, and a table it accepts is a plain name.
func FuzzAuditConfig(f *testing.F) {
	for _, s := range []string{"on", "off", "db", "db?table=x", "db?table=a.b", "db?bogus=1", "db?table=%zz", "db?", "sometimes", "db?table=a&table=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		if strings.ContainsAny(value, "\n;#") {
			return // the line grammar's, not the audit key's
		}
		cfg, err := secrets.ParseConfig("audit = " + value)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "line 1") {
				t.Fatalf("audit = %q: %v", value, err)
			}
			return
		}
		if cfg.AuditTable != "" && (!cfg.Audit || strings.ContainsAny(cfg.AuditTable, " '\"`;%")) {
			t.Fatalf("audit = %q: %+v", value, cfg)
		}
	})
}
