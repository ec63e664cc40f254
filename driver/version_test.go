package driver_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// versionDriver is a mapDriver that also tells versions, counting the
// Version calls and the refs they got.
type versionDriver struct {
	*mapDriver
	versions   atomic.Int64
	mu         sync.Mutex
	seen       []driver.Ref
	versionErr error
}

func (v *versionDriver) Version(ctx context.Context, ref driver.Ref) (string, error) {
	v.versions.Add(1)
	v.mu.Lock()
	v.seen = append(v.seen, ref)
	v.mu.Unlock()
	if v.versionErr != nil {
		return "", v.versionErr
	}
	if v.block != nil {
		select {
		case <-v.block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if ref.Name == "unversioned" {
		return "", driver.Unsupported("entry %s keeps no versions", ref.Name)
	}
	if ref.Name == "empty" {
		return "", nil
	}
	if p := ref.Query.Get("version"); p != "" {
		return p, nil
	}
	v.mapDriver.mu.Lock()
	defer v.mapDriver.mu.Unlock()
	val, ok := v.values[ref.Name]
	if !ok {
		return "", driver.Errorf(secrets.CodeNotFound, "no secret named %s", ref.Name)
	}
	return val.Version, nil
}

func newVersioned() *versionDriver {
	m := newMap()
	m.values["unversioned"] = driver.Value{Data: "sk-unversioned"}
	m.values["empty"] = driver.Value{Data: "sk-empty"}
	return &versionDriver{mapDriver: m}
}

// wantVersionErr is wantErr for Op "version".
func wantVersionErr(t *testing.T, err error, code secrets.Code, ref string) *secrets.Error {
	t.Helper()
	e := wantErr(t, err, code, "test", ref)
	if e.Op != "version" {
		t.Fatalf("error %v: Op %q, want version", err, e.Op)
	}
	return e
}

func TestCurrentVersion(t *testing.T) {
	d := newVersioned()
	r := driver.New("test", d, &driver.Options{Params: []string{"version"}})
	ctx := context.Background()

	got, err := r.CurrentVersion(ctx, "plain")
	if err != nil || got != "v1" {
		t.Fatalf("CurrentVersion(plain) = %q, %v; want v1", got, err)
	}
	s, err := r.Resolve(ctx, "plain")
	if err != nil || s.Version != got {
		t.Fatalf("Resolve's Version %q differs from CurrentVersion's %q (%v)", s.Version, got, err)
	}
	if n := d.gets.Load(); n != 1 {
		t.Errorf("%d Gets, want the one Resolve made: CurrentVersion must not Get", n)
	}

	// The ref reaches the driver parsed, #field and ?options included.
	if got, err := r.CurrentVersion(ctx, "plain?version=v7#api_key"); err != nil || got != "v7" {
		t.Fatalf("pinned: %q, %v", got, err)
	}
	last := d.seen[len(d.seen)-1]
	if last.Name != "plain" || last.Field != "api_key" || last.Query.Get("version") != "v7" || last.Raw != "plain?version=v7#api_key" {
		t.Errorf("the driver got %+v", last)
	}

	wantVersionErr(t, errOf(r.CurrentVersion(ctx, "missing")), secrets.CodeNotFound, "missing")

	// A ref the driver cannot answer for, and an empty answer, are
	// ErrUnsupported.
	for _, ref := range []string{"unversioned", "empty"} {
		err := errOf(r.CurrentVersion(ctx, ref))
		e := wantVersionErr(t, err, secrets.CodeUnknown, ref)
		if !errors.Is(err, errors.ErrUnsupported) {
			t.Errorf("%s: %v does not match errors.ErrUnsupported", ref, err)
		}
		if e.Reason == "" {
			t.Errorf("%s: no reason", ref)
		}
	}
}

func errOf(_ string, err error) error { return err }

// TestCurrentVersionUnsupported: a driver without Versioner fails every
// valid ref with ErrUnsupported, after parsing and opening as Resolve does.
func TestCurrentVersionUnsupported(t *testing.T) {
	var opens atomic.Int64
	m := newMap()
	r := driver.Open("test", func(context.Context) (driver.Driver, error) {
		opens.Add(1)
		return m, nil
	}, nil)
	err := errOf(r.CurrentVersion(context.Background(), "plain#f"))
	e := wantVersionErr(t, err, secrets.CodeUnknown, "plain#f")
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("%v does not match errors.ErrUnsupported", err)
	}
	if !strings.Contains(e.Reason, "resolve the ref again") {
		t.Errorf("the reason does not say what to do instead: %q", e.Reason)
	}
	if opens.Load() != 1 || m.gets.Load() != 0 {
		t.Errorf("%d opens and %d Gets, want 1 and 0", opens.Load(), m.gets.Load())
	}
	// An invalid ref is ErrInvalidRef, not unsupported: it is refused first.
	err = errOf(r.CurrentVersion(context.Background(), "plain?stage=x"))
	wantVersionErr(t, err, secrets.CodeInvalidRef, "plain?stage=x")
	if errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("an invalid ref matches ErrUnsupported: %v", err)
	}
}

// TestCurrentVersionRules: the rules Resolve follows hold for CurrentVersion,
// under Op "version": parse and Check before the open, the open's errors,
// the context rule, a driver's own timeout, unclassified errors cut, and the
// closed state.
func TestCurrentVersionRules(t *testing.T) {
	ctx := context.Background()

	t.Run("CheckBeforeOpen", func(t *testing.T) {
		var opens atomic.Int64
		r := driver.Open("test", func(context.Context) (driver.Driver, error) {
			opens.Add(1)
			return newVersioned(), nil
		}, &driver.Options{Check: func(ref driver.Ref) error {
			if strings.Contains(ref.Name, "..") {
				return driver.Errorf(secrets.CodeInvalidRef, "no '..' in names")
			}
			return nil
		}})
		for _, ref := range []string{"a/../b", "", "x?bogus=1", "a\x00b"} {
			wantVersionErr(t, errOf(r.CurrentVersion(ctx, ref)), secrets.CodeInvalidRef, ref)
		}
		if n := opens.Load(); n != 0 {
			t.Fatalf("refused refs opened the driver %d times", n)
		}
	})

	t.Run("OpenFails", func(t *testing.T) {
		var opens atomic.Int64
		r := driver.Open("test", func(context.Context) (driver.Driver, error) {
			if opens.Add(1) == 1 {
				return nil, driver.Errorf(secrets.CodePermission, "the token was refused")
			}
			return newVersioned(), nil
		}, nil)
		e := wantVersionErr(t, errOf(r.CurrentVersion(ctx, "plain")), secrets.CodePermission, "plain")
		if e.Reason != "the token was refused" {
			t.Errorf("reason %q", e.Reason)
		}
		if v, err := r.CurrentVersion(ctx, "plain"); err != nil || v != "v1" {
			t.Fatalf("the next call did not open again: %q, %v", v, err)
		}
	})

	t.Run("Context", func(t *testing.T) {
		d := newVersioned()
		d.block = make(chan struct{})
		r := driver.New("test", d, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := errOf(r.CurrentVersion(cctx, "plain"))
		wantVersionErr(t, err, secrets.CodeUnknown, "plain")
		if !errors.Is(err, context.Canceled) || d.versions.Load() != 0 {
			t.Fatalf("canceled before the call: %v, %d calls", err, d.versions.Load())
		}
		dctx, dcancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer dcancel()
		err = errOf(r.CurrentVersion(dctx, "plain")) // blocks in Version until the deadline
		wantVersionErr(t, err, secrets.CodeUnavailable, "plain")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deadline during the call: %v", err)
		}
	})

	t.Run("DriverErrors", func(t *testing.T) {
		d := newVersioned()
		r := driver.New("test", d, nil)
		d.versionErr = fmt.Errorf("client: %w", context.DeadlineExceeded)
		wantVersionErr(t, errOf(r.CurrentVersion(ctx, "plain")), secrets.CodeUnavailable, "plain")

		d.versionErr = errors.New("body said sk-leaked-value")
		err := errOf(r.CurrentVersion(ctx, "plain"))
		wantVersionErr(t, err, secrets.CodeUnknown, "plain")
		if strings.Contains(fmt.Sprintf("%v %+v", err, err), "sk-leaked-value") {
			t.Fatal("an unclassified error's text got through")
		}

		d.versionErr = driver.Errorf(secrets.CodeUnavailable, "throttled")
		e := wantVersionErr(t, errOf(r.CurrentVersion(ctx, "plain")), secrets.CodeUnavailable, "plain")
		if e.Reason != "throttled" {
			t.Errorf("reason %q", e.Reason)
		}
	})

	t.Run("Closed", func(t *testing.T) {
		d := newVersioned()
		r := driver.New("test", d, nil)
		if _, err := r.CurrentVersion(ctx, "plain"); err != nil {
			t.Fatal(err)
		}
		r.Close()
		e := wantVersionErr(t, errOf(r.CurrentVersion(ctx, "plain")), secrets.CodeUnavailable, "plain")
		if !strings.Contains(e.Reason, "closed") {
			t.Errorf("reason %q", e.Reason)
		}
		if n := d.versions.Load(); n != 1 {
			t.Errorf("%d Version calls, want 1 (none after Close)", n)
		}
	})
}

// TestCurrentVersionFind: a Store embedding the Resolver is found as a
// secrets.VersionChecker.
func TestCurrentVersionFind(t *testing.T) {
	type store struct{ *driver.Resolver }
	var kr secrets.KeyResolver = store{driver.New("test", newVersioned(), nil)}
	vc, ok := secrets.Find[secrets.VersionChecker](kr)
	if !ok {
		t.Fatal("a Store embedding *driver.Resolver is not a VersionChecker")
	}
	if v, err := vc.CurrentVersion(context.Background(), "plain"); err != nil || v != "v1" {
		t.Fatalf("%q, %v", v, err)
	}
}
