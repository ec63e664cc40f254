// Package dsn holds what fernetstore.OpenDB and its database packages
// (sqlite, postgres, mysql) share to read a URL-style DSN without ever
// quoting its password: the error for a DSN that is wrong and the check that
// a URL's host and database are not pieces of its password. It links no SQL
// driver and no network code (package connect has that), as fernetstore
// imports it.
package dsn

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	secrets "github.com/keyward/secrets"
)

// backend is fernetstore.Backend (which imports this package).
const backend = "fernet"

// Forms lists the DSN forms fernetstore.OpenDB accepts, for its errors.
const Forms = "accepted forms: sqlite:PATH, sqlite::memory:, postgres://user@host:5432/db?sslmode=disable (or postgresql://), mysql://user@tcp(host:3306)/db?parseTime=true, mysql://user@host:3306/db"

// encodeHint ends the error for a URL that does not parse or is ambiguous:
// the usual cause is a password with a reserved character.
const encodeHint = "percent-encode '/', '?', '#', '@' and '%' in the user name and password (%2F, %3F, %23, %40, %25)"

// Error is the error for a DSN that cannot be opened: what is wrong, then the
// accepted forms. what must quote nothing of the DSN.
func Error(what string) error {
	return &secrets.Error{Op: "open database", Backend: backend, Code: secrets.CodeInvalidRef, Reason: what + "; " + Forms}
}

// CheckURL parses a postgres:// or mysql:// URL and refuses one whose host
// or database might be a piece of its password: a password with an
// unencoded '/', '?' or '#' ends the authority early, so net/url (and the
// drivers, which use it) would take what follows for the path, the query or
// the fragment, and "u:1234/secret@db/x" would connect to host "u", port
// 1234, database "secret@db/x". An '@' anywhere past the authority, or any
// '#', is therefore refused. Errors quote nothing of the URL.
func CheckURL(kind, raw string) (*url.URL, error) {
	if !strings.HasPrefix(raw, kind+"://") {
		return nil, Error(fmt.Sprintf("a %s URL starts with %s://", kind, kind))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, and its causes quote the bad
		// part (an escape, a host, a port), which may be the password's.
		return nil, Error(fmt.Sprintf("the %s URL does not parse (%s); %s", kind, urlParseReason(err), encodeHint))
	}
	// What net/url took for the authority ends at the first '/', '?' or
	// '#'; every '@' of the user information must be before it.
	tail := raw[len(kind)+len("://"):]
	if i := strings.IndexAny(tail, "/?#"); i >= 0 {
		tail = tail[i:]
	} else {
		tail = ""
	}
	switch {
	case strings.Contains(tail, "#"):
		return nil, Error(fmt.Sprintf("the %s URL has a '#', which would end it there and leave the rest out (a %s URL has no fragment); %s", kind, kind, encodeHint))
	case strings.Contains(tail, "@"):
		return nil, Error(fmt.Sprintf("the %s URL has an '@' after its host, so part of the user information would be taken for the host or the database; %s", kind, encodeHint))
	}
	if u.Host == "" && kind == "mysql" {
		return nil, Error("the mysql URL has no host")
	}
	return u, nil
}

// urlParseReason names what net/url refused, without its text.
func urlParseReason(err error) string {
	var esc url.EscapeError
	var host url.InvalidHostError
	msg := err.Error()
	switch {
	case errors.As(err, &esc):
		return "a '%' not followed by two hexadecimal digits"
	case errors.As(err, &host):
		return "a character not allowed in the host"
	case strings.Contains(msg, "invalid port"):
		return "the port is not a number"
	case strings.Contains(msg, "missing ']'"):
		return "an IPv6 host without its closing ']'"
	case strings.Contains(msg, "invalid control character"):
		return "a control character"
	}
	return "malformed"
}
