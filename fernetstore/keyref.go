package fernetstore

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/fernet/fernet-go"
	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/bounds"
)

// The variables of a key ring kept in a secret manager.
const (
	// EnvKeyRef names the secret the key ring is read from, as a ref of the
	// stack the store is served in: "awssm:keyward/master",
	// "vault:secret/keyward#key", "azurekv:keyward-master". Its current
	// version is the primary key; its previous versions decrypt only. It
	// excludes ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS.
	EnvKeyRef = "ENCRYPTION_KEY_REF"
	// EnvKeyRefresh is how often a ring from ENCRYPTION_KEY_REF is read
	// again: a Go duration from 1s to 24h (default 1m), or "off" to read
	// it again only when a token no key opens.
	EnvKeyRefresh = "ENCRYPTION_KEY_REFRESH"
)

// The defaults of KeyRefOptions.
const (
	DefaultKeyRefresh      = time.Minute
	DefaultKeyMissInterval = 10 * time.Second
	DefaultKeyVersions     = 5
	DefaultKeyLoadTimeout  = 30 * time.Second
)

// KeyRefOptions configures a ring read from a secret manager. A nil
// *KeyRefOptions means the defaults.
type KeyRefOptions struct {
	// Refresh is how often the ring is read again, so that a new primary
	// put in the manager reaches every replica without a restart. The
	// reload starts in the background on the first use after Refresh has
	// passed; until it succeeds the ring keeps its keys. 0 means
	// DefaultKeyRefresh; a negative value turns the timer off (the ring is
	// then read again only for a token no key opens, and by Load).
	Refresh time.Duration
	// MissInterval is the least time between two reloads started by a
	// token that no key in the ring opens (a row another replica wrote
	// under a primary this one has not read yet). Decrypt waits for such
	// a read (at most 5 s, or Timeout if shorter) and tries the token
	// again; KeyOf does not wait. 0 means DefaultKeyMissInterval.
	MissInterval time.Duration
	// MaxVersions is how many versions of the secret are read, the current
	// one included: 1 to secrets.MaxVersions; 0 means DefaultKeyVersions.
	MaxVersions int
	// Timeout bounds each read of the secret; 0 means DefaultKeyLoadTimeout.
	Timeout time.Duration
	// Logger receives a line when a reload fails (once until one succeeds
	// again) and when a reload finds a new primary. It never receives a
	// key. nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock of Refresh and MissInterval; nil means time.Now.
	Now func() time.Time
}

// keySource is what a ring read from a ref keeps to read it again.
type keySource struct {
	ref   string
	shown string        // ref as errors and logs show it: maskKeyLike(ref)
	opts  KeyRefOptions // defaults filled in

	lastTry    atomic.Int64 // Now().UnixNano() of the last read's start
	refreshing atomic.Bool  // a background reload is under way

	mu       sync.Mutex
	through  secrets.KeyResolver // what the ring is read through; see Load
	inflight *keyLoad
	lastMiss time.Time
	failing  bool // the last reload failed, and said so
}

// keyLoad is one read of the secret, shared by whoever asks meanwhile.
type keyLoad struct {
	done chan struct{}
	err  error
}

// KeyRingFromRef returns a ring whose keys are the versions of the secret
// ref names in the stack the store is served in (see EnvKeyRef): the
// current version is the primary, the previous ones (up to MaxVersions in
// all) decrypt only. It checks ref's shape and does no I/O: the keys are
// read by Load, which NewFromEnv and the fernet:// opener call on the
// store's first use, through the Mux of the stack the store is served in.
// Until then the ring refuses every use, saying so.
//
// ref must be "scheme:name" with a scheme other than env: (a key in an
// environment variable is ENCRYPTION_KEY's job); Load also refuses a ref
// into the table the ring protects (the store's own scheme, or any scheme
// a fernetstore serves). Errors never quote a value that could be a key.
func KeyRingFromRef(ref string, opts *KeyRefOptions) (*KeyRing, error) {
	ref, err := checkKeyRef(ref)
	if err != nil {
		return nil, err
	}
	var o KeyRefOptions
	if opts != nil {
		o = *opts
	}
	if o.Refresh == 0 {
		o.Refresh = DefaultKeyRefresh
	}
	if o.MissInterval <= 0 {
		o.MissInterval = DefaultKeyMissInterval
	}
	if o.MaxVersions == 0 {
		o.MaxVersions = DefaultKeyVersions
	}
	if o.MaxVersions < 1 || o.MaxVersions > secrets.MaxVersions {
		return nil, refError(ref, secrets.CodeInvalidRef, nil,
			fmt.Sprintf("KeyRefOptions.MaxVersions must be 1 to %d, not %d", secrets.MaxVersions, o.MaxVersions))
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultKeyLoadTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &KeyRing{src: &keySource{ref: ref, shown: maskKeyLike(ref), opts: o}}, nil
}

// keyRefHow is how every error about the shape of ENCRYPTION_KEY_REF ends.
const keyRefHow = "write scheme:name, a secret of the stack's secret manager, such as awssm:keyward/master, vault:secret/keyward#key or azurekv:keyward-master"

// checkKeyRef checks the shape of a key ref and returns it without
// surrounding space. Its errors quote nothing of the value: a key pasted in
// the wrong variable is still a key.
func checkKeyRef(raw string) (string, error) {
	ref := strings.TrimSpace(raw)
	if ref == "" {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+" is empty: "+keyRefHow)
	}
	scheme, name, ok := strings.Cut(ref, ":")
	if _, err := decodeKey(ref, ""); err == nil || (ok && looksLikeFernetKey(name)) {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+" holds what looks like a Fernet key, not a ref: it names where the key is kept. Put the key in the secret manager (keyward genkey --store REF writes a new one there) and set "+EnvKeyRef+" to that secret's ref; "+keyRefHow)
	}
	if strings.ContainsFunc(ref, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) || unicode.Is(unicode.Cf, c) }) {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+" holds a space, a control character or an invisible one (a zero-width space, a byte order mark): "+keyRefHow)
	}
	if !ok {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+" has no scheme: "+keyRefHow)
	}
	if _, _, err := secrets.SplitRef(ref); err != nil {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+"'s scheme must be lower-case letters, digits, '+', '-' or '.', starting with a letter: "+keyRefHow)
	}
	if scheme == "env" {
		return "", refError("", secrets.CodeInvalidRef, nil, EnvKeyRef+" may not name an env: ref: the key would be in an environment variable again, where ENCRYPTION_KEY already keeps it. Set ENCRYPTION_KEY instead, or keep the key in a secret manager that keeps versions (awssm, vault, azurekv)")
	}
	if name == "" || strings.HasPrefix(name, "#") || strings.HasPrefix(name, "?") {
		return "", refError("", secrets.CodeInvalidRef, nil, fmt.Sprintf("%s names no secret after %q: %s", EnvKeyRef, scheme+":", keyRefHow))
	}
	return ref, nil
}

// looksLikeFernetKey reports whether s, or the part of s before a #field or
// ?option, is a Fernet key or holds one with its padding anywhere in it (in
// quotes, as Python prints bytes, under a path, after "ENCRYPTION_KEY=",
// with its '=' escaped as %3D): 43 characters of base64 followed by '='
// that decode to 32 bytes. Such a name would be quoted in every error and
// log line as the ring's ref. A key without its padding is not told from a
// name here; maskKeyLike hides it wherever the ref is shown.
func looksLikeFernetKey(s string) bool {
	if i := strings.IndexAny(s, "#?"); i >= 0 {
		s = s[:i]
	}
	if _, err := decodeKey(s, ""); err == nil {
		return true
	}
	// Every 43 characters before a '=' or "%3D", wherever they are: glued
	// to a name, under a path (a std key's '/' joins it to the path).
	for j := 43; j <= len(s); j++ {
		if !strings.HasPrefix(s[j:], "=") && !strings.HasPrefix(s[j:], "%3D") && !strings.HasPrefix(s[j:], "%3d") {
			continue
		}
		for _, enc := range []*base64.Encoding{base64.URLEncoding.Strict(), base64.StdEncoding.Strict()} {
			if b, err := enc.DecodeString(s[j-43:j] + "="); err == nil && len(b) == 32 {
				return true
			}
		}
	}
	return false
}

func isURLBase64(c rune) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func isStdBase64(c rune) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

// keyLikeRun is how long a run of base64 characters (either alphabet, '/'
// included) MaskKeyLike hides: a key is 43 without its padding, and most of
// a key is still most of it.
const keyLikeRun = 32

// MaskKeyLike returns s with every run of 32 or more characters of base64
// (URL-safe or standard, so '/' too) hidden. Show a ref through it: a key
// pasted into one without its padding (or most of one) would be shown with
// it. A long name or path is hidden too; the text says why. The ring's
// errors and log lines show its ref so.
func MaskKeyLike(s string) string {
	return maskKeyLike(s)
}

func maskKeyLike(s string) string {
	var b strings.Builder
	masked := false
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && (isURLBase64(rune(s[j])) || isStdBase64(rune(s[j]))) {
			j++
		}
		if j-i >= keyLikeRun {
			fmt.Fprintf(&b, "[%d characters hidden: they look like a Fernet key]", j-i)
			masked = true
		} else {
			b.WriteString(s[i:j])
		}
		if j < len(s) {
			b.WriteByte(s[j])
		}
		i = j + 1
	}
	if !masked {
		return s
	}
	return b.String()
}

// refError is an error about the ring's ref: Op "load keys", with the ref
// as Ref (a name, never a value; "" while its shape is in doubt).
func refError(ref string, code secrets.Code, cause error, reason string) error {
	return &secrets.Error{Op: "load keys", Backend: Backend, Ref: ref, Code: code, Reason: reason, Err: cause}
}

// Ref returns the ref the ring is read from, or "" for a ring of fixed
// keys. Show it through MaskKeyLike.
func (r *KeyRing) Ref() string {
	if r.src == nil {
		return ""
	}
	return r.src.ref
}

// Versions returns the secret manager's version of each key of a ring read
// from a ref, primary first (the ids Secrets Manager, Vault or Key Vault
// give them; never a key), or nil for a ring of fixed keys or one not
// loaded yet.
func (r *KeyRing) Versions() []string {
	if r.src == nil {
		return nil
	}
	if k := r.state.Load(); k != nil {
		return append([]string(nil), k.versions...)
	}
	return nil
}

// Load reads the keys of a ring from a ref now, through the Mux of the
// stack through leads to (secrets.Find; the Mux itself, not the cache in
// front of it, so that a new version is seen at once), and keeps through
// for the reloads that follow. A nil through keeps the one given before.
// through is the resolver OpenConfig hands the store (see
// secrets.Follower); a host may pass its Stack or Mux. The ref is refused
// when it leads into a table the ring protects: the scheme of the store
// the stack handed through to, or any scheme a fernetstore serves, or an
// env: backend. Every version read must be a Fernet key: an error names
// the ref and the version, never the value. A failed Load keeps the keys
// the ring had. Load on a ring of fixed keys is an error.
func (r *KeyRing) Load(ctx context.Context, through secrets.KeyResolver) error {
	s := r.src
	if s == nil {
		return keyError("this key ring holds fixed keys (ENCRYPTION_KEY), not keys read from " + EnvKeyRef + ": there is nothing to load")
	}
	if through != nil {
		s.mu.Lock()
		s.through = through
		s.mu.Unlock()
	}
	return r.reload(ctx)
}

// notLoaded is the error of using a ring from a ref before Load.
func (s *keySource) notLoaded() error {
	return refError(s.shown, secrets.CodeInvalidRef, nil, "the key ring named by "+EnvKeyRef+" ("+s.shown+") has not been read yet: serve the store in a stack (secrets.OpenConfig, a fernet:// line), through whose Mux it is read on first use, or call KeyRing.Load")
}

// refreshIfDue starts a background reload when Refresh has passed since
// the last read started and none is under way.
func (r *KeyRing) refreshIfDue() {
	s := r.src
	if s.opts.Refresh < 0 || s.opts.Now().UnixNano()-s.lastTry.Load() < int64(s.opts.Refresh) {
		return
	}
	if !s.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		r.reload(ctx)
	}()
}

// missAllowed reports whether a token no key opens may start a reload now,
// and notes it.
func (s *keySource) missAllowed() bool {
	now := s.opts.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight != nil {
		return true // joining one costs nothing more
	}
	if !s.lastMiss.IsZero() && now.Sub(s.lastMiss) < s.opts.MissInterval {
		return false
	}
	s.lastMiss = now
	return true
}

// missWait bounds how long a Decrypt waits for the read a token no key
// opens starts: the caller is a request; the read itself goes on, up to
// Timeout, for the calls after it.
const missWait = 5 * time.Second

// reloadForMiss reads the ring again for a token no key opens, and
// reports whether that succeeded.
func (r *KeyRing) reloadForMiss() bool {
	if !r.src.missAllowed() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(missWait, r.src.opts.Timeout))
	defer cancel()
	return r.reload(ctx) == nil
}

// reloadForMissLater is reloadForMiss without waiting.
func (r *KeyRing) reloadForMissLater() {
	if !r.src.missAllowed() {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.src.opts.Timeout)
		defer cancel()
		r.reload(ctx)
	}()
}

// reload reads the ring once, sharing a read already under way, and
// waits for it on ctx. The read itself runs detached from ctx, bounded by
// Timeout, so a caller that gives up does not fail the others.
func (r *KeyRing) reload(ctx context.Context) error {
	s := r.src
	s.mu.Lock()
	l := s.inflight
	if l == nil {
		l = &keyLoad{done: make(chan struct{})}
		s.inflight = l
		through := s.through
		s.lastTry.Store(s.opts.Now().UnixNano())
		go func() {
			lctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
			err := r.fetch(lctx, through)
			cancel()
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			l.err = err
			close(l.done)
		}()
	}
	s.mu.Unlock()
	select {
	case <-l.done:
		return l.err
	case <-ctx.Done():
		return secrets.ContextError("load keys", Backend, s.shown, ctx.Err())
	}
}

// fetch reads the versions through through and, if they all are keys,
// makes them the ring's keys; it logs a failure of a ring that has keys
// (once until a read succeeds) and a new primary.
func (r *KeyRing) fetch(ctx context.Context, through secrets.KeyResolver) error {
	s := r.src
	keys, err := s.read(ctx, through)
	old := r.state.Load()
	s.mu.Lock()
	wasFailing := s.failing
	s.failing = err != nil
	s.mu.Unlock()
	log := s.opts.Logger
	if err != nil {
		// A first read's error goes to its caller (the store's first
		// use), which tries again; only a ring that has keys to keep
		// says so here.
		if !wasFailing && old != nil {
			log.Warn("fernetstore: cannot read the key ring again; keeping the keys read before until a read succeeds",
				"ref", s.shown, "primary_version", old.versions[0], "err", err)
		}
		return err
	}
	r.state.Store(keys)
	switch {
	case old != nil && old.versions[0] != keys.versions[0]:
		log.Info("fernetstore: the key ring has a new primary key", "ref", s.shown, "primary_version", keys.versions[0], "versions", keys.versions)
	case wasFailing && old != nil:
		log.Info("fernetstore: the key ring was read again", "ref", s.shown, "primary_version", keys.versions[0])
	}
	return nil
}

// read resolves the ring's versions through the Mux through leads to and
// checks that each is a key.
func (s *keySource) read(ctx context.Context, through secrets.KeyResolver) (*ringKeys, error) {
	if through == nil {
		return nil, s.notLoaded()
	}
	scheme, _, _ := strings.Cut(s.ref, ":")
	if own, ok := through.(interface{ FollowScheme() string }); ok && own.FollowScheme() == scheme {
		return nil, refError(s.shown, secrets.CodeInvalidRef, nil, fmt.Sprintf(
			"%s names a ref of this store's own scheme %s: the key that protects the table cannot be kept in it; keep it in a secret manager (awssm, vault, azurekv)", EnvKeyRef, scheme+":"))
	}
	var vr secrets.VersionResolver
	if mux, ok := secrets.Find[*secrets.Mux](through); ok {
		if b, ok := mux.Resolver(scheme); ok {
			if be, ok := secrets.Find[interface{ Backend() string }](b); ok {
				switch be.Backend() {
				case Backend:
					return nil, refError(s.shown, secrets.CodeInvalidRef, nil, fmt.Sprintf(
						"%s names a ref of scheme %s, which an encrypted column (fernet) serves: the key that protects a table cannot be kept in one; keep it in a secret manager (awssm, vault, azurekv)", EnvKeyRef, scheme+":"))
				case "env":
					return nil, refError(s.shown, secrets.CodeInvalidRef, nil, fmt.Sprintf(
						"%s names a ref of scheme %s, which environment variables (env) serve: set ENCRYPTION_KEY instead, or keep the key in a secret manager that keeps versions (awssm, vault, azurekv)", EnvKeyRef, scheme+":"))
				}
			}
		}
		vr = mux
	} else if v, ok := secrets.Find[secrets.VersionResolver](through); ok {
		vr = v
	} else {
		return nil, refError(s.shown, secrets.CodeInvalidRef, nil,
			"the resolver the store was given leads to no Mux that could read "+EnvKeyRef+": serve the store in a stack (secrets.OpenConfig), or call KeyRing.Load with the Stack or its Mux")
	}
	vs, err := vr.ResolveVersions(ctx, s.ref, s.opts.MaxVersions)
	if err != nil {
		// The backend's reason, and its cause for errors.As (the SDK's
		// error), under this ring's words; not its whole text again.
		reason, cause := "cannot read "+EnvKeyRef+" ("+s.shown+")", err
		var se *secrets.Error
		if errors.As(err, &se) {
			if se.Reason != "" {
				reason += ": " + maskKeyLike(se.Reason)
			}
			cause = se.Err
		}
		if s.shown != s.ref {
			// The SDK's text may quote the name (Vault's request URL
			// does), and the name looks like a key.
			cause = nil
		}
		return nil, refError(s.shown, secrets.CodeOf(err), cause, reason)
	}
	// The resolver may be a host's own: hold it to VersionResolver's "1 to
	// max", so a ring is never left without a primary key.
	if len(vs) == 0 {
		return nil, refError(s.shown, secrets.CodeNotFound, nil, "cannot read "+EnvKeyRef+" ("+s.shown+"): the secret manager answered with no version of it; put a key in it (keyward genkey --store "+s.shown+")")
	}
	vs = vs[:min(len(vs), s.opts.MaxVersions)]
	keys := make([]*fernet.Key, 0, len(vs))
	versions := make([]string, 0, len(vs))
	for i, v := range vs {
		what := fmt.Sprintf("version %q of %s", v.Version, s.shown)
		if i == 0 {
			what = fmt.Sprintf("the current version (%q) of %s", v.Version, s.shown)
		}
		k, err := decodeKey(v.Reveal(), what)
		if err != nil {
			var se *secrets.Error
			if errors.As(err, &se) {
				return nil, refError(s.shown, secrets.CodeInvalidRef, nil, se.Reason)
			}
			return nil, err
		}
		dup := false
		for _, have := range keys {
			dup = dup || *have == *k
		}
		if !dup {
			keys = append(keys, k)
			versions = append(versions, v.Version)
		}
	}
	return newRingKeys(keys, versions), nil
}

// keyRefFromLookup is KeyRingFromLookup for ENCRYPTION_KEY_REF: the ref,
// checked, and ENCRYPTION_KEY_REFRESH.
func keyRefFromLookup(getenv func(string) string, now func() time.Time) (*KeyRing, error) {
	if strings.TrimSpace(getenv(EnvKey)) != "" {
		return nil, refError("", secrets.CodeInvalidRef, nil, EnvKey+" and "+EnvKeyRef+" are both set: the key ring comes from one of them. Unset "+EnvKey+" to read the keys from the secret manager (put the current key there first, or write a new one with keyward genkey --store REF and run keyward rotate), or unset "+EnvKeyRef)
	}
	if strings.TrimSpace(getenv(EnvPreviousKeys)) != "" {
		return nil, refError("", secrets.CodeInvalidRef, nil, EnvPreviousKeys+" is set with "+EnvKeyRef+": the previous keys are the previous versions of the secret "+EnvKeyRef+" names. Unset "+EnvPreviousKeys+" (put an old key in the manager as a version before the current one if rows still need it)")
	}
	opts := &KeyRefOptions{Now: now}
	switch v := strings.TrimSpace(getenv(EnvKeyRefresh)); v {
	case "":
	case "off":
		opts.Refresh = -1
	default:
		d, err := bounds.Duration(EnvKeyRefresh, v, time.Second, 24*time.Hour, `1m, or "off" to read it again only when a token no key opens`)
		if err != nil {
			return nil, refError("", secrets.CodeInvalidRef, nil, err.Error())
		}
		opts.Refresh = d
	}
	return KeyRingFromRef(getenv(EnvKeyRef), opts)
}

// Ring returns the store's key ring, opening the store first if need be
// (a store NewFromEnv made reads a ring from ENCRYPTION_KEY_REF then), so a
// host can tell which key versions it holds (KeyRing.Versions) or read
// them again at once (KeyRing.Load). A store made without a ring (New with
// nil) is an error.
func (s *Store) Ring(ctx context.Context) (*KeyRing, error) {
	b, err := s.table(ctx, "key ring")
	if err != nil {
		return nil, err
	}
	if err := b.needRing(); err != nil {
		return nil, storeError(ctx, "key ring", "", err)
	}
	return b.ring, nil
}
