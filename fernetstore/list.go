package fernetstore

import (
	"context"
	"database/sql"
	"iter"
	"slices"
	"strconv"
	"time"

	secrets "github.com/keyward/secrets"
)

// State is what List says of a row's stored value.
type State string

// The row states. The first six describe what the row holds; StateExpired
// takes precedence in Entry.State, and Entry.Encryption keeps the other.
const (
	StatePrimary       State = "encrypted-primary" // a token under the primary key
	StateOldKey        State = "encrypted-old-key" // a token under a previous key: run rotate
	StatePlaintext     State = "plaintext"         // legacy plaintext: run migrate
	StateUndecryptable State = "undecryptable"     // token-shaped, no key's HMAC matches
	StateReference     State = "reference"         // no value; a ref column names where the key lives (Entry.Ref)
	StateEmpty         State = "empty"             // no value and no reference: the row holds no key
	StateBadReference  State = "bad-reference"     // no value; a ref column holds what looks like a key, not a name: never shown
	StateExpired       State = "expired"           // past expires_at
)

// Entry is one row's metadata. It holds no value, encrypted or not.
type Entry struct {
	ID, Name, Provider string
	State              State  // Encryption, or StateExpired when past ExpiresAt
	Encryption         State  // never StateExpired
	Key                string // KeyName of the key the token is under; "" if none
	// Ref is where a StateReference row's key lives: the ref column's
	// scheme and name, such as "env:ANTHROPIC_API_KEY_1".
	Ref       string
	ExpiresAt time.Time
	CreatedAt time.Time
}

// ListOptions filters and bounds Entries. A nil *ListOptions lists every row.
type ListOptions struct {
	// Provider keeps only the rows of this provider (filtered by the database).
	Provider string
	// States keeps only the rows whose State or Encryption is one of these.
	States []State
	// Limit stops after this many entries; 0 means no limit.
	Limit int
	// After starts after this id, in id order (an Entry.ID of an earlier page).
	After string
	// AnyOrder lets Entries list the rows in whatever order reads the
	// table fastest, for a caller that only counts or checks them: on
	// SQLite, the rowid order of a table whose id is not its rowid (a text
	// id's index costs a second search per row). It cannot be combined
	// with After.
	AnyOrder bool
}

// Entries streams the rows' metadata in id order, a page of rows at a time,
// so memory does not grow with the table. It never decrypts: the state
// comes from the value's structure and an HMAC check per key. An error ends
// the sequence.
func (s *Store) Entries(ctx context.Context, opts *ListOptions) iter.Seq2[Entry, error] {
	var o ListOptions
	if opts != nil {
		o = *opts
		o.States = slices.Clone(o.States)
	}
	return func(yield func(Entry, error) bool) {
		const op = "list"
		fail := func(err error) { yield(Entry{}, err) }
		if o.Limit < 0 {
			fail(errorf(op, "", secrets.CodeInvalidRef, nil, "ListOptions.Limit is negative: give 0 for every row, or the number of rows to list"))
			return
		}
		b, sc, err := s.schema(ctx, op)
		if err != nil {
			fail(err)
			return
		}
		if err := b.needRing(); err != nil {
			fail(storeError(ctx, op, "", err))
			return
		}
		if o.After != "" {
			if _, err := sc.parseID(o.After); err != nil {
				fail(storeError(ctx, op, o.After, err))
				return
			}
		}
		// physical: page on the rowid instead of the id.
		physical := o.AnyOrder && sc.rowid && (sc.text || sc.noAssign)
		if o.AnyOrder && o.After != "" {
			fail(errorf(op, "", secrets.CodeInvalidRef, nil, "ListOptions.AnyOrder cannot be combined with After: leave one out"))
			return
		}
		listFirst, list, order := sc.q.listFirst, sc.q.list, sc.q.id
		if physical {
			listFirst, list, order = sc.q.listRowidFirst, sc.q.listRowid, "rowid"
		}
		now := b.now()
		after, first := o.After, o.After == ""
		emitted := 0
		refs := make([]sql.NullString, len(sc.refs))
		page := make([]Entry, 0, listPage)
		for {
			query, args := list, []any{sc.idArg(after)}
			if physical {
				args = []any{sc.walkArg(after)}
			}
			if first {
				query, args = listFirst, nil
			}
			if o.Provider != "" && sc.has.provider {
				query += " AND " + sc.q.provider + " = " + b.d.ph(len(args)+1)
				args = append(args, o.Provider)
			}
			query += " ORDER BY " + order + " LIMIT " + b.d.ph(len(args)+1)
			args = append(args, listPage)
			rows, err := b.db.QueryContext(ctx, query, args...)
			if err != nil {
				fail(opError(ctx, op, "", err))
				return
			}
			// The page is read whole and its rows closed before any entry
			// is yielded, so the caller may use the database meanwhile
			// (with one connection, as an in-memory SQLite has, it would
			// otherwise wait for itself).
			page = page[:0]
			for rows.Next() {
				var (
					id                  string
					name, provider, val sql.NullString
					expRaw, createdRaw  any
				)
				var pos string
				dest := []any{scanID{&id}, &name, &provider, &val, &expRaw, &createdRaw}
				if physical {
					dest = append([]any{scanID{&pos}}, dest...)
				}
				for i := range refs {
					dest = append(dest, &refs[i])
				}
				if err := rows.Scan(dest...); err != nil {
					rows.Close()
					fail(opError(ctx, op, "", err))
					return
				}
				if !sc.text {
					// 0 and negative ids are integers too (though no ref
					// names them); text is not.
					if _, err := strconv.ParseInt(id, 10, 64); err != nil {
						rows.Close()
						fail(errorf(op, "", secrets.CodeInvalidRef, nil, "the table holds a row whose id is not an integer, though its id column holds integers: give it an integer id, or read the table with text ids (id_type=text)"))
						return
					}
				}
				key := id
				if physical {
					key = pos
				}
				if !first && key == after {
					rows.Close()
					fail(errorf(op, "", secrets.CodeInvalidRef, nil, "the table's ids do not sort in one order (the page after row %q began with it again): check the id column's type and collation", id))
					return
				}
				after, first = key, false
				e := Entry{ID: id, Name: name.String, Provider: provider.String}
				e.ExpiresAt, _ = parseDBTime(expRaw)
				e.CreatedAt, _ = parseDBTime(createdRaw)
				e.Encryption, e.Key, e.Ref = b.rowState(sc, val.String, refs)
				e.State = e.Encryption
				if !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt) {
					e.State = StateExpired
				}
				page = append(page, e)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				fail(opError(ctx, op, "", err))
				return
			}
			for _, e := range page {
				if len(o.States) > 0 && !slices.Contains(o.States, e.State) && !slices.Contains(o.States, e.Encryption) {
					continue
				}
				if !yield(e, nil) {
					return
				}
				if emitted++; o.Limit > 0 && emitted >= o.Limit {
					return
				}
			}
			n := len(page)
			if n < listPage {
				return
			}
		}
	}
}

// List returns every row's metadata in id order, in memory: for a small
// table. Entries streams a table of any size.
func (s *Store) List(ctx context.Context) ([]Entry, error) {
	var out []Entry
	for e, err := range s.Entries(ctx, nil) {
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// rowState classifies a row without decrypting it: its value, else its
// first ref column that names a key, else empty.
func (b *base) rowState(sc *schema, value string, refs []sql.NullString) (State, string, string) {
	if value == "" {
		for i, r := range refs {
			if r.String != "" {
				if looksLikeKey(sc.refs[i].Scheme, r.String) {
					return StateBadReference, "", "" // a key pasted into the ref column: never shown
				}
				return StateReference, "", refTarget(sc.refs[i].Scheme, r.String)
			}
		}
		return StateEmpty, "", ""
	}
	st, key := b.state(value)
	return st, key, ""
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
