package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// Issue 10 item 10: CHAT_RATE and CHAT_BURST refuse what is out of range at
// start, naming the variable, the range and an example, instead of silently
// becoming 0 (a limiter that refuses every chat).
func TestRateLimitsOutOfRange(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"CHAT_RATE", "lots", "CHAT_RATE must be a number above 0 and at most 10000, such as 5"},
		{"CHAT_RATE", "0", "CHAT_RATE must be a number above 0 and at most 10000"},
		{"CHAT_RATE", "-1", "CHAT_RATE must be a number above 0"},
		{"CHAT_RATE", "1e400", "CHAT_RATE must be a number above 0"},
		{"CHAT_RATE", "NaN", "CHAT_RATE must be a number above 0"},
		{"CHAT_BURST", "0", "CHAT_BURST must be a whole number from 1 to 10000, such as 10"},
		{"CHAT_BURST", "99999999999999999999", "CHAT_BURST must be a whole number from 1 to 10000"},
		{"CHAT_BURST", "ten", "CHAT_BURST must be a whole number from 1 to 10000"},
	} {
		env := map[string]string{tc.name: tc.value, "CHAT_DATA_DIR": t.TempDir(), "CHAT_ADDR": "127.0.0.1:0"}
		ctx, cancel := context.WithCancel(context.Background())
		// Should it start anyway, stop it at once: run then returns nil.
		err := run(ctx, func(k string) string { return env[k] }, io.Discard, io.Discard, &runOptions{ready: func(*app) { cancel() }})
		cancel()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%s: run returned %v; want an error saying %q", tc.name, tc.value, err, tc.want)
		}
	}
}
