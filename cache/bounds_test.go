package cache_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/cache"
	"github.com/keyward/secrets/secretstest"
)

// longest is the longest Go duration ParseDuration accepts in hours: added
// to a wall-clock time in nanoseconds it overflows int64.
const longest = "2562047h"

// Issue 10 items 10 and 11: every numeric parameter of the cache decorator
// refuses what is out of its range, overflowing values included, with a
// message naming the parameter, the range and an example.
func TestParamsOutOfRange(t *testing.T) {
	for _, tc := range []struct {
		param string
		bad   []string
		good  string // the largest accepted value
	}{
		{"size", []string{"0", "-1", "1048577", "9223372036854775808", "1e3", "0x10"}, "1048576"},
		{"ttl", []string{"0", "-1m", "8761h", longest, "2562048h", "500us"}, "8760h"},
		{"jitter", []string{"-1s", "8761h", longest}, "2m30s"},
		{"refresh_ahead", []string{"0", "-0.5", "1.0001", "NaN", "Inf", "-Inf", "1e309"}, "1"},
		{"stale_grace", []string{"-1s", "8761h", longest, "2562048h"}, "8760h"},
		{"stale_wait", []string{"0", "-1ms", "11s", longest, "500us"}, "10s"},
		{"negative_ttl", []string{"-1s", "8761h", longest}, "8760h"},
	} {
		t.Run(tc.param, func(t *testing.T) {
			for _, v := range tc.bad {
				_, err := cache.ParseParams(url.Values{tc.param: {v}})
				if !errors.Is(err, secrets.ErrInvalidRef) {
					t.Errorf("%s=%s: %v, want ErrInvalidRef", tc.param, v, err)
					continue
				}
				// Names the parameter and its range, gives an example.
				if msg := err.Error(); !strings.Contains(msg, tc.param+" must be") || !(strings.Contains(msg, " to ") || strings.Contains(msg, " at most ")) || !strings.Contains(msg, "such as") {
					t.Errorf("%s=%s: the message does not give the parameter, its range and an example: %s", tc.param, v, msg)
				}
			}
			q := url.Values{tc.param: {tc.good}}
			if tc.param == "jitter" {
				q.Set("ttl", "5m")
			}
			if _, err := cache.ParseParams(q); err != nil {
				t.Errorf("%s=%s refused: %v", tc.param, tc.good, err)
			}
		})
	}
}

// Issue 10 item 11, the reproduction: stale_grace=2562047h used to be
// accepted and then overflowed the grace deadline, silently turning stale
// serving off. Now the parameter is refused, and the same duration given as
// an Option saturates instead of wrapping: stale values are still served.
func TestLongestStaleGraceStillServesStale(t *testing.T) {
	if _, err := cache.ParseParams(url.Values{"stale_grace": {longest}}); !errors.Is(err, secrets.ErrInvalidRef) {
		t.Errorf("stale_grace=%s accepted (%v): it overflows", longest, err)
	}
	grace, err := time.ParseDuration(longest)
	if err != nil {
		t.Fatal(err)
	}
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: time.Minute, Jitter: -1, StaleGrace: grace})
	mustResolve(t, c, ref, v)
	f.FailAll(unavailable(ref))
	clk.Advance(2 * time.Minute)
	s, err := c.Resolve(context.Background(), ref)
	if err != nil || s.Reveal() != v {
		t.Fatalf("StaleGrace %v: Resolve past the TTL = %v; want the stale value", grace, err)
	}
}

// The other lifetimes saturate too: the longest TTL and negative TTL keep
// values cached rather than wrapping into the past.
func TestLongestLifetimesDoNotWrap(t *testing.T) {
	d, _ := time.ParseDuration(longest)
	f := new(secretstest.Fake)
	v := "sk-ant-test-" + token()
	ref := f.Set("bot", v)
	clk := newClock()
	c := newCache(t, f, clk, cache.Options{TTL: d, NegativeTTL: d})
	mustResolve(t, c, ref, v)
	clk.Advance(24 * time.Hour)
	mustResolve(t, c, ref, v)
	if calls := f.Calls(ref); calls != 1 {
		t.Errorf("TTL %v: %d backend calls for two resolves a day apart, want 1", d, calls)
	}
	if _, err := c.Resolve(context.Background(), "missing"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatal(err)
	}
	clk.Advance(24 * time.Hour)
	c.Resolve(context.Background(), "missing")
	if calls := f.Calls("missing"); calls != 1 {
		t.Errorf("NegativeTTL %v: %d backend calls for a missing ref asked twice, want 1", d, calls)
	}
}

func TestParamsOutOfRangeMessage(t *testing.T) {
	_, err := cache.ParseParams(url.Values{"stale_grace": {longest}})
	want := `keyward: cache: open: invalid ref: stale_grace must be a Go duration from 0 to 8760h, such as 10m (0 for none); got "2562047h"`
	if fmt.Sprint(err) != want {
		t.Fatalf("ParseParams(stale_grace=%s) = %v\nwant %s", longest, err, want)
	}
}
