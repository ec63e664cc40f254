package secrets_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
)

// Issue 10 items 10 and 11: the configuration's timeout key refuses what is
// out of its range, overflowing durations included, naming the key, the
// range and an example.
func TestConfigTimeoutOutOfRange(t *testing.T) {
	for _, bad := range []string{"-1s", "2562047h", "2562048h", "1h0m1s", "8760h", "soon", "5"} {
		_, err := secrets.ParseConfig("timeout = " + bad)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("timeout = %s: %v, want ErrInvalidRef", bad, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "timeout must be a Go duration from 0 to 1h, such as 5s") {
			t.Errorf("timeout = %s: the message does not give the range and an example: %s", bad, msg)
		}
	}
	for in, want := range map[string]time.Duration{"0": 0, "5s": 5 * time.Second, "1h": time.Hour} {
		c, err := secrets.ParseConfig("timeout = " + in)
		if err != nil || c.Timeout != want {
			t.Errorf("timeout = %s: %v, %v; want %v", in, c, err, want)
		}
	}
}
