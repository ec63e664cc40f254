package fernetstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	secrets "github.com/keyward/secrets"
)

// wantInvalid fails t unless err is an ErrInvalidRef that says every one
// of says.
func wantInvalid(t *testing.T, what string, err error, says ...string) {
	t.Helper()
	if !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("%s: %v, want ErrInvalidRef", what, err)
		return
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: %q does not say %q", what, err, s)
		}
	}
}

// TestUUIDColumnRefusesOtherIDs (review finding 3): on a PostgreSQL table
// whose id column is the native uuid type, an id that is not a UUID is an
// invalid ref, as "abc" is where ids are integers, refused without asking
// the database; every form PostgreSQL reads as a UUID still finds its row.
// On the old code the database refused the id (22P02), reported as
// ErrUnavailable: the CLI exited 4, "server down".
func TestUUIDColumnRefusesOtherIDs(t *testing.T) {
	db := openTestDB(t, Postgres)
	ctx := context.Background()
	table := "kw_uuid_" + randHex(6)
	if _, err := db.Exec(fmt.Sprintf("CREATE TABLE %s (id UUID PRIMARY KEY, name TEXT NOT NULL DEFAULT '', provider TEXT NOT NULL DEFAULT '', api_key TEXT, expires_at TIMESTAMPTZ, created_at TIMESTAMPTZ NOT NULL DEFAULT now())", table)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Exec("DROP TABLE " + table) })
	s := New(db, mustRing(t, mustKey(t)), &Options{Table: table})
	defer s.Close()
	id, err := s.Put(ctx, "n", "p", "sk-uuid-row", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	u := uuid.MustParse(id)
	hex := strings.ReplaceAll(id, "-", "")
	for _, ref := range []string{id, strings.ToUpper(id), "{" + id + "}", hex, hex[:4] + "-" + hex[4:8] + "-" + hex[8:]} {
		if sec, err := s.Resolve(ctx, ref); err != nil || sec.Reveal() != "sk-uuid-row" {
			t.Errorf("Resolve(%s), a form PostgreSQL reads as %s: %v", ref, u, err)
		}
	}
	bad := []string{"abc", "1", id[:35], id + "0", id + " ", " " + id, "{" + id, id + "}", "-" + hex, hex + "-", strings.Replace(id, "-", "--", 1), "g" + id[1:], "urn:uuid:" + id}
	for _, ref := range bad {
		_, err := s.Resolve(ctx, ref)
		wantInvalid(t, "Resolve("+ref+")", err, "UUID")
		wantInvalid(t, "Update("+ref+")", s.Update(ctx, ref, "sk-x", time.Time{}), "UUID")
		wantInvalid(t, "UpdateValue("+ref+")", s.UpdateValue(ctx, ref, "sk-x"), "UUID")
		wantInvalid(t, "Delete("+ref+")", s.Delete(ctx, ref), "UUID")
		_, err = s.Insert(ctx, Row{ID: ref}, "sk-x")
		wantInvalid(t, "Insert(ID "+ref+")", err, "UUID")
		for _, err := range s.Entries(ctx, &ListOptions{After: ref}) {
			wantInvalid(t, "Entries(After "+ref+")", err, "UUID")
			break
		}
		_, err = s.Migrate(ctx, &WalkOptions{After: ref})
		wantInvalid(t, "Migrate(After "+ref+")", err)
	}
	if sec, err := s.Resolve(ctx, id); err != nil || sec.Reveal() != "sk-uuid-row" {
		t.Fatalf("the row after the refused writes: %v", err)
	}
	// The store reads as PostgreSQL reads: a '-' or a brace at every place,
	// each character dropped or doubled.
	var forms []string
	for i := 0; i <= len(hex); i++ {
		forms = append(forms, hex[:i]+"-"+hex[i:], "{"+hex[:i]+"-"+hex[i:]+"}", hex[:i]+"}"+hex[i:])
	}
	for i := 0; i < len(id); i++ {
		forms = append(forms, id[:i]+id[i+1:], id[:i+1]+id[i:], "{"+id[:i]+id[i+1:]+"}")
	}
	for _, f := range forms {
		var out string
		err := db.QueryRowContext(ctx, "SELECT $1::text::uuid::text", f).Scan(&out)
		if reads := err == nil; reads != isPostgresUUID(f) {
			t.Errorf("%q: PostgreSQL reads it: %v (%v); isPostgresUUID: %v", f, reads, err, !reads)
		}
	}
	given := uuid.NewString()
	if got, err := s.Insert(ctx, Row{ID: given}, "sk-given"); err != nil || got != given {
		t.Fatalf("Insert with a UUID: %q %v", got, err)
	}
	if es, err := s.List(ctx); err != nil || len(es) != 2 {
		t.Fatalf("List: %d rows, %v", len(es), err)
	}
}
