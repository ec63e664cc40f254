package cache

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	secrets "github.com/keyward/secrets"
	"github.com/keyward/secrets/internal/bounds"
)

func init() {
	secrets.RegisterDecorator("cache", decorate)
}

// knownParams are the decorator's configuration parameters, in the order the
// error message lists them.
var knownParams = []string{"size", "ttl", "jitter", "refresh_ahead", "stale_grace", "stale_wait", "negative_ttl", "check", "prices"}

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

// Bounds of the decorator's parameters. Beyond a year no cache lifetime makes
// sense, and the longest Go duration (2562047h) added to the clock would wrap
// past the year 2262; a caller waits on a fetch at most as long as the fetch
// itself may take.
const (
	maxParamLifetime = 8760 * time.Hour
	minParamTTL      = time.Millisecond // the cache's clock resolution
	minParamWait     = time.Millisecond
	maxParamWait     = DefaultFetchTimeout
)

// parseParams turns the decorator's parameters into Options. Unlike Options,
// where zero means a default, a zero jitter, stale_grace or negative_ttl here
// turns the feature off, and refresh_ahead=1 turns refresh-ahead off. Every
// number is checked against its range (internal/bounds), so none can overflow.
func parseParams(params url.Values) (*Options, error) {
	if err := secrets.CheckValues(params, "cache", knownParams...); err != nil {
		return nil, err
	}
	o := new(Options)
	if s, ok := params["size"]; ok {
		n, err := bounds.Int("size", s[0], 1, MaxSize, "1000 (there is no unbounded cache)")
		if err != nil {
			return nil, paramError(err.Error())
		}
		o.Size = n
	}
	// off: 0 is allowed and turns the feature off (Options' negative).
	dur := func(name string, lo, hi time.Duration, example string, off bool, dst *time.Duration) error {
		s, ok := params[name]
		if !ok {
			return nil
		}
		d, err := bounds.Duration(name, s[0], lo, hi, example)
		if err != nil {
			return paramError(err.Error())
		}
		if d == 0 && off {
			d = -1 // Options' "off"
		}
		*dst = d
		return nil
	}
	for _, p := range []struct {
		name    string
		lo, hi  time.Duration
		example string
		off     bool
		dst     *time.Duration
	}{
		{"ttl", minParamTTL, maxParamLifetime, "5m", false, &o.TTL},
		{"jitter", 0, maxParamLifetime, "30s (at most ttl/2; 0 for none)", true, &o.Jitter},
		{"stale_grace", 0, maxParamLifetime, "10m (0 for none)", true, &o.StaleGrace},
		{"stale_wait", minParamWait, maxParamWait, "500ms", false, &o.StaleWait},
		{"negative_ttl", 0, maxParamLifetime, "5s (0 for none)", true, &o.NegativeTTL},
		{"check", 0, maxParamLifetime, "5m (0 for none)", true, &o.CheckInterval},
	} {
		if err := dur(p.name, p.lo, p.hi, p.example, p.off, p.dst); err != nil {
			return nil, err
		}
	}
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if o.Jitter > ttl/2 {
		return nil, paramError(fmt.Sprintf("jitter must be a Go duration from 0 to half the ttl (%s), such as %s; got %q",
			bounds.FormatDuration(ttl/2), bounds.FormatDuration(ttl/10), params["jitter"][0]))
	}
	if s, ok := params["refresh_ahead"]; ok {
		f, err := bounds.Float("refresh_ahead", s[0], 0, 1, "0.8 (the fraction of the ttl after which a hit refreshes; 1 for none)")
		if err != nil {
			return nil, paramError(err.Error())
		}
		o.RefreshAhead = f
	}
	if s, ok := params["prices"]; ok {
		p, err := parsePrices(s[0])
		if err != nil {
			return nil, err
		}
		o.Prices = p
	}
	return o, nil
}

// pricesForm is the form of the prices parameter, for its error messages.
const pricesForm = "a comma-separated list of scheme:price, the price in US dollars per 10,000 calls, such as awssm:0.05,azurekv:0.03"

// parsePrices reads "awssm:0.05,azurekv:0.03" over DefaultPrices: a scheme it
// names gets its price (0 makes it free), the others keep their default.
func parsePrices(s string) (map[string]float64, error) {
	p := DefaultPrices()
	seen := map[string]bool{}
	for _, item := range strings.Split(s, ",") {
		scheme, price, ok := strings.Cut(strings.TrimSpace(item), ":")
		f, err := strconv.ParseFloat(price, 64)
		if !ok || scheme == "" || err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return nil, paramError(fmt.Sprintf("prices must be %s (a price is a number of 0 or more); got the entry %s", pricesForm, quoteBounded(item)))
		}
		if seen[scheme] {
			return nil, paramError(fmt.Sprintf("prices names the scheme %s twice: give each scheme one price", quoteBounded(scheme)))
		}
		seen[scheme] = true
		p[scheme] = f
	}
	return p, nil
}

// quoteBounded quotes s, cut to 40 bytes: a message repeats little of a
// mistaken value.
func quoteBounded(s string) string {
	if len(s) > 40 {
		return strconv.Quote(strings.ToValidUTF8(s[:40], "")) + "..."
	}
	return strconv.Quote(s)
}
