package fernetstore

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// TestUpdateValueKeepsExpiry: UpdateValue replaces a row's value and leaves
// its expiry as it was (Update sets both; keyward update without --expires
// needs the value alone), on integer and text ids in every dialect.
func TestUpdateValueKeepsExpiry(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *sql.DB, d Dialect) {
		for _, idType := range []IDType{IDInteger, IDText} {
			ctx := context.Background()
			s := newTestStore(t, db, mustRing(t, mustKey(t)), &Options{IDType: idType})
			exp := time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)
			id, err := s.Put(ctx, "n", "p", "sk-first", exp)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateValue(ctx, id, "sk-second"); err != nil {
				t.Fatal(err)
			}
			sec, err := s.Resolve(ctx, id)
			if err != nil || sec.Reveal() != "sk-second" || !sec.ExpiresAt.Equal(exp) {
				t.Errorf("%s ids: after UpdateValue: %v, expires %v (want %v)", idType, err, sec.ExpiresAt, exp)
			}
			missing := "424242"
			if idType == IDText {
				missing = "no-such-row"
			}
			if err := s.UpdateValue(ctx, missing, "x"); !errors.Is(err, secrets.ErrNotFound) {
				t.Errorf("%s ids: UpdateValue of a missing row: %v", idType, err)
			}
			if err := s.UpdateValue(ctx, id+"#f", "x"); !errors.Is(err, secrets.ErrInvalidRef) {
				t.Errorf("%s ids: UpdateValue with #field: %v", idType, err)
			}
			noRing := New(db, nil, &Options{Table: s.opts.Table})
			if err := noRing.UpdateValue(ctx, id, "x"); !errors.Is(err, secrets.ErrInvalidRef) {
				t.Errorf("%s ids: UpdateValue without a key ring: %v", idType, err)
			}
		}
	})
}
