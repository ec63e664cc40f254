// Package refs parses the backend-local ref grammar shared by every keyward
// backend: "path[?name=value&...][#field]", with %XX escapes for a literal
// '#', '?' or '%' in the path, and extracts a #field from a JSON document.
package refs

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// MaxLen bounds a ref's length; longer refs are invalid (no backend names a
// secret with kilobytes, and refs can come from rows a tenant can edit).
const MaxLen = 2048

// Ref is a parsed backend-local ref.
type Ref struct {
	Path  string     // unescaped; never empty
	Query url.Values // nil when the ref has no '?'
	Field string     // unescaped; "" when the ref has no '#'
}

// Error is a parse failure. Its text names what is wrong with the ref.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

func invalid(format string, args ...any) error { return &Error{Reason: fmt.Sprintf(format, args...)} }

// Parse splits s into path, query and field. allowed lists the query
// parameter names the backend accepts; any other is an error, so a typo never
// silently selects a different secret.
func Parse(s string, allowed ...string) (Ref, error) {
	if s == "" {
		return Ref{}, invalid("empty ref")
	}
	if len(s) > MaxLen {
		return Ref{}, invalid("ref is %d bytes, longer than the %d allowed", len(s), MaxLen)
	}
	if !utf8.ValidString(s) {
		return Ref{}, invalid("ref is not valid UTF-8")
	}
	if hasControl(s) {
		return Ref{}, invalid("ref contains a control character")
	}
	var r Ref
	rest := s
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		field, err := url.PathUnescape(rest[i+1:])
		if err != nil {
			return Ref{}, invalid("bad %%-escape in #field")
		}
		if hasControl(field) || !utf8.ValidString(field) {
			return Ref{}, invalid("#field contains a control character or invalid UTF-8")
		}
		if field == "" {
			return Ref{}, invalid("empty #field: write name#field, or leave out the '#'")
		}
		r.Field = field
		rest = rest[:i]
	}
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		q, err := url.ParseQuery(rest[i+1:])
		if err != nil {
			return Ref{}, invalid("bad ?query: %v", err)
		}
		for name := range q {
			if !contains(allowed, name) {
				if len(allowed) == 0 {
					return Ref{}, invalid("unknown option %q: this backend takes no ?options", name)
				}
				return Ref{}, invalid("unknown option %q: this backend takes %s", name, strings.Join(allowed, ", "))
			}
			if len(q[name]) > 1 {
				return Ref{}, invalid("option %q given more than once", name)
			}
		}
		r.Query = q
		rest = rest[:i]
	}
	path, err := url.PathUnescape(rest)
	if err != nil {
		return Ref{}, invalid("bad %%-escape in name")
	}
	if path == "" {
		return Ref{}, invalid("empty name")
	}
	if hasControl(path) || !utf8.ValidString(path) {
		return Ref{}, invalid("name contains a control character or invalid UTF-8")
	}
	r.Path = path
	return r, nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ErrNoField means the document has no such field; ErrNotDocument means the
// value is not a JSON object. Neither error's text holds any of the value.
var (
	ErrNoField     = errors.New("no such field in the secret")
	ErrNotDocument = errors.New("the secret is not a JSON object, so it has no #fields")
)

// Field returns field of the JSON object doc. A string field is returned as
// is; any other JSON value is returned as its JSON text. The errors never
// quote doc: a parse error of a secret could otherwise echo part of it.
func Field(doc []byte, field string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return "", ErrNotDocument
	}
	raw, ok := m[field]
	if !ok {
		return "", ErrNoField
	}
	// Only a JSON string is unquoted: Unmarshal would also take null into a
	// string, as "".
	var str string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &str) == nil {
		return str, nil
	}
	return string(raw), nil
}
