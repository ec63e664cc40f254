package fernetstore

import (
	"strings"
	"time"

	"github.com/keyward/secrets/driver"
)

// refTarget is the ref a ref column's name stands for: scheme:name, with
// the characters a ref reads as syntax ('%', '?', '#') escaped, so that
// the followed ref names exactly that variable or secret.
func refTarget(scheme, name string) string {
	return scheme + ":" + refEscaper.Replace(name)
}

var refEscaper = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// refValue is a reference row's answer: the core follows Ref through the
// Stack the store serves in (secrets.Follower), applying the row's expiry.
func refValue(scheme, name string, exp time.Time) (driver.Value, error) {
	return driver.Value{Ref: refTarget(scheme, name), ExpiresAt: exp}, nil
}
