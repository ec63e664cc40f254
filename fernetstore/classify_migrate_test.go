package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	secrets "github.com/keyward/secrets"
)

// TestMigrateLeavesDamagedTokens is the scenario end to end, on each
// database: a table holding legacy plaintext keys, damaged and wrapped tokens
// and tokens Python decrypts despite a stray character. Migrate encrypts the
// keys, reports every damaged or wrapped row by id and leaves its bytes as
// they were, and leaves the readable tokens alone; afterwards, in strict
// mode, no row resolves to ciphertext: keys and readable tokens resolve to
// their values, the others fail as undecryptable.
func TestMigrateLeavesDamagedTokens(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		ctx := context.Background()
		ring := mustRing(t, mustKey(t))
		s := newTestStore(t, db, ring, &Options{AllowPlaintext: true})
		const value = "sk-ant-api03-e2e-damaged-token-value"
		tok := mustEncrypt(t, ring, value)
		// Values every database stores (valid UTF-8, no NUL: PostgreSQL's
		// text refuses NUL).
		ambiguous := []string{
			"x" + tok[1:], tok[1:], "hAAAAA" + tok[6:], tok[:3] + "-" + tok[3:], // one edit in the first six characters
			"g", tok[:5], tok[:11], tok[:len(tok)-8], // truncations
			"b'" + tok + "'", `{"api_key": "` + tok + `"}`, "Bearer " + tok + "x", // wrappers Python cannot read
		}
		readable := []string{`"` + tok + `"`, "'" + tok + "'", "\ufeff" + tok, "\u00a0" + tok, "." + tok, "!" + tok, "=" + tok, "\v" + tok, "\f" + tok, tok + "\n", " " + tok}
		rng := rand.New(rand.NewChaCha8([32]byte{'e', '2', 'e'}))
		var keys []string
		for _, sh := range keyShapes(rng) {
			keys = append(keys, sh.gen())
		}

		var ambIDs, readIDs, keyIDs []string
		for _, v := range ambiguous {
			if k := Classify(v); k != KindMalformedToken {
				t.Fatalf("a %d-byte damaged token is %v, want malformed-token", len(v), k)
			}
			ambIDs = append(ambIDs, insertRaw(t, db, d, s.opts.Table, v))
		}
		for _, v := range readable {
			readIDs = append(readIDs, insertRaw(t, db, d, s.opts.Table, v))
		}
		for _, v := range keys {
			keyIDs = append(keyIDs, insertRaw(t, db, d, s.opts.Table, v))
		}
		// Migration mode serves none of the damaged rows as plaintext.
		for _, id := range ambIDs {
			if _, err := s.Resolve(ctx, id); !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("migration mode, damaged row %s: %v, want ErrUndecryptable", id, err)
			}
		}

		rep, err := s.Migrate(ctx, &WalkOptions{BatchSize: 7})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Done != len(keys) || rep.Undecryptable != len(ambiguous) || rep.AlreadyCurrent != len(readable) {
			t.Fatalf("migrate: %d done (want %d), %d undecryptable (want %d), %d current (want %d)",
				rep.Done, len(keys), rep.Undecryptable, len(ambiguous), rep.AlreadyCurrent, len(readable))
		}
		if !slices.Equal(rep.UndecryptableIDs, ambIDs) {
			t.Fatalf("undecryptable ids %v, want %v", rep.UndecryptableIDs, ambIDs)
		}

		sel := "SELECT api_key FROM " + s.opts.Table + " WHERE id = ?"
		if d == Postgres {
			sel = strings.Replace(sel, "?", "$1", 1)
		}
		raw := func(id string) string {
			var v string
			if err := db.QueryRow(sel, id).Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		strict := New(db, ring, &Options{Table: s.opts.Table})
		defer strict.Close()
		for i, id := range ambIDs {
			if raw(id) != ambiguous[i] {
				t.Fatalf("damaged row %s was rewritten", id)
			}
			if _, err := strict.Resolve(ctx, id); !errors.Is(err, secrets.ErrUndecryptable) {
				t.Fatalf("strict mode, damaged row %s: %v, want ErrUndecryptable", id, err)
			}
		}
		for i, id := range readIDs {
			if raw(id) != readable[i] {
				t.Fatalf("readable token row %s was rewritten", id)
			}
			if sec, err := strict.Resolve(ctx, id); err != nil || sec.Reveal() != value {
				t.Fatalf("strict mode, readable token row %s: %v", id, err)
			}
		}
		checkAll(t, strict, keyIDs, keys)
	})
}
