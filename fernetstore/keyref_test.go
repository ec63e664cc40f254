package fernetstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
	_ "github.com/keyward/secrets/envstore"
)

// keyHistory is a secret manager's history of one secret for the tests:
// versions oldest first, GetVersions answering newest first.
type keyHistory struct {
	mu     sync.Mutex
	values []string
	fail   error
	reads  atomic.Int64
}

func (h *keyHistory) put(v string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.values = append(h.values, v)
	return fmt.Sprintf("v%d", len(h.values))
}

func (h *keyHistory) Get(_ context.Context, ref driver.Ref) (driver.Value, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.values) == 0 {
		return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "no such secret")
	}
	return driver.Value{Data: h.values[len(h.values)-1], Version: fmt.Sprintf("v%d", len(h.values))}, nil
}

func (h *keyHistory) GetVersions(_ context.Context, ref driver.Ref, max int) ([]driver.Value, error) {
	h.reads.Add(1)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return nil, h.fail
	}
	if len(h.values) == 0 {
		return nil, driver.Errorf(secrets.CodeNotFound, "no such secret")
	}
	var out []driver.Value
	for i := len(h.values) - 1; i >= 0 && len(out) < max; i-- {
		out = append(out, driver.Value{Data: h.values[i], Version: fmt.Sprintf("v%d", i+1)})
	}
	return out, nil
}

func (h *keyHistory) setFail(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail = err
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// keyRefEnv sets the environment NewFromEnv reads for a ring from ref, over
// a fresh SQLite file.
func keyRefEnv(t *testing.T, ref string) {
	t.Setenv(EnvDatabaseURL, "sqlite:"+filepath.Join(t.TempDir(), "keys.db"))
	t.Setenv(EnvKey, "")
	t.Setenv(EnvPreviousKeys, "")
	t.Setenv(EnvKeyRefresh, "")
	t.Setenv(EnvKeyRef, ref)
}

// keyRefStack builds a stack whose db: is a store from the environment, on
// clock, with sm: the fake manager, plus extra backends.
func keyRefStack(t *testing.T, h *keyHistory, clock *fakeClock, extra map[string]secrets.KeyResolver) (*secrets.Stack, *Store) {
	t.Helper()
	store := NewFromEnv(&Options{Now: clock.Now})
	backends := map[string]secrets.KeyResolver{"db": store, "sm": driver.New("fakesm", h, nil)}
	for k, v := range extra {
		backends[k] = v
	}
	st, err := secrets.OpenConfig(context.Background(), &secrets.Config{}, &secrets.StackOptions{Backends: backends})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, store
}

// mustInit creates the store's table (which reads its ring first).
func mustInit(t *testing.T, s *Store) {
	t.Helper()
	if _, err := s.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// captureLog sends slog.Default to a buffer for the test.
func captureLog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	var mu sync.Mutex
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// noKeyIn fails the test if any key appears in text.
func noKeyIn(t *testing.T, what, text string, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if k != "" && strings.Contains(text, k) {
			t.Errorf("%s holds a key", what)
		}
	}
}

// eventually waits for cond, which a background reload makes true, and
// fails the test if it never does. It asserts no duration: the deadline
// only bounds a broken reload.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestKeyRefConfig(t *testing.T) {
	key := mustKey(t)
	for _, c := range []struct {
		name string
		env  map[string]string
		say  string
	}{
		{"with ENCRYPTION_KEY", map[string]string{EnvKey: key, EnvKeyRef: "awssm:keyward/master"}, "both set"},
		{"with ENCRYPTION_KEY_PREVIOUS", map[string]string{EnvPreviousKeys: key, EnvKeyRef: "awssm:keyward/master"}, "previous versions"},
		{"through env", map[string]string{EnvKeyRef: "env:MASTER_KEY"}, "may not name an env: ref"},
		{"no scheme", map[string]string{EnvKeyRef: "keyward/master"}, "no scheme"},
		{"a key", map[string]string{EnvKeyRef: key}, "looks like a Fernet key"},
		{"a key after a scheme", map[string]string{EnvKeyRef: "awssm:" + key}, "looks like a Fernet key"},
		{"a key with a field", map[string]string{EnvKeyRef: "vault:" + key + "#key"}, "looks like a Fernet key"},
		{"a space", map[string]string{EnvKeyRef: "awssm:keyward master"}, "space"},
		{"no name", map[string]string{EnvKeyRef: "awssm:"}, `names no secret after "awssm:"`},
		{"only a field", map[string]string{EnvKeyRef: "vault:#key"}, "names no secret"},
		{"bad scheme", map[string]string{EnvKeyRef: "AWS:keyward/master"}, "scheme must be lower-case"},
		{"bad refresh", map[string]string{EnvKeyRef: "awssm:keyward/master", EnvKeyRefresh: "5"}, EnvKeyRefresh + " must be"},
		{"refresh too short", map[string]string{EnvKeyRef: "awssm:keyward/master", EnvKeyRefresh: "10ms"}, "from 1s to 24h"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := KeyRingFromLookup(func(k string) string { return c.env[k] })
			var se *secrets.Error
			if !errors.As(err, &se) || se.Code != secrets.CodeInvalidRef || !strings.Contains(se.Reason, c.say) {
				t.Fatalf("KeyRingFromLookup = %v, want ErrInvalidRef saying %q", err, c.say)
			}
			noKeyIn(t, "the error", err.Error(), key)
			// The fernet:// opener refuses it when the configuration is read.
			for k, v := range map[string]string{EnvKey: "", EnvPreviousKeys: "", EnvKeyRef: "", EnvKeyRefresh: "", EnvDatabaseURL: "sqlite::memory:"} {
				t.Setenv(k, v)
			}
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			cfg, err := secrets.ParseConfig("db = fernet://?table=api_keys")
			if err != nil {
				t.Fatal(err)
			}
			_, err = secrets.OpenConfig(context.Background(), cfg, nil)
			if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), c.say) {
				t.Fatalf("OpenConfig with db = fernet://: %v, want the same refusal", err)
			}
			noKeyIn(t, "the error", err.Error(), key)
		})
	}

	ring, err := KeyRingFromLookup(func(k string) string {
		return map[string]string{EnvKeyRef: " vault:secret/keyward#key\n", EnvKeyRefresh: "off", EnvKey: "  "}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if ring.Ref() != "vault:secret/keyward#key" || ring.Len() != 0 || ring.Versions() != nil || ring.src.opts.Refresh >= 0 {
		t.Errorf("ring: ref %q, %d keys, versions %v, refresh %v", ring.Ref(), ring.Len(), ring.Versions(), ring.src.opts.Refresh)
	}
	if _, err := ring.Encrypt([]byte("x")); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "has not been read yet") {
		t.Errorf("Encrypt before Load: %v", err)
	}
	fixed := mustRing(t, key)
	if fixed.Ref() != "" || fixed.Versions() != nil || fixed.Load(context.Background(), nil) == nil {
		t.Error("a ring of fixed keys has a ref, versions, or loads")
	}
}

// TestKeyRefStore: a store from the environment reads its ring from the
// manager through the stack on first use, encrypts under the current
// version, and decrypts under the previous ones.
func TestKeyRefStore(t *testing.T) {
	log := captureLog(t)
	k1, k2 := mustKey(t), mustKey(t)
	h := &keyHistory{}
	h.put(k1)
	keyRefEnv(t, "sm:master")
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	st, store := keyRefStack(t, h, clock, nil)
	mustInit(t, store)
	ctx := context.Background()

	id1, err := store.Put(ctx, "bot", "anthropic", "sk-ant-one", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := store.Ring(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v := ring.Versions(); len(v) != 1 || v[0] != "v1" {
		t.Fatalf("Versions = %v, want [v1]", v)
	}
	h.put(k2)
	// Another store, opened after the new version: v2 is its primary, v1
	// still opens what the first wrote.
	db, _ := store.DB()
	store2 := New(db, mustLoaded(t, st), nil)
	s, err := store2.Resolve(ctx, id1)
	if err != nil || s.Reveal() != "sk-ant-one" || s.Version != KeyName(1) {
		t.Fatalf("the new store resolves the old row: version %q, %v", s.Version, err)
	}
	noKeyIn(t, "the log", log.String(), k1, k2)
}

// mustLoaded is a ring from sm:master, loaded through st.
func mustLoaded(t *testing.T, st *secrets.Stack) *KeyRing {
	t.Helper()
	ring, err := KeyRingFromRef("sm:master", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ring.Load(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	return ring
}

func TestKeyRefRefused(t *testing.T) {
	key := mustKey(t)
	h := &keyHistory{}
	h.put(key)
	for ref, say := range map[string]string{
		"db:1":      "this store's own scheme db:",
		"db2:1":     "which an encrypted column (fernet) serves",
		"keys:KEY":  "which environment variables (env) serve",
		"plain:key": "keeps no versions",
		"nope:key":  `no backend handles scheme "nope"`,
	} {
		t.Run(ref, func(t *testing.T) {
			keyRefEnv(t, ref)
			other := New(openTestDB(t, SQLite), mustRing(t, mustKey(t)), nil)
			envs, err := secrets.Open(context.Background(), "env://")
			if err != nil {
				t.Fatal(err)
			}
			plain := driver.New("plain", &mapOnly{}, nil)
			clock := &fakeClock{t: time.Now()}
			st, store := keyRefStack(t, h, clock, map[string]secrets.KeyResolver{"db2": other, "keys": envs, "plain": plain})
			_, err = st.Resolve(context.Background(), "db:1")
			if !errors.Is(err, secrets.ErrInvalidRef) && !errors.Is(err, secrets.ErrUnknownScheme) || !strings.Contains(err.Error(), say) {
				t.Fatalf("resolve with %s=%s: %v, want a refusal saying %q", EnvKeyRef, ref, err, say)
			}
			noKeyIn(t, "the error", err.Error(), key)
			if _, err := store.Put(context.Background(), "n", "p", "sk-x", time.Time{}); err == nil {
				t.Fatal("a refused ring encrypted a value")
			}
		})
	}
	// Without a stack there is nothing to read it through.
	keyRefEnv(t, "sm:master")
	s := NewFromEnv(nil)
	defer s.Close()
	if _, err := s.Resolve(context.Background(), "1"); !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), "has not been read yet") {
		t.Fatalf("a store outside a stack: %v", err)
	}
}

// mapOnly is a driver without the versions ability.
type mapOnly struct{}

func (*mapOnly) Get(context.Context, driver.Ref) (driver.Value, error) {
	return driver.Value{Data: "x"}, nil
}

// TestKeyRefReload: a loaded ring reads the manager again once Refresh has
// passed (in the background, keeping its keys meanwhile), keeps its keys
// when a read fails and says so once, without a value, and reads again at
// once (rate-limited) for a token no key opens.
func TestKeyRefReload(t *testing.T) {
	log := captureLog(t)
	k1, k2, k3, k4 := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	h := &keyHistory{}
	h.put(k1)
	keyRefEnv(t, "sm:master")
	t.Setenv(EnvKeyRefresh, "1m")
	clock := &fakeClock{t: time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)}
	_, store := keyRefStack(t, h, clock, nil)
	mustInit(t, store)
	ctx := context.Background()
	id1, err := store.Put(ctx, "a", "p", "sk-ant-under-k1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := store.Ring(ctx)
	reads := h.reads.Load()
	primary := func() string { return ring.Versions()[0] }

	// Before the interval: no read, whatever is used.
	h.put(k2)
	clock.Add(59 * time.Second)
	if _, err := store.Resolve(ctx, id1); err != nil {
		t.Fatal(err)
	}
	if h.reads.Load() != reads || primary() != "v1" {
		t.Fatalf("the ring was read again before the interval passed (%d reads, primary %s)", h.reads.Load()-reads, primary())
	}
	// After it: the next use starts a read; the ring takes v2 as primary.
	clock.Add(time.Second)
	if _, err := store.Resolve(ctx, id1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the ring taking v2 as primary", func() bool { return primary() == "v2" })
	s, err := store.Resolve(ctx, id1)
	if err != nil || s.Reveal() != "sk-ant-under-k1" || s.Version != KeyName(1) {
		t.Fatalf("the row under v1 after the reload: version %q, %v", s.Version, err)
	}
	id2, err := store.Put(ctx, "b", "p", "sk-ant-under-k2", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if i, err := mustRing(t, k2).KeyOf(rawValue(t, store, id2)); err != nil || i != 0 {
		t.Fatalf("a row put after the reload is not under v2: %v", err)
	}

	// A failing manager: the ring keeps v2 and v1, and says so once.
	h.setFail(driver.Errorf(secrets.CodeUnavailable, "the manager is down"))
	for range 3 {
		before := h.reads.Load()
		clock.Add(time.Minute)
		if _, err := store.Resolve(ctx, id1); err != nil {
			t.Fatalf("a failed reload broke the ring: %v", err)
		}
		eventually(t, "a read of the failing manager", func() bool { return h.reads.Load() > before && !ring.src.refreshing.Load() })
	}
	if n := strings.Count(log.String(), "cannot read the key ring again"); n != 1 {
		t.Errorf("the failed reload was logged %d times, want once:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "the manager is down") || !strings.Contains(log.String(), "ref=sm:master") {
		t.Errorf("the log does not say why or which ref:\n%s", log.String())
	}
	if primary() != "v2" || ring.Len() != 2 {
		t.Fatalf("after failed reloads: primary %s, %d keys", primary(), ring.Len())
	}
	h.setFail(nil)

	// A token under a version the ring has not read yet: the ring reads
	// again at once, and the token opens.
	v3 := h.put(k3)
	tok3 := mustEncrypt(t, mustRing(t, k3), "sk-ant-under-k3")
	msg, i, err := ring.Decrypt(tok3)
	if err != nil || string(msg) != "sk-ant-under-k3" || i != 0 || primary() != v3 {
		t.Fatalf("a token under the manager's new version: key %d, primary %s, %v", i, primary(), err)
	}
	// Another unknown token soon after: no new read (rate-limited), and
	// ErrUndecryptable.
	h.put(k4)
	before := h.reads.Load()
	if _, _, err := ring.Decrypt(mustEncrypt(t, mustRing(t, k4), "x")); !errors.Is(err, secrets.ErrUndecryptable) {
		t.Fatalf("a second unknown token within MissInterval: %v", err)
	}
	if h.reads.Load() != before {
		t.Fatal("a second unknown token within MissInterval read the manager again")
	}
	clock.Add(DefaultKeyMissInterval)
	if _, _, err := ring.Decrypt(mustEncrypt(t, mustRing(t, k4), "x")); err != nil {
		t.Fatalf("an unknown token after MissInterval: %v", err)
	}

	// A version that is not a key: the read fails naming the ref and the
	// version, never the value, and the ring keeps its keys.
	bad := "sk-not-a-fernet-key-" + randHex(8)
	h.put(bad)
	err = ring.Load(ctx, nil)
	if !errors.Is(err, secrets.ErrInvalidRef) || !strings.Contains(err.Error(), `the current version ("v5") of sm:master is`) {
		t.Fatalf("Load of a version that is no key: %v", err)
	}
	noKeyIn(t, "the error", err.Error(), bad)
	if primary() != "v4" {
		t.Fatalf("a failed Load changed the ring: primary %s", primary())
	}
	noKeyIn(t, "the log", log.String(), k1, k2, k3, k4, bad)
}

// rawValue reads row id's stored token.
func rawValue(t *testing.T, s *Store, id string) string {
	t.Helper()
	db, err := s.DB()
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := db.QueryRow("SELECT api_key FROM api_keys WHERE id = ?", id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// BenchmarkKeyRefDecrypt compares Decrypt and KeyOf on a ring of fixed keys
// with the same keys read from a ref: the ref ring's extra cost per call is
// a clock read and two atomic loads (the refresh check).
//
//	go test ./fernetstore -run '^$' -bench KeyRefDecrypt -count 10 | benchstat -col /ring -
func BenchmarkKeyRefDecrypt(b *testing.B) {
	k1, k2 := mustKey(b), mustKey(b)
	fixed := mustRing(b, k2, k1)
	h := &keyHistory{}
	h.put(k1)
	h.put(k2)
	m := new(secrets.Mux)
	m.Handle("sm", driver.New("fakesm", h, nil))
	fromRef, err := KeyRingFromRef("sm:master", nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := fromRef.Load(context.Background(), m); err != nil {
		b.Fatal(err)
	}
	tok := mustEncrypt(b, fixed, "sk-ant-bench-value-0123456789")
	for _, c := range []struct {
		name string
		ring *KeyRing
	}{{"fixed", fixed}, {"ref", fromRef}} {
		b.Run("ring="+c.name+"/op=decrypt", func(b *testing.B) {
			for b.Loop() {
				if _, _, err := c.ring.Decrypt(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("ring="+c.name+"/op=keyof", func(b *testing.B) {
			for b.Loop() {
				if _, err := c.ring.KeyOf(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// ExampleKeyRingFromLookup shows the refusal of a key ring read through
// env:, without I/O.
func ExampleKeyRingFromLookup() {
	env := map[string]string{EnvKeyRef: "env:MASTER_KEY"}
	_, err := KeyRingFromLookup(func(k string) string { return env[k] })
	fmt.Println(errors.Is(err, secrets.ErrInvalidRef))
	// Output: true
}
