package cache

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	secrets "github.com/keyward/secrets"
)

func init() {
	secrets.RegisterDecorator("cache", decorate)
}

// knownParams are the decorator's configuration parameters, in the order the
// error message lists them.
var knownParams = []string{"size", "ttl", "jitter", "refresh_ahead", "stale_grace", "stale_wait", "negative_ttl"}

// decorate is the "cache" decorator: "cache = size=1000&ttl=5m".
func decorate(next secrets.KeyResolver, params url.Values) (secrets.KeyResolver, error) {
	if next == nil {
		return nil, paramError("the cache decorator needs a resolver to wrap")
	}
	opts, err := parseParams(params)
	if err != nil {
		return nil, err
	}
	return New(next, opts), nil
}

func paramError(reason string) error {
	return &secrets.Error{Op: "open", Backend: "cache", Code: secrets.CodeInvalidRef, Reason: reason}
}

// parseParams turns the decorator's parameters into Options. Unlike Options,
// where zero means a default, a zero jitter, stale_grace or negative_ttl here
// turns the feature off, and refresh_ahead=1 turns refresh-ahead off.
func parseParams(params url.Values) (*Options, error) {
	if err := secrets.CheckValues(params, "cache", knownParams...); err != nil {
		return nil, err
	}
	o := new(Options)
	if s, ok := params["size"]; ok {
		n, err := strconv.Atoi(s[0])
		if err != nil || n <= 0 || n > MaxSize {
			return nil, paramError(fmt.Sprintf("size must be a whole number from 1 to %d (there is no unbounded cache), got %q", MaxSize, s[0]))
		}
		o.Size = n
	}
	dur := func(name string, zeroOK bool, dst *time.Duration) error {
		s, ok := params[name]
		if !ok {
			return nil
		}
		d, err := time.ParseDuration(s[0])
		if err != nil || d < 0 || (d == 0 && !zeroOK) {
			want := "a positive Go duration such as 5m or 30s"
			if zeroOK {
				want = "a Go duration such as 5m or 30s, or 0 for none"
			}
			return paramError(fmt.Sprintf("%s must be %s, got %q", name, want, s[0]))
		}
		if d == 0 {
			d = -1 // Options' "off"
		}
		*dst = d
		return nil
	}
	if err := dur("ttl", false, &o.TTL); err != nil {
		return nil, err
	}
	if err := dur("jitter", true, &o.Jitter); err != nil {
		return nil, err
	}
	if err := dur("stale_grace", true, &o.StaleGrace); err != nil {
		return nil, err
	}
	if err := dur("stale_wait", false, &o.StaleWait); err != nil {
		return nil, err
	}
	if err := dur("negative_ttl", true, &o.NegativeTTL); err != nil {
		return nil, err
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if o.Jitter > ttl/2 {
		return nil, paramError(fmt.Sprintf("jitter must be at most half the ttl (%v), got %q", ttl, params["jitter"][0]))
	}
	if s, ok := params["refresh_ahead"]; ok {
		f, err := strconv.ParseFloat(s[0], 64)
		if err != nil || !(f > 0 && f <= 1) {
			return nil, paramError(fmt.Sprintf("refresh_ahead must be a fraction of the ttl above 0 and at most 1 (1 turns it off), got %q", s[0]))
		}
		o.RefreshAhead = f
	}
	return o, nil
}
