package fernetstore

import (
	"regexp"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/driver"
)

// refTarget is the ref a ref column's name stands for: scheme:name, with
// the characters a ref reads as syntax ('%', '?', '#') escaped, so that
// the followed ref names exactly that variable or secret.
func refTarget(scheme, name string) string {
	return scheme + ":" + refEscaper.Replace(name)
}

var refEscaper = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// looksLikeKey reports a ref column value that is not a name but, most
// likely, a key pasted into the column: an env column's value that is not a
// variable name, or any value with a provider key's or a token's shape. Such
// a value is never quoted (in a ref, an error, an audit line or a list).
func looksLikeKey(scheme, name string) bool {
	if scheme == "env" && !envNameRE.MatchString(name) {
		return true
	}
	if Classify(name) != KindPlaintext {
		return true
	}
	for _, p := range []string{"sk-", "sk_", "gsk_", "xai-", "AIza", "pk-", "rk-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,254}$`)

// pastedKey is the error of a row whose ref column holds what looks like a
// key; it names the column, never the value.
func pastedKey(column string) error {
	return driver.Errorf(secrets.CodeInvalidRef, "the row's %s holds what looks like a key, not the name of a variable or secret: store the key with keyward update and put the name in %s", column, column)
}

// refValue is a reference row's answer: the core follows Ref through the
// Stack the store serves in (secrets.Follower), applying the row's expiry.
func refValue(scheme, name string, exp time.Time) (driver.Value, error) {
	return driver.Value{Ref: refTarget(scheme, name), ExpiresAt: exp}, nil
}
