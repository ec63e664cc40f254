package secrets_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/envstore"
	"github.com/keyward/secrets/secretstest"
)

const leakValue = "sk-ant-api03-LEAKCHECK-9f8e7d6c5b4a"

func TestSecretNeverPrintsValue(t *testing.T) {
	s := secrets.NewSecret(leakValue)
	s.Version = "v7"
	s.ExpiresAt = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v", "%T"} {
		fmt.Fprintf(&out, verb+"\n", s)
		fmt.Fprintf(&out, verb+"\n", &s)
		fmt.Fprintf(&out, verb+"\n", []secrets.Secret{s})
		fmt.Fprintf(&out, verb+"\n", struct{ Key secrets.Secret }{s})
		fmt.Fprintf(&out, verb+"\n", map[string]any{"k": s})
		fmt.Fprintf(&out, verb+"\n", hidden{name: "bot", key: s})
		fmt.Fprintf(&out, verb+"\n", &hidden{name: "bot", key: s})
	}
	fmt.Fprint(&out, s, &s)
	fmt.Fprintln(&out, s, &s)
	out.WriteString(s.String() + s.GoString())
	j, err := json.Marshal(map[string]any{"v": s, "p": &s, "list": []secrets.Secret{s}})
	if err != nil {
		t.Fatal(err)
	}
	out.Write(j)
	txt, _ := s.MarshalText()
	out.Write(txt)
	for _, h := range []slog.Handler{slog.NewJSONHandler(&out, nil), slog.NewTextHandler(&out, nil)} {
		l := slog.New(h)
		l.Info("m", "secret", s, "ptr", &s, "group", slog.GroupValue(slog.Any("inner", s)))
		l.Info("m", slog.Any("struct", struct{ Key secrets.Secret }{s}))
		l.Info("m", slog.Any("unexported", hidden{name: "bot", key: s}))
	}
	if strings.Contains(out.String(), leakValue) || strings.Contains(out.String(), "LEAKCHECK") {
		t.Fatalf("a printed or encoded Secret shows the value:\n%s", out.String())
	}
	if !strings.Contains(out.String(), secrets.Redacted) {
		t.Fatal("no redaction marker in the output")
	}
	if !strings.Contains(s.GoString(), `Version:"v7"`) {
		t.Errorf("GoString should keep the non-secret metadata: %s", s.GoString())
	}
	if s.Reveal() != leakValue || s.Len() != len(leakValue) {
		t.Fatal("Reveal/Len do not return the value")
	}
}

// hidden holds a Secret in an unexported field, where fmt cannot call its
// methods and prints its fields instead.
type hidden struct {
	name string
	key  secrets.Secret
}

func TestSecretExpiredAt(t *testing.T) {
	now := time.Now()
	s := secrets.NewSecret("x")
	if s.ExpiredAt(now) {
		t.Error("a secret without expiry expired")
	}
	s.ExpiresAt = now
	if !s.ExpiredAt(now) {
		t.Error("a secret is expired at its ExpiresAt")
	}
	if s.ExpiredAt(now.Add(-time.Nanosecond)) {
		t.Error("a secret expired before its ExpiresAt")
	}
}

type sdkError struct{ code string }

func (e *sdkError) Error() string { return "sdk: " + e.code }

func TestErrorUnwrapsToCodeAndCause(t *testing.T) {
	cause := &sdkError{code: "ResourceNotFoundException"}
	err := fmt.Errorf("outer: %w", secrets.NewError("resolve", "awssm", "prod/key", secrets.CodeNotFound, "no such secret", cause))
	if !errors.Is(err, secrets.ErrNotFound) {
		t.Error("errors.Is(err, ErrNotFound) is false")
	}
	if errors.Is(err, secrets.ErrUnavailable) {
		t.Error("errors.Is matched another code")
	}
	var se *sdkError
	if !errors.As(err, &se) || se != cause {
		t.Error("errors.As cannot reach the SDK error")
	}
	var ke *secrets.Error
	if !errors.As(err, &ke) || ke.Backend != "awssm" || ke.Ref != "prod/key" || ke.Op != "resolve" {
		t.Errorf("errors.As(*secrets.Error) = %+v", ke)
	}
	want := `keyward: awssm: resolve "prod/key": not found: no such secret: sdk: ResourceNotFoundException`
	if got := ke.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if secrets.CodeOf(err) != secrets.CodeNotFound || secrets.Outcome(err) != "not_found" {
		t.Errorf("CodeOf/Outcome = %v/%v", secrets.CodeOf(err), secrets.Outcome(err))
	}
	if secrets.Outcome(nil) != "ok" || secrets.Outcome(context.Canceled) != "canceled" ||
		secrets.CodeOf(context.DeadlineExceeded) != secrets.CodeUnavailable || secrets.CodeOf(errors.New("x")) != secrets.CodeUnknown {
		t.Error("Outcome/CodeOf of nil, cancel, deadline or a plain error is wrong")
	}
	if got := secrets.Code(200).Error(); got != "code 200" {
		t.Errorf("unknown code text = %q", got)
	}
}

func TestMux(t *testing.T) {
	ctx := context.Background()
	db, cloud := new(secretstest.Fake), new(secretstest.Fake)
	db.Set("42", "sk-db-42")
	cloud.Set("arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/anthropic-AbCdEf", `{"api_key":"sk-arn"}`)
	var m secrets.Mux // the zero value is ready
	m.Handle("db", db)
	m.Handle("awssm", cloud)

	if s, err := m.Resolve(ctx, "db:42"); err != nil || s.Reveal() != "sk-db-42" {
		t.Fatalf("db:42 = %v", err)
	}
	s, err := m.Resolve(ctx, "awssm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/anthropic-AbCdEf#api_key")
	if err != nil || s.Reveal() != "sk-arn" {
		t.Fatalf("an ARN after awssm: must keep its colons: %v", err)
	}
	_, err = m.Resolve(ctx, "vault:secret/x")
	if !errors.Is(err, secrets.ErrUnknownScheme) || !strings.Contains(err.Error(), "awssm, db") {
		t.Fatalf("unknown scheme: got %v, want ErrUnknownScheme listing awssm, db", err)
	}
	for _, bad := range []string{"", "no-colon", "Upper:x", "1db:x", ":x"} {
		if _, err := m.Resolve(ctx, bad); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("Resolve(%q) = %v, want ErrInvalidRef", bad, err)
		}
	}
	if got := m.Schemes(); strings.Join(got, ",") != "awssm,db" {
		t.Errorf("Schemes() = %v", got)
	}

	res, err := m.ResolveMany(ctx, []string{"db:42", "nope:1", "db:missing", "awssm:arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/anthropic-AbCdEf#api_key"})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[0].Secret.Reveal() != "sk-db-42" || !errors.Is(res[1].Err, secrets.ErrUnknownScheme) ||
		!errors.Is(res[2].Err, secrets.ErrNotFound) || res[3].Secret.Reveal() != "sk-arn" || res[3].Ref == "" {
		t.Fatalf("ResolveMany results wrong: %v", res)
	}

	mustPanic(t, "duplicate scheme", func() { m.Handle("db", db) })
	mustPanic(t, "bad scheme", func() { m.Handle("DB", db) })
	mustPanic(t, "nil resolver", func() { m.Handle("x", nil) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

func TestMuxConformance(t *testing.T) {
	secretstest.RunConformance(t, secretstest.Harness{
		New: func(t *testing.T) secretstest.Subject {
			f := new(secretstest.Fake)
			f.SetClock(time.Now)
			m := new(secrets.Mux)
			m.Handle("fake", f)
			return secretstest.Subject{Resolver: m, Put: func(t *testing.T, name, value string, exp time.Time) (string, error) {
				s := secrets.NewSecret(value)
				s.ExpiresAt = exp
				return "fake:" + f.SetSecret(name, s), nil
			}}
		},
		Backend: "fake",
		// The Mux's own errors (no scheme) name no backend; the backend's
		// errors name its local ref.
		ErrorRef: func(ref string) (string, string) {
			if scheme, rest, ok := strings.Cut(ref, ":"); ok && scheme == "fake" {
				return "fake", rest
			}
			return "", ref
		},
		MissingRef:  "fake:missing",
		InvalidRefs: []string{"nocolon", "fake:", "fake:x#"},
		Documents:   true,
		Expiry:      true,
	})
}

func TestEnforceExpiry(t *testing.T) {
	f := new(secretstest.Fake)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	s := secrets.NewSecret("sk-expiring-1")
	s.ExpiresAt = now.Add(time.Minute)
	f.SetSecret("k", s)
	clock := now
	r := secrets.EnforceExpiry(f, &secrets.ExpiryOptions{Now: func() time.Time { return clock }})
	if _, err := r.Resolve(context.Background(), "k"); err != nil {
		t.Fatalf("before expiry: %v", err)
	}
	clock = now.Add(time.Minute)
	_, err := r.Resolve(context.Background(), "k")
	if !errors.Is(err, secrets.ErrExpired) || !strings.Contains(err.Error(), "2026-11-26T12:01:00Z") {
		t.Fatalf("at expiry: got %v, want ErrExpired naming the time", err)
	}
	if strings.Contains(err.Error(), "sk-expiring") {
		t.Fatal("the expiry error holds the value")
	}
}

func TestAudit(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("k", "sk-audited-value-1")
	var events []secrets.AuditEvent
	clock := time.Unix(1000, 0)
	r := secrets.NewAudit(f, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) {
		events = append(events, ev)
	}), &secrets.AuditOptions{Now: func() time.Time { clock = clock.Add(3 * time.Millisecond); return clock }})
	r.Resolve(context.Background(), "k")
	r.Resolve(context.Background(), "missing")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.Resolve(ctx, "k")
	if len(events) != 3 {
		t.Fatalf("got %d events, want 3", len(events))
	}
	if e := events[0]; e.Ref != "k" || e.Backend != "fake" || e.Outcome != "ok" || e.Err != nil || e.Latency != 3*time.Millisecond {
		t.Errorf("success event = %+v", e)
	}
	if e := events[1]; e.Outcome != "not_found" || !errors.Is(e.Err, secrets.ErrNotFound) {
		t.Errorf("not-found event = %+v", e)
	}
	if e := events[2]; e.Outcome != "canceled" {
		t.Errorf("canceled event = %+v", e)
	}

	// An answer whose Source says cached, stale and plaintext is reported as such.
	marker := resolverFunc(func(ctx context.Context, ref string) (secrets.Secret, error) {
		s, err := f.Resolve(ctx, ref)
		s.Source.Cached, s.Source.Stale, s.Source.Plaintext = true, true, true
		return s, err
	})
	var buf bytes.Buffer
	secrets.NewAudit(marker, secrets.SlogAuditor(slog.New(slog.NewJSONHandler(&buf, nil))), nil).Resolve(context.Background(), "k")
	for _, want := range []string{`"cache_hit":true`, `"stale":true`, `"plaintext":true`, `"level":"WARN"`, `"backend":"fake"`} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("audit log %s lacks %s", buf.String(), want)
		}
	}
	if strings.Contains(buf.String(), "sk-audited") {
		t.Fatal("the audit log holds the value")
	}
}

type resolverFunc func(ctx context.Context, ref string) (secrets.Secret, error)

func (f resolverFunc) Resolve(ctx context.Context, ref string) (secrets.Secret, error) {
	return f(ctx, ref)
}

func TestOpenRegistry(t *testing.T) {
	ctx := context.Background()
	_, err := secrets.Open(ctx, "nosuch://x")
	if !errors.Is(err, secrets.ErrUnknownScheme) || !strings.Contains(err.Error(), "env") || !strings.Contains(err.Error(), "forgotten import?") {
		t.Fatalf("unknown URL scheme: %v", err)
	}
	_, err = secrets.Open(ctx, "env://user:hunter2@host")
	if !errors.Is(err, secrets.ErrInvalidRef) || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("a URL with a password: %v", err)
	}
	_, err = secrets.Open(ctx, "%%%")
	if err == nil || strings.Contains(err.Error(), "%%%") {
		t.Fatalf("an unparsable URL: %v", err)
	}
	mustPanic(t, "duplicate scheme", func() {
		secrets.Register("env", func(context.Context, *url.URL) (secrets.KeyResolver, error) { return nil, nil })
	})
	mustPanic(t, "nil opener", func() { secrets.Register("kwtest-nil", nil) })
}

func TestParseConfig(t *testing.T) {
	c, err := secrets.ParseConfig(`
# keyward configuration
db      = fernet://?table=api_keys   # the encrypted column
env     = env://?allow=ANTHROPIC_*,OPENAI_*
audit   = on
timeout = 5s
cache   = size=100&ttl=1m`)
	if err != nil {
		t.Fatal(err)
	}
	if c.Backends["db"] != "fernet://?table=api_keys" || c.Backends["env"] != "env://?allow=ANTHROPIC_*,OPENAI_*" ||
		!c.Audit || c.Timeout != 5*time.Second || c.Cache != "size=100&ttl=1m" || len(c.Backends) != 2 {
		t.Fatalf("ParseConfig = %+v", c)
	}
	inline, err := secrets.ParseConfig("env = env://; audit = off")
	if err != nil || inline.Audit || inline.Backends["env"] != "env://" {
		t.Fatalf("inline config = %+v, %v", inline, err)
	}
	for text, want := range map[string]string{
		"db fernet://":                "line 1: want name = value",
		"db = fernet://\ndb = env://": `line 2: "db" is set twice`,
		"DB = env://":                 "neither cache",
		"audit = maybe":               "audit must be on or off",
		"timeout = soon":              "timeout must be a Go duration",
		"db = not a url":              "must be a URL",
		"db = fernet://u:pw@host":     "holds user information",
	} {
		_, err := secrets.ParseConfig(text)
		if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig(%q) = %v, want an error containing %q", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("the config error echoes a credential: %v", err)
		}
	}
}

func TestOpenConfigStack(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY_9", "sk-ant-stack-9")
	own := new(secretstest.Fake)
	own.Set("7", "sk-db-7")
	c, err := secrets.ParseConfig("env = env://?allow=ANTHROPIC_*\naudit = on\ntimeout = 1s")
	if err != nil {
		t.Fatal(err)
	}
	var events []secrets.AuditEvent
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{
		Backends: map[string]secrets.KeyResolver{"db": own},
		Auditor:  secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { events = append(events, ev) }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for ref, want := range map[string]string{"env:ANTHROPIC_API_KEY_9": "sk-ant-stack-9", "db:7": "sk-db-7"} {
		if s, err := st.Resolve(context.Background(), ref); err != nil || s.Reveal() != want {
			t.Errorf("%s: %v", ref, err)
		}
	}
	if len(events) != 2 || events[0].Backend == "" {
		t.Errorf("audit events = %+v", events)
	}
	if err := st.Ping(context.Background()); err != nil {
		t.Errorf("Ping: %v", err)
	}

	_, err = secrets.OpenConfig(context.Background(), &secrets.Config{Backends: map[string]string{"x": "nosuch://"}}, nil)
	if !errors.Is(err, secrets.ErrUnknownScheme) || !strings.Contains(err.Error(), "forgotten import?") {
		t.Errorf("unregistered URL scheme: %v", err)
	}
}

func TestConfigFromEnv(t *testing.T) {
	t.Setenv(secrets.ConfigEnv, "env = env://")
	c, err := secrets.ConfigFromEnv()
	if err != nil || c.Backends["env"] != "env://" {
		t.Fatalf("KEYWARD_CONFIG: %+v %v", c, err)
	}
	file := t.TempDir() + "/keyward.conf"
	t.Setenv(secrets.ConfigFileEnv, file)
	if _, err := secrets.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Fatalf("both set: %v", err)
	}
	t.Setenv(secrets.ConfigEnv, "")
	if _, err := secrets.ConfigFromEnv(); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("missing file: %v", err)
	}
	t.Setenv(secrets.ConfigFileEnv, "")
	c, err = secrets.ConfigFromEnv()
	if err != nil || c.Backends["env"] != "env://" || !c.Audit {
		t.Fatalf("default config: %+v %v", c, err)
	}
}

func TestLazyOpensOnceAndRetriesFailures(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("k", "v1")
	var opens atomic.Int32
	fail := true
	r := secrets.Lazy(func(ctx context.Context) (secrets.KeyResolver, error) {
		opens.Add(1)
		if fail {
			return nil, secrets.NewError("open", "fake", "", secrets.CodeUnavailable, "down", nil)
		}
		return f, nil
	})
	if _, err := r.Resolve(context.Background(), "k"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("failed open: %v", err)
	}
	fail = false
	for range 3 {
		if s, err := r.Resolve(context.Background(), "k"); err != nil || s.Reveal() != "v1" {
			t.Fatalf("after open: %v", err)
		}
	}
	if opens.Load() != 2 {
		t.Errorf("opened %d times, want 2 (one failure, one success)", opens.Load())
	}
}

func TestWithTimeout(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("k", "v")
	f.SetLatency(time.Hour)
	_, err := secrets.WithTimeout(f, time.Millisecond).Resolve(context.Background(), "k")
	if !errors.Is(err, context.DeadlineExceeded) || secrets.CodeOf(err) != secrets.CodeUnavailable {
		t.Fatalf("got %v, want a deadline error classified unavailable", err)
	}
	if secrets.WithTimeout(f, 0) != secrets.KeyResolver(f) {
		t.Error("WithTimeout(0) should return next itself")
	}
}

func TestResolveManyFallsBackToOneByOne(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("a", "1")
	res, err := secrets.ResolveMany(context.Background(), f, []string{"a", "b"})
	if err != nil || len(res) != 2 || res[0].Secret.Reveal() != "1" || !errors.Is(res[1].Err, secrets.ErrNotFound) {
		t.Fatalf("ResolveMany = %v, %v", res, err)
	}
	if _, ok := secrets.Find[secrets.BatchResolver](secrets.WithTimeout(f, time.Second)); !ok {
		t.Error("Find did not find the timeout decorator's batch ability")
	}
}

// closer is a resolver that records being closed.
type closer struct {
	secretstest.Fake
	closed atomic.Bool
}

func (c *closer) Close() error { c.closed.Store(true); return nil }

func TestLazyWaitersAndClose(t *testing.T) {
	release := make(chan struct{})
	opened := new(closer)
	opened.Set("k", "v")
	started := make(chan struct{})
	var opens atomic.Int32
	r := secrets.Lazy(func(ctx context.Context) (secrets.KeyResolver, error) {
		if opens.Add(1) == 1 {
			close(started)
		}
		<-release
		return opened, nil
	})

	// The first caller opens; a second caller with a short deadline gives up
	// on its own deadline instead of waiting for the slow open.
	first := make(chan error, 1)
	go func() { _, err := r.Resolve(context.Background(), "k"); first <- err }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := r.Resolve(ctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a waiter with its own deadline: %v", err)
	}

	// Close while the open is under way: the opened backend is closed when
	// the open finishes, and nothing resolves afterwards.
	if err := r.(io.Closer).Close(); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-first; !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("the open that finished after Close: %v, want ErrUnavailable", err)
	}
	if !opened.closed.Load() {
		t.Fatal("a backend opened after Close was not closed")
	}
	if _, err := r.Resolve(context.Background(), "k"); !errors.Is(err, secrets.ErrUnavailable) {
		t.Fatalf("resolve after Close: %v", err)
	}
	if opens.Load() != 1 {
		t.Errorf("opened %d times, want 1", opens.Load())
	}
}

func TestLazySharesOneOpen(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("k", "v")
	release := make(chan struct{})
	var opens atomic.Int32
	r := secrets.Lazy(func(ctx context.Context) (secrets.KeyResolver, error) {
		opens.Add(1)
		<-release
		return f, nil
	})
	const n = 20
	errs := make(chan error, n)
	for range n {
		go func() { _, err := r.Resolve(context.Background(), "k"); errs <- err }()
	}
	for opens.Load() == 0 {
		runtime.Gosched()
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if opens.Load() != 1 {
		t.Errorf("%d callers opened %d times, want 1", n, opens.Load())
	}
}

func TestAllowRefs(t *testing.T) {
	t.Setenv("ANTHROPIC_API_KEY_1", "sk-ant-allowed-1")
	t.Setenv("OTHER_TENANT_KEY", "sk-other-tenant-2")
	db := new(secretstest.Fake)
	db.Set("7", "sk-db-7")
	c, err := secrets.ParseConfig("env = env://\nallow = db:*, env:ANTHROPIC_*\naudit = on")
	if err != nil {
		t.Fatal(err)
	}
	var events []secrets.AuditEvent
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{
		Backends: map[string]secrets.KeyResolver{"db": db},
		Auditor:  secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { events = append(events, ev) }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for ref, want := range map[string]error{
		"db:7": nil, "env:ANTHROPIC_API_KEY_1": nil,
		"env:OTHER_TENANT_KEY": secrets.ErrPermission, "vault:secret/x": secrets.ErrPermission,
	} {
		_, err := st.Resolve(context.Background(), ref)
		if !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("Resolve(%q) = %v, want %v", ref, err, want)
		}
	}
	denied := 0
	for _, ev := range events {
		if ev.Outcome == "permission_denied" {
			denied++
		}
	}
	if db.Calls("7") != 1 || len(events) != 4 || denied != 2 {
		t.Errorf("backend calls %d, %d audit events with %d denied; want 1, 4, 2", db.Calls("7"), len(events), denied)
	}
	for _, bad := range []string{"allow = ", "allow = [x"} {
		if _, err := secrets.ParseConfig(bad); !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("ParseConfig(%q) = %v", bad, err)
		}
	}
	if _, err := secrets.AllowRefs(db, []string{"["}); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("AllowRefs with a malformed pattern: %v", err)
	}
}

// TestREADMEConfiguration keeps the README's configuration example valid.
func TestREADMEConfiguration(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "## Configuration")
	_, rest, ok2 := strings.Cut(rest, "```\n")
	block, _, ok3 := strings.Cut(rest, "```")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no configuration block in README.md")
	}
	c, err := secrets.ParseConfig(block)
	if err != nil {
		t.Fatalf("the README's configuration does not parse: %v", err)
	}
	if c.Backends["db"] == "" || c.Backends["env"] == "" || c.Cache == "" || !c.Audit || c.Timeout == 0 || len(c.Allow) != 3 {
		t.Errorf("the README's configuration parsed to %+v", c)
	}
}

// In a batch, each ref's audit event carries that ref's own provenance: the
// Source travels with each Result, not in state shared by the batch.
func TestAuditBatchProvenancePerRef(t *testing.T) {
	f := new(secretstest.Fake)
	f.Set("k", "sk-batch-audit-1")
	as := func(backend string, plaintext bool) secrets.KeyResolver {
		return resolverFunc(func(ctx context.Context, ref string) (secrets.Secret, error) {
			s, err := f.Resolve(ctx, ref)
			if err == nil {
				s.Source = secrets.Source{Backend: backend, Plaintext: plaintext}
			}
			return s, err
		})
	}
	var m secrets.Mux
	m.Handle("db", as("fernet", true))
	m.Handle("env", as("env", false))
	var events []secrets.AuditEvent
	a := secrets.NewAudit(&m, secrets.AuditFunc(func(_ context.Context, ev secrets.AuditEvent) { events = append(events, ev) }), nil)
	out, err := secrets.ResolveMany(context.Background(), a, []string{"env:k", "db:k", "db:missing"})
	if err != nil || len(out) != 3 {
		t.Fatalf("%d results, %v", len(out), err)
	}
	if len(events) != 3 {
		t.Fatalf("%d events, want 3", len(events))
	}
	if e := events[0]; e.Backend != "env" || e.Plaintext {
		t.Errorf("env:k event %+v", e)
	}
	if e := events[1]; e.Backend != "fernet" || !e.Plaintext {
		t.Errorf("db:k event %+v", e)
	}
	if e := events[2]; e.Backend != "fake" || e.Plaintext || e.Outcome != "not_found" {
		t.Errorf("db:missing event %+v", e)
	}
}
