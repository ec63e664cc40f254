package fernetstore

import (
	"database/sql/driver"
	"fmt"
	"log/slog"
	"sync"

	secrets "github.com/keyward/secrets"
)

// RingSource supplies the key ring for an Encrypted column type. A host
// defines a zero-size type whose method returns its ring, so a model field's
// type names the ring it is bound to:
//
//	type appKeys struct{}
//	func (appKeys) KeyRing() (*fernetstore.KeyRing, error) { return ring, nil }
//
//	type Bot struct {
//		ID     int64
//		APIKey fernetstore.Encrypted[appKeys]
//	}
type RingSource interface {
	KeyRing() (*KeyRing, error)
}

// EnvRing is a RingSource reading ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS
// once, on first use (a missing key stays an error until the process restarts).
type EnvRing struct{}

var envRing = sync.OnceValues(KeyRingFromEnv)

// KeyRing returns the ring from the environment.
func (EnvRing) KeyRing() (*KeyRing, error) { return envRing() }

// Encrypted is a string column stored as a Fernet token under the ring of K,
// for a host's own models with database/sql, sqlx or GORM: it implements
// sql.Scanner and driver.Valuer. Writing encrypts under the primary key;
// reading decrypts with any key of the ring and fails (ErrUndecryptable) on
// plaintext or a token no key opens. SQL NULL is the zero value. Every
// printed or encoded form (fmt, JSON, text, slog) is a redaction; only
// Reveal returns the value.
type Encrypted[K RingSource] struct {
	// value is behind a pointer for the same reason as secrets.Secret's: fmt
	// prints the fields of an Encrypted held in an unexported field.
	value *string
	valid bool
}

// NewEncrypted returns a non-NULL Encrypted holding value.
func NewEncrypted[K RingSource](value string) Encrypted[K] {
	return Encrypted[K]{value: &value, valid: true}
}

// Reveal returns the value ("" for NULL).
func (e Encrypted[K]) Reveal() string {
	if e.value == nil {
		return ""
	}
	return *e.value
}

// Valid reports whether the column is not NULL.
func (e Encrypted[K]) Valid() bool { return e.valid }

func ringOf[K RingSource]() (*KeyRing, error) {
	var k K
	r, err := k.KeyRing()
	if err == nil && r == nil {
		err = keyError(fmt.Sprintf("the RingSource %T returned no key ring", k))
	}
	return r, err
}

// Value encrypts the value under the primary key (NULL stays NULL).
func (e Encrypted[K]) Value() (driver.Value, error) {
	if !e.valid {
		return nil, nil
	}
	r, err := ringOf[K]()
	if err != nil {
		return nil, err
	}
	return r.Encrypt([]byte(e.Reveal()))
}

// Scan decrypts a token read from the database.
func (e *Encrypted[K]) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*e = Encrypted[K]{}
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return &secrets.Error{Op: "scan", Backend: Backend, Code: secrets.CodeUndecryptable,
			Reason: fmt.Sprintf("an encrypted column must be text, not %T", src)}
	}
	r, err := ringOf[K]()
	if err != nil {
		return err
	}
	if Classify(s) == KindPlaintext {
		return &secrets.Error{Op: "scan", Backend: Backend, Code: secrets.CodeUndecryptable,
			Reason: "the column holds plaintext, not a Fernet token; encrypt it first (fernetstore Migrate, or write it through Encrypted)"}
	}
	msg, _, err := r.Decrypt(s)
	if err != nil {
		return err
	}
	v := string(msg)
	*e = Encrypted[K]{value: &v, valid: true}
	return nil
}

// String returns secrets.Redacted.
func (e Encrypted[K]) String() string { return secrets.Redacted }

// GoString returns a redacted Go-syntax form.
func (e Encrypted[K]) GoString() string { return "fernetstore.Encrypted{" + secrets.Redacted + "}" }

// Format prints a redaction for every verb.
func (e Encrypted[K]) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, e.GoString())
	case verb == 'q':
		fmt.Fprintf(f, "%q", secrets.Redacted)
	default:
		fmt.Fprint(f, secrets.Redacted)
	}
}

// MarshalJSON encodes the column as the JSON string secrets.Redacted.
func (e Encrypted[K]) MarshalJSON() ([]byte, error) { return []byte(`"` + secrets.Redacted + `"`), nil }

// MarshalText encodes the column as secrets.Redacted.
func (e Encrypted[K]) MarshalText() ([]byte, error) { return []byte(secrets.Redacted), nil }

// LogValue shows secrets.Redacted in logs.
func (e Encrypted[K]) LogValue() slog.Value { return slog.StringValue(secrets.Redacted) }
