package fernetstore

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// State is what List says of a row's stored value.
type State string

// The row states. The first four describe the encryption; StateExpired
// takes precedence in Entry.State, and Entry.Encryption keeps the other.
const (
	StatePrimary       State = "encrypted-primary" // a token under the primary key
	StateOldKey        State = "encrypted-old-key" // a token under a previous key: run rotate
	StatePlaintext     State = "plaintext"         // legacy plaintext: run migrate
	StateUndecryptable State = "undecryptable"     // token-shaped, no key's HMAC matches
	StateExpired       State = "expired"           // past expires_at
)

// Entry is one row's metadata. It holds no value, encrypted or not.
type Entry struct {
	ID, Name, Provider string
	State              State  // Encryption, or StateExpired when past ExpiresAt
	Encryption         State  // never StateExpired
	Key                string // KeyName of the key the token is under; "" if none
	ExpiresAt          time.Time
	CreatedAt          time.Time
}

// List returns every row's metadata in id order. It never decrypts: the
// state comes from the value's structure and an HMAC check per key.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	b, err := s.table(ctx, "list")
	if err != nil {
		return nil, err
	}
	var out []Entry
	var after int64
	now := b.now()
	for {
		n := 0
		rows, err := b.db.QueryContext(ctx, b.q.list, after)
		if err != nil {
			return nil, opError(ctx, "list", "", err)
		}
		for rows.Next() {
			var (
				id                  int64
				name, provider, val sql.NullString
				expRaw, createdRaw  any
			)
			if err := rows.Scan(&id, &name, &provider, &val, &expRaw, &createdRaw); err != nil {
				rows.Close()
				return nil, opError(ctx, "list", "", err)
			}
			n++
			after = id
			e := Entry{ID: strconv.FormatInt(id, 10), Name: name.String, Provider: provider.String}
			e.ExpiresAt, _ = parseDBTime(expRaw)
			e.CreatedAt, _ = parseDBTime(createdRaw)
			e.Encryption, e.Key = b.state(val.String)
			e.State = e.Encryption
			if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
				e.State = StateExpired
			}
			out = append(out, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, opError(ctx, "list", "", err)
		}
		if n < listPage {
			return out, nil
		}
	}
}

// state classifies a stored value without decrypting it.
func (b *base) state(v string) (State, string) {
	switch Classify(v) {
	case KindPlaintext:
		return StatePlaintext, ""
	case KindMalformedToken:
		return StateUndecryptable, ""
	}
	i, err := b.ring.KeyOf(v)
	switch {
	case err != nil:
		return StateUndecryptable, ""
	case i == 0:
		return StatePrimary, KeyName(0)
	}
	return StateOldKey, KeyName(i)
}
