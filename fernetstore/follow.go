package fernetstore

import (
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

// refValue is a reference row's answer: the core follows it.
func refValue(scheme, name string, exp time.Time) (driver.Value, error) {
	// Interim, until the driver layer follows references: refuse, never
	// answer the target's name as if it were the key.
	_ = exp
	return driver.Value{}, driver.Errorf(secrets.CodeNotFound, "the row's key is at %s, and this build does not follow references yet", refTarget(scheme, name))
}
