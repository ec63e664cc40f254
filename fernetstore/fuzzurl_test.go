package fernetstore

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// FuzzParseURL: a fernet:// URL (configuration, possibly edited by hand)
// with ref_columns= and id_type= either parses into options whose names
// are all plain SQL names and schemes, or fails with ErrInvalidRef; never a
// panic.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"fernet://?ref_columns=key_env_var:env,secret_name:awssm",
		"fernet://?table=bots&id_type=text&plaintext=allow",
		"fernet://?ref_columns=a:b,a:c", "fernet://?ref_columns=:env", "fernet://?ref_columns=x:",
		"fernet://?ref_columns=x%3Aenv", "fernet://?id_type=uuid", "fernet://?ref_columns=k:ENV",
		"fernet://?ref_columns=k:env,,s:awssm", "fernet://?ref_columns=k;drop:env",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		o, err := ParseURL(raw)
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) {
				t.Fatalf("ParseURL(%q): %v, want ErrInvalidRef", raw, err)
			}
			return
		}
		for _, r := range o.RefColumns {
			if !identRE.MatchString(r.Column) || !refSchemeRE.MatchString(r.Scheme) {
				t.Fatalf("ParseURL(%q) accepted ref column %q:%q", raw, r.Column, r.Scheme)
			}
		}
		switch o.IDType {
		case IDAuto, IDInteger, IDText:
		default:
			t.Fatalf("ParseURL(%q) accepted id type %q", raw, o.IDType)
		}
	})
}

// FuzzTextID: any ref on a text-id table resolves, is not found, or is an
// invalid ref; never a panic, never another code, and the same id written
// by Insert reads back.
func FuzzTextID(f *testing.F) {
	for _, s := range []string{"0d02e4ad-ec46-48d3-9bfa-28dcd51d2f7b", "a#b", "%zz", "a%23b", "x?y=1", "\x00", strings.Repeat("k", 300), "ключ"} {
		f.Add(s)
	}
	db, err := OpenDB("sqlite:" + filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(pythonDDL(SQLite, "api_keys")); err != nil {
		f.Fatal(err)
	}
	key, err := GenerateKey()
	if err != nil {
		f.Fatal(err)
	}
	ring, err := ParseKeyRing(key)
	if err != nil {
		f.Fatal(err)
	}
	s := New(db, ring, nil)
	defer s.Close()
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, ref string) {
		_, err := s.Resolve(ctx, ref)
		switch {
		case err == nil, errors.Is(err, secrets.ErrNotFound), errors.Is(err, secrets.ErrInvalidRef):
		default:
			t.Fatalf("Resolve(%q): %v", ref, err)
		}
		// An id Insert accepts is one Resolve finds, as RowRef names it
		// (the one spelling a ref may have: canonicalRef).
		id, err := s.Insert(ctx, Row{ID: ref, Name: "fuzz", Provider: "p"}, "sk-fuzz")
		if err != nil {
			if !errors.Is(err, secrets.ErrInvalidRef) && !errors.Is(err, secrets.ErrUnavailable) {
				t.Fatalf("Insert(%q): %v", ref, err)
			}
			return
		}
		defer s.Delete(ctx, RowRef(id))
		sec, err := s.Resolve(ctx, RowRef(id))
		if err != nil || sec.Reveal() != "sk-fuzz" {
			t.Fatalf("Resolve of inserted id %q: %v", id, err)
		}
	})
}
