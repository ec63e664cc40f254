package secrets_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	_ "github.com/keyward/secrets/all"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/driver"
	"github.com/keyward/secrets/internal/testenv"
)

// refDriver is a test backend whose entries may name another ref
// (driver.Value.Ref), as fernetstore's reference rows do. It counts Gets
// per name.
type refDriver struct {
	mu      sync.Mutex
	vals    map[string]driver.Value
	gets    map[string]int
	batches [][]string
	// block, when set, makes a Get of "block" signal started and wait for
	// its ctx.
	started chan struct{}
	// The first two Gets of names starting "meet" wait for each other
	// (until met is closed), so that two resolves are in flight at once.
	meets int
	met   chan struct{}
}

func newRefDriver(vals map[string]driver.Value) *refDriver {
	return &refDriver{vals: vals, gets: map[string]int{}, started: make(chan struct{}, 1), met: make(chan struct{})}
}

func (d *refDriver) Get(ctx context.Context, ref driver.Ref) (driver.Value, error) {
	d.mu.Lock()
	d.gets[ref.Name]++
	v, ok := d.vals[ref.Name]
	if strings.HasPrefix(ref.Name, "meet") {
		if d.meets++; d.meets == 2 {
			close(d.met)
		}
	}
	d.mu.Unlock()
	if strings.HasPrefix(ref.Name, "meet") {
		select {
		case <-d.met:
		case <-ctx.Done():
			return driver.Value{}, ctx.Err()
		}
	}
	if ref.Name == "block" {
		d.started <- struct{}{}
		<-ctx.Done()
		return driver.Value{}, ctx.Err()
	}
	if !ok {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no entry %s", ref.Name)
	}
	return v, nil
}

func (d *refDriver) Gets(name string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.gets[name]
}

// refBatcher is a refDriver with the batch ability.
type refBatcher struct{ *refDriver }

func (b refBatcher) GetMany(ctx context.Context, refs []driver.Ref) ([]driver.Value, []error, error) {
	names := make([]string, len(refs))
	vals := make([]driver.Value, len(refs))
	errs := make([]error, len(refs))
	for i, r := range refs {
		names[i] = r.Name
		vals[i], errs[i] = b.Get(ctx, r)
	}
	b.mu.Lock()
	b.batches = append(b.batches, names)
	b.mu.Unlock()
	return vals, errs, nil
}

func (b refBatcher) Batches() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([][]string(nil), b.batches...)
}

// The test backends, by URL host: kwfollow://NAME serves refDrivers[NAME]
// as backend NAME, kwfollowb:// the same with the batch ability, and the
// bare kwfollowlazy:// serves follow-lazy but fails its first open, so
// OpenConfig serves it through its Lazy fallback.
var (
	refDrivers  sync.Map // name -> *refDriver
	lazyOpens   atomic.Int64
	registerRef sync.Once
)

func refBackend(t *testing.T, name string, vals map[string]driver.Value) *refDriver {
	registerRef.Do(func() {
		open := func(batch bool) secrets.OpenerFunc {
			return func(_ context.Context, u *url.URL) (secrets.KeyResolver, error) {
				d, ok := refDrivers.Load(u.Host)
				if !ok {
					return nil, &secrets.Error{Op: "open", Code: secrets.CodeInvalidRef, Reason: "no test driver " + u.Host}
				}
				var drv driver.Driver = d.(*refDriver)
				if batch {
					drv = refBatcher{d.(*refDriver)}
				}
				return driver.New(u.Host, drv, nil), nil
			}
		}
		secrets.Register("kwfollow", open(false))
		secrets.Register("kwfollowb", open(true))
		plain := open(false)
		secrets.Register("kwfollowlazy", func(ctx context.Context, u *url.URL) (secrets.KeyResolver, error) {
			if lazyOpens.Add(1) == 1 {
				return nil, &secrets.Error{Op: "open", Code: secrets.CodeUnavailable, Reason: "first open fails"}
			}
			return plain(ctx, &url.URL{Scheme: "kwfollow", Host: "follow-lazy"})
		})
	})
	d := newRefDriver(vals)
	if _, dup := refDrivers.LoadOrStore(name, d); dup {
		t.Fatalf("test driver %s made twice", name)
	}
	return d
}

// events collects audit events.
type events struct {
	mu  sync.Mutex
	evs []secrets.AuditEvent
}

func (e *events) Audit(_ context.Context, ev secrets.AuditEvent) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// take returns the events since the last take.
func (e *events) take() []secrets.AuditEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.evs
	e.evs = nil
	return out
}

func (e *events) summary() string {
	var b strings.Builder
	for _, ev := range e.take() {
		fmt.Fprintf(&b, "%s %s %s hit=%v; ", ev.Ref, ev.Backend, ev.Outcome, ev.CacheHit)
	}
	return b.String()
}

// followHour is an hour from the start of the tests: the expiry of the
// test rows that have one.
var followHour = time.Now().Add(time.Hour).Truncate(time.Second)

const (
	followCanary  = "sk-follow-CANARY-1"
	followCanary2 = "sk-follow-CANARY-2"
	jsonCanary    = "sk-follow-json-CANARY"
)

// followStack builds, through OpenConfig, a stack with audit, a cache, an
// allow list, the real env backend and a test backend "tdb" (backend name
// name) whose rows name env: and vals: refs.
func followStack(t *testing.T, name, scheme, extra string) (*secrets.Stack, *refDriver, *refDriver, *events) {
	t.Helper()
	t.Setenv("KWF_OK_1", followCanary)
	t.Setenv("KWF_OK_2", followCanary2)
	t.Setenv("KWF_OK_JSON", `{"api_key":"`+jsonCanary+`","org":"org-1"}`)
	t.Setenv("KWF_DENIED_1", "sk-denied-CANARY")
	hour := followHour
	rows := refBackend(t, name, map[string]driver.Value{
		"plain":   {Data: "sk-plain-row"},
		"r1":      {Ref: "env:KWF_OK_1"},
		"r1b":     {Ref: "env:KWF_OK_1"},
		"r2":      {Ref: "env:KWF_OK_2"},
		"denied":  {Ref: "env:KWF_DENIED_1"},
		"gone":    {Ref: "env:KWF_OK_UNSET"},
		"json":    {Ref: "env:KWF_OK_JSON"},
		"expired": {Ref: "env:KWF_OK_1", ExpiresAt: time.Now().Add(-time.Minute)},
		"early":   {Ref: "vals:late", ExpiresAt: hour},
		"late":    {Ref: "vals:early", ExpiresAt: hour.Add(time.Hour)},
		"self":    {Ref: "tdb:self"},
		"c1":      {Ref: "tdb:c2"},
		"c2":      {Ref: "env:KWF_OK_1"},
		"loopa":   {Ref: "tdb:loopb"},
		"loopb":   {Ref: "tdb:loopa"},
		"meeta":   {Ref: "tdb:meetb"},
		"meetb":   {Ref: "tdb:meeta"},
		"tovals":  {Ref: "vals:v1", Plaintext: false},
		"toplain": {Ref: "vals:legacy"},
		"hop":     {Ref: "vals:hop"},
	})
	vals := refBackend(t, name+"-vals", map[string]driver.Value{
		"late":   {Data: "sk-vals-late", Version: "v-late", ExpiresAt: hour.Add(time.Hour)},
		"early":  {Data: "sk-vals-early", Version: "v-early", ExpiresAt: hour},
		"v1":     {Data: "sk-vals-v1", Version: "7"},
		"legacy": {Data: "sk-vals-legacy", Plaintext: true},
		"hop":    {Ref: "env:KWF_OK_1"},
	})
	c, err := secrets.ParseConfig("tdb = " + scheme + "://" + name + "\nvals = kwfollow://" + name + "-vals\n" +
		"env = env://?allow=KWF_*\nallow = tdb:*, vals:*, env:KWF_OK_*\naudit = on\n" + extra)
	if err != nil {
		t.Fatal(err)
	}
	ev := new(events)
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{Auditor: ev})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, rows, vals, ev
}

// noValue fails t if err's text holds any of the test's values.
func noValue(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, v := range []string{followCanary, followCanary2, jsonCanary, "sk-denied-CANARY", "sk-vals", "sk-plain-row"} {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("%s: the error holds a value: %v", what, err)
		}
	}
}

// Issue 12 item 2: an entry naming env:KWF_OK_1 resolves to that variable
// through the same stack: audited twice, cached on both refs.
func TestFollowThroughStack(t *testing.T) {
	st, rows, _, ev := followStack(t, "follow-basic", "kwfollow", "cache = on")
	ctx := context.Background()
	s, err := st.Resolve(ctx, "tdb:r1")
	if err != nil || s.Reveal() != followCanary {
		t.Fatalf("tdb:r1: %v (%d bytes)", err, s.Len())
	}
	want := secrets.Source{Backend: "follow-basic", Followed: "env:KWF_OK_1"}
	if s.Source != want {
		t.Errorf("Source %+v, want %+v", s.Source, want)
	}
	evs := ev.take()
	if len(evs) != 2 || evs[0].Ref != "env:KWF_OK_1" || evs[0].Backend != "env" || evs[0].Outcome != "ok" ||
		evs[1].Ref != "tdb:r1" || evs[1].Backend != "follow-basic" || evs[1].Outcome != "ok" {
		t.Fatalf("audit events %+v; want env:KWF_OK_1 (env) then tdb:r1 (follow-basic), both ok", evs)
	}

	// Cached: neither the row nor the variable is read again.
	c, ok := secrets.Find[*cache.Cache](st)
	if !ok {
		t.Fatal("no cache in the stack")
	}
	calls := c.Stats().BackendCalls
	s, err = st.Resolve(ctx, "tdb:r1")
	if err != nil || s.Reveal() != followCanary || !s.Source.Cached || s.Source.Followed != "env:KWF_OK_1" {
		t.Fatalf("tdb:r1 again: %v %+v", err, s.Source)
	}
	if s, err := st.Resolve(ctx, "env:KWF_OK_1"); err != nil || !s.Source.Cached {
		t.Fatalf("env:KWF_OK_1 after the follow: %v, cached %v; want a cache hit", err, s.Source.Cached)
	}
	if n := c.Stats().BackendCalls; n != calls {
		t.Errorf("%d backend calls on the second resolve, want none", n-calls)
	}
	if n := rows.Gets("r1"); n != 1 {
		t.Errorf("the row was read %d times, want 1", n)
	}
	if got := ev.summary(); got != "tdb:r1 follow-basic ok hit=true; env:KWF_OK_1 env ok hit=true; " {
		t.Errorf("audit events %s", got)
	}
}

// The followed ref meets the allow list; its failures keep their code
// under the entry's Op, Backend and Ref, and say where the key is.
func TestFollowErrors(t *testing.T) {
	st, _, _, ev := followStack(t, "follow-errors", "kwfollow", "cache = on")
	ctx := context.Background()

	_, err := st.Resolve(ctx, "tdb:denied")
	e := testenv.WantError(t, "tdb:denied", err, secrets.CodePermission, "resolve", "follow-errors", "denied")
	if !strings.HasPrefix(e.Reason, "its key is at env:KWF_DENIED_1: the ref is not in this stack's allow list") {
		t.Errorf("Reason %q", e.Reason)
	}
	noValue(t, "tdb:denied", err)
	evs := ev.take()
	if len(evs) != 2 || evs[0].Ref != "env:KWF_DENIED_1" || evs[0].Outcome != "permission_denied" ||
		evs[1].Ref != "tdb:denied" || evs[1].Outcome != "permission_denied" || evs[1].Backend != "follow-errors" {
		t.Errorf("audit events %+v", evs)
	}

	_, err = st.Resolve(ctx, "tdb:gone")
	e = testenv.WantError(t, "tdb:gone", err, secrets.CodeNotFound, "resolve", "follow-errors", "gone")
	if !strings.HasPrefix(e.Reason, "its key is at env:KWF_OK_UNSET: ") {
		t.Errorf("Reason %q", e.Reason)
	}
	// The text says it once: the followed ref's reason, not its whole error.
	if strings.Count(err.Error(), "KWF_OK_UNSET") > 2 || strings.Count(err.Error(), "keyward:") != 1 {
		t.Errorf("error text %q repeats itself", err)
	}
}

// The entry's expiry applies to the key it names: expired, nothing is
// resolved for it; otherwise the earlier expiry wins, either way round.
func TestFollowExpiry(t *testing.T) {
	st, _, _, ev := followStack(t, "follow-expiry", "kwfollow", "cache = on")
	ctx := context.Background()
	_, err := st.Resolve(ctx, "tdb:expired")
	testenv.WantError(t, "tdb:expired", err, secrets.CodeExpired, "resolve", "follow-expiry", "expired")
	if got := ev.summary(); got != "tdb:expired follow-expiry expired hit=false; " {
		t.Errorf("audit events %s; want the entry's only: nothing followed", got)
	}
	hour := followHour
	for _, tc := range []struct{ ref, value, version string }{
		{"tdb:early", "sk-vals-late", "v-late"}, // the entry expires first
		{"tdb:late", "sk-vals-early", "v-early"},
	} {
		s, err := st.Resolve(ctx, tc.ref)
		if err != nil || s.Reveal() != tc.value {
			t.Fatalf("%s: %v", tc.ref, err)
		}
		if !s.ExpiresAt.Equal(hour) || s.Version != tc.version {
			t.Errorf("%s: ExpiresAt %v (want %v), Version %q (want %q)", tc.ref, s.ExpiresAt, hour, s.Version, tc.version)
		}
	}
	s, err := st.Resolve(ctx, "tdb:toplain")
	if err != nil || !s.Source.Plaintext {
		t.Errorf("a followed plaintext value: %v, Plaintext %v", err, s.Source.Plaintext)
	}
}

// The expiry rule against a clock: once the earlier expiry passes, the
// stack refuses the entry (the cache never serves it past it).
func TestFollowExpiryClock(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	inner := newRefDriver(map[string]driver.Value{"k": {Data: "sk-clock", ExpiresAt: clock().Add(time.Hour)}})
	outer := newRefDriver(map[string]driver.Value{"row": {Ref: "in:k", ExpiresAt: clock().Add(2 * time.Hour)}})
	c, err := secrets.ParseConfig("audit = off")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{Now: clock, Backends: map[string]secrets.KeyResolver{
		"in":  driver.New("in", inner, &driver.Options{Now: clock}),
		"out": driver.New("out", outer, &driver.Options{Now: clock}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := st.Resolve(context.Background(), "out:row"); err != nil || !s.ExpiresAt.Equal(clock().Add(time.Hour)) {
		t.Fatalf("out:row: %v, ExpiresAt %v", err, s.ExpiresAt)
	}
	now.Add(int64(90 * time.Minute))
	_, err = st.Resolve(context.Background(), "out:row")
	e := testenv.WantError(t, "out:row after the key's expiry", err, secrets.CodeExpired, "resolve", "out", "row")
	if !strings.HasPrefix(e.Reason, "its key is at in:k: the secret expired") {
		t.Errorf("Reason %q", e.Reason)
	}
	now.Add(int64(time.Hour))
	_, err = st.Resolve(context.Background(), "out:row")
	testenv.WantError(t, "out:row after its own expiry", err, secrets.CodeExpired, "resolve", "out", "row")
	if n := inner.Gets("k"); n != 2 {
		t.Errorf("the key was read %d times, want 2 (not after the row expired)", n)
	}
}

// The caller's #field is picked from the followed value.
func TestFollowField(t *testing.T) {
	st, _, _, _ := followStack(t, "follow-field", "kwfollow", "cache = on")
	ctx := context.Background()
	if s, err := st.Resolve(ctx, "tdb:json#api_key"); err != nil || s.Reveal() != jsonCanary {
		t.Fatalf("tdb:json#api_key: %v", err)
	}
	if s, err := st.Resolve(ctx, "tdb:json#org"); err != nil || s.Reveal() != "org-1" {
		t.Fatalf("tdb:json#org: %v", err)
	}
	_, err := st.Resolve(ctx, "tdb:json#nope")
	e := testenv.WantError(t, "tdb:json#nope", err, secrets.CodeNotFound, "resolve", "follow-field", "json#nope")
	if e.Reason != `its key is at env:KWF_OK_JSON: the secret has no field "nope"` {
		t.Errorf("Reason %q", e.Reason)
	}
	_, err = st.Resolve(ctx, "tdb:r1#api_key")
	testenv.WantError(t, "tdb:r1#api_key", err, secrets.CodeInvalidRef, "resolve", "follow-field", "r1#api_key")
	noValue(t, "tdb:r1#api_key", err)
}

// An entry naming itself, a chain and a loop are refused, one level deep,
// through the cache too (whose detached fetches keep the follow's mark:
// without it, the loop would wait on its own fetch).
func TestFollowChainsRefused(t *testing.T) {
	st, rows, vals, _ := followStack(t, "follow-chains", "kwfollow", "cache = on")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // far less than the cache's fetch timeout
	defer cancel()
	for _, tc := range []struct{ ref, want string }{
		{"tdb:self", "the entry names itself (tdb:self)"},
		{"tdb:self#api_key", "the entry names itself (tdb:self)"},
		{"tdb:c1", "its key is at tdb:c2: the entry names another ref (env:KWF_OK_1), and it was itself reached through an entry naming it: chains of refs are not followed"},
		{"tdb:loopa", "its key is at tdb:loopb: the entry names another ref (tdb:loopa)"},
		{"tdb:hop", "its key is at vals:hop: the entry names another ref (env:KWF_OK_1)"},
	} {
		_, err := st.Resolve(ctx, tc.ref)
		_, rest, _ := strings.Cut(tc.ref, ":")
		e := testenv.WantError(t, tc.ref, err, secrets.CodeInvalidRef, "resolve", "follow-chains", rest)
		if !strings.HasPrefix(e.Reason, tc.want) {
			t.Errorf("%s: Reason %q, want it to start %q", tc.ref, e.Reason, tc.want)
		}
	}
	for name, want := range map[string]int{"self": 2, "c1": 1, "c2": 1, "loopa": 1, "loopb": 1} {
		if n := rows.Gets(name); n != want {
			t.Errorf("%s read %d times, want %d", name, n, want)
		}
	}
	if n := vals.Gets("hop"); n != 1 {
		t.Errorf("vals:hop read %d times", n)
	}

	// A cached answer that was itself followed is refused as well: the
	// chain's verdict does not depend on what the cache holds.
	if s, err := st.Resolve(ctx, "tdb:c2"); err != nil || s.Reveal() != followCanary {
		t.Fatalf("tdb:c2 itself: %v", err)
	}
	_, err := st.Resolve(ctx, "tdb:c1")
	e := testenv.WantError(t, "tdb:c1 with tdb:c2 cached", err, secrets.CodeInvalidRef, "resolve", "follow-chains", "c1")
	if e.Reason != "its key is at tdb:c2, whose entry names another ref (env:KWF_OK_1) in turn: chains of refs are not followed; point the entry at the key itself" {
		t.Errorf("Reason %q", e.Reason)
	}
}

// Two entries naming each other, resolved at the same time through the
// cache (review finding 2): each fetch follows the other ref while the
// other's fetch is in flight. A follow that joined that fetch would wait
// for it, and it for the follow, until the cache's fetch timeout (10s);
// a follow makes its own fetch and meets the chain refusal at once.
func TestFollowMutualLoopConcurrent(t *testing.T) {
	st, rows, _, _ := followStack(t, "follow-meet", "kwfollow", "cache = on")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second) // far less than the cache's fetch timeout
	defer cancel()
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, ref := range []string{"tdb:meeta", "tdb:meetb"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Resolve(ctx, ref)
		}()
	}
	wg.Wait()
	for i, want := range []string{"its key is at tdb:meetb: the entry names another ref (tdb:meeta)", "its key is at tdb:meeta: the entry names another ref (tdb:meetb)"} {
		ref := []string{"tdb:meeta", "tdb:meetb"}[i]
		e := testenv.WantError(t, ref, errs[i], secrets.CodeInvalidRef, "resolve", "follow-meet", ref[len("tdb:"):])
		if !strings.HasPrefix(e.Reason, want) {
			t.Errorf("%s: Reason %q, want it to start %q", ref, e.Reason, want)
		}
	}
	for _, name := range []string{"meeta", "meetb"} {
		if n := rows.Gets(name); n != 2 {
			t.Errorf("%s read %d times, want 2 (its own resolve, the other's follow)", name, n)
		}
	}
}

// The same, with no cache and with a follower that names no scheme (a
// host's Mux given by hand): an entry naming itself stops one level down.
func TestFollowSelfWithoutScheme(t *testing.T) {
	d := newRefDriver(map[string]driver.Value{"self": {Ref: "m:self"}})
	r := driver.New("m", d, nil)
	mux := new(secrets.Mux)
	mux.Handle("m", r)
	r.FollowThrough(mux)
	_, err := mux.Resolve(context.Background(), "m:self")
	e := testenv.WantError(t, "m:self", err, secrets.CodeInvalidRef, "resolve", "m", "self")
	if !strings.Contains(e.Reason, "chains of refs are not followed") || d.Gets("self") != 2 {
		t.Errorf("Reason %q after %d reads; want the chain refusal after 2", e.Reason, d.Gets("self"))
	}
}

// A caller's ended ctx is the ContextError, during the follow too.
func TestFollowCanceled(t *testing.T) {
	rows := newRefDriver(map[string]driver.Value{"row": {Ref: "in:block"}})
	inner := newRefDriver(nil)
	c, err := secrets.ParseConfig("audit = on")
	if err != nil {
		t.Fatal(err)
	}
	ev := new(events)
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{Auditor: ev, Backends: map[string]secrets.KeyResolver{
		"in":  driver.New("in", inner, nil),
		"out": driver.New("out", rows, nil),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, err = st.Resolve(testenv.Canceled(), "out:row")
	testenv.WantContextError(t, "canceled before", err, context.Canceled, "resolve", "out", "row")

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-inner.started; cancel() }()
	_, err = st.Resolve(ctx, "out:row")
	testenv.WantContextError(t, "canceled during the follow", err, context.Canceled, "resolve", "out", "row")
	if got := ev.summary(); !strings.Contains(got, "out:row out canceled") || !strings.Contains(got, "in:block in canceled") {
		t.Errorf("audit events %s", got)
	}

	ctx, cancel = context.WithCancel(context.Background())
	go func() { <-inner.started; cancel() }()
	out, err := st.ResolveMany(ctx, []string{"out:row"})
	if len(out) != 1 {
		t.Fatalf("%d results", len(out))
	}
	testenv.WantContextError(t, "ResolveMany canceled during the follow", out[0].Err, context.Canceled, "resolve", "out", "row")
	if !errors.Is(err, context.Canceled) {
		t.Errorf("whole error %v", err)
	}
}

// ResolveMany follows too, one Result per ref in order, through the stack
// with and without a cache and over a driver with and without the batch
// ability.
func TestFollowResolveMany(t *testing.T) {
	for _, tc := range []struct{ name, scheme, extra string }{
		{"get-cache", "kwfollow", "cache = on"},
		{"get", "kwfollow", ""},
		{"batch-cache", "kwfollowb", "cache = on"},
		{"batch", "kwfollowb", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "follow-many-" + tc.name
			st, _, _, ev := followStack(t, name, tc.scheme, tc.extra)
			refs := []string{"tdb:r1", "tdb:plain", "tdb:denied", "tdb:json#api_key", "tdb:nosuch", "env:KWF_OK_2",
				"tdb:r2", "tdb:r1b", "tdb:self", "tdb:expired", "tdb:json#org", "tdb:c1", "tdb:tovals"}
			out, err := st.ResolveMany(context.Background(), refs)
			if err != nil {
				t.Fatalf("whole error %v", err)
			}
			if len(out) != len(refs) {
				t.Fatalf("%d results for %d refs", len(out), len(refs))
			}
			want := map[string]any{
				"tdb:r1": followCanary, "tdb:plain": "sk-plain-row", "tdb:denied": secrets.CodePermission,
				"tdb:json#api_key": jsonCanary, "tdb:nosuch": secrets.CodeNotFound, "env:KWF_OK_2": followCanary2,
				"tdb:r2": followCanary2, "tdb:r1b": followCanary, "tdb:self": secrets.CodeInvalidRef,
				"tdb:expired": secrets.CodeExpired, "tdb:json#org": "org-1", "tdb:c1": secrets.CodeInvalidRef,
				"tdb:tovals": "sk-vals-v1",
			}
			for i, r := range out {
				if r.Ref != refs[i] {
					t.Fatalf("result %d is for %q, want %q", i, r.Ref, refs[i])
				}
				noValue(t, r.Ref, r.Err)
				switch w := want[r.Ref].(type) {
				case string:
					if r.Err != nil || r.Secret.Reveal() != w {
						t.Errorf("%s: %v (%d bytes)", r.Ref, r.Err, r.Secret.Len())
					}
				case secrets.Code:
					if !errors.Is(r.Err, w) {
						t.Errorf("%s: %v, want %v", r.Ref, r.Err, w)
					}
					scheme, rest, _ := strings.Cut(r.Ref, ":")
					if scheme == "tdb" {
						testenv.WantError(t, r.Ref, r.Err, w, "resolve", name, rest)
					}
				}
			}
			if s := out[12].Secret; s.Version != "7" || s.Source.Followed != "vals:v1" || s.Source.Backend != name {
				t.Errorf("tdb:tovals: Version %q Source %+v", s.Version, s.Source)
			}
			// Every ref audited, and each followed ref too.
			got := ev.summary()
			for _, ref := range append(refs, "env:KWF_OK_1", "env:KWF_DENIED_1", "env:KWF_OK_JSON", "vals:v1", "tdb:c2") {
				if !strings.Contains(got, ref+" ") {
					t.Errorf("no audit event for %s: %s", ref, got)
				}
			}
		})
	}
}

// A batch's followed refs reach their backend as one batch.
func TestFollowResolveManyIsOneBatch(t *testing.T) {
	rows := newRefDriver(map[string]driver.Value{"a": {Ref: "in:x"}, "b": {Ref: "in:y"}, "c": {Ref: "in:x"}, "d": {Data: "sk-d"}})
	inner := newRefDriver(map[string]driver.Value{"x": {Data: "sk-x"}, "y": {Data: "sk-y"}})
	st, err := secrets.OpenConfig(context.Background(), &secrets.Config{Backends: map[string]string{}}, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{
		"in":  driver.New("in", refBatcher{inner}, nil),
		"out": driver.New("out", refBatcher{rows}, nil),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out, err := st.ResolveMany(context.Background(), []string{"out:a", "out:b", "out:c", "out:d"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"sk-x", "sk-y", "sk-x", "sk-d"} {
		if out[i].Err != nil || out[i].Secret.Reveal() != want {
			t.Errorf("%s: %v", out[i].Ref, out[i].Err)
		}
	}
	if b := (refBatcher{inner}).Batches(); len(b) != 1 || strings.Join(b[0], ",") != "x,y" {
		t.Errorf("the followed refs reached their backend as %v; want one batch [x y]", b)
	}
}

// A backend behind Lazy gets the follower: a host's Lazy in
// StackOptions.Backends, OpenConfig's own Lazy fallback for a bare URL
// whose opener fails, and FollowThrough called after the open.
func TestFollowThroughLazy(t *testing.T) {
	t.Setenv("KWF_OK_1", followCanary)
	rows := refBackend(t, "follow-lazy", map[string]driver.Value{"r1": {Ref: "env:KWF_OK_1"}, "plain": {Data: "sk-plain"}})
	opened := 0
	host := secrets.Lazy(func(context.Context) (secrets.KeyResolver, error) {
		opened++
		return driver.New("hostlazy", rows, nil), nil
	})
	c, err := secrets.ParseConfig("env = env://\nlz = kwfollowlazy://")
	if err != nil {
		t.Fatal(err)
	}
	st, err := secrets.OpenConfig(context.Background(), c, &secrets.StackOptions{Backends: map[string]secrets.KeyResolver{"host": host}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// kwfollowlazy fails its first open at OpenConfig: is it served lazily?
	lz, _ := st.Mux.Resolver("lz")
	if _, ok := lz.(*driver.Resolver); ok {
		t.Fatal("lz is not behind OpenConfig's Lazy fallback")
	}
	for _, ref := range []string{"host:r1", "lz:r1"} {
		if s, err := st.Resolve(context.Background(), ref); err != nil || s.Reveal() != followCanary {
			t.Errorf("%s: %v", ref, err)
		}
	}
	if opened != 1 {
		t.Errorf("the host's Lazy opened %d times", opened)
	}

	// Given after the open.
	late := secrets.Lazy(func(context.Context) (secrets.KeyResolver, error) { return driver.New("late", rows, nil), nil })
	if s, err := late.Resolve(context.Background(), "plain"); err != nil || s.Reveal() != "sk-plain" {
		t.Fatalf("plain: %v", err)
	}
	_, err = late.Resolve(context.Background(), "r1")
	testenv.WantError(t, "before FollowThrough", err, secrets.CodeInvalidRef, "resolve", "late", "r1")
	late.(secrets.Follower).FollowThrough(st)
	if s, err := late.Resolve(context.Background(), "r1"); err != nil || s.Reveal() != followCanary {
		t.Errorf("after FollowThrough: %v", err)
	}
}

// Concurrent resolves of followed, chained and plain refs through the whole
// stack, with a cache whose entries expire at once: race-clean (go test
// -race), every answer right, no value in any error or log line.
func TestFollowConcurrent(t *testing.T) {
	st, _, _, _ := followStack(t, "follow-race", "kwfollow", "cache = ttl=1ms")
	var logs testenv.Buffer
	logged := secrets.NewAudit(st, secrets.SlogAuditor(slog.New(slog.NewTextHandler(&logs, nil))), nil)
	refs := []string{"tdb:r1", "tdb:self", "tdb:c1", "tdb:json#api_key", "tdb:denied", "tdb:plain", "env:KWF_OK_1", "tdb:gone"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				ref := refs[(g+i)%len(refs)]
				s, err := logged.Resolve(context.Background(), ref)
				noValue(t, ref, err)
				if (ref == "tdb:r1" || ref == "env:KWF_OK_1") && (err != nil || s.Reveal() != followCanary) {
					t.Errorf("%s: %v", ref, err)
				}
				if i%10 == 0 {
					if _, err := secrets.ResolveMany(context.Background(), logged, refs); err != nil {
						t.Errorf("ResolveMany: %v", err)
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, v := range []string{followCanary, jsonCanary, "sk-denied-CANARY"} {
		if strings.Contains(logs.String(), v) {
			t.Fatalf("the audit log holds a value")
		}
	}
}
