package vault_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/vault"
)

// Issue 10 item 10: ?version refuses what is out of range, overflowing
// numbers included, naming the option, the range and an example. The ref is
// checked before any request, so no server is needed.
func TestVersionOutOfRange(t *testing.T) {
	client, err := api.NewClient(&api.Config{Address: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	s := vault.New(client, nil)
	defer s.Close()
	for _, v := range []string{"0", "-1", "abc", "99999999999999999999", "9223372036854775808", "1e3", "0x10"} {
		_, err := s.Resolve(context.Background(), "secret/x?version="+v)
		if !errors.Is(err, secrets.ErrInvalidRef) {
			t.Errorf("?version=%s: %v, want ErrInvalidRef", v, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "?version must be a whole number from 1 to "+strconv.Itoa(math.MaxInt)+", such as ?version=3") {
			t.Errorf("?version=%s: the message does not give the range and an example: %s", v, msg)
		}
	}
}
