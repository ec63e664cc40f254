// Package bounds parses the numbers in keyward's configuration (URL
// parameters, configuration keys, ref options, environment variables) and
// refuses any outside the range its parameter accepts, so that no value can
// overflow into another meaning: a duration of 2562047h, the longest Go has,
// once wrapped a cache deadline into the past and silently turned stale
// serving off. One rule, written once: every error names the parameter, the
// range it accepts and a valid example, and quotes (a short prefix of) what
// it got.
package bounds

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration parses s, the value of the parameter name, as a Go duration
// (time.ParseDuration) and returns it if it lies in [lo, hi]. example is a
// valid value for the message, with any note on its meaning: "10m (0 for none)".
func Duration(name, s string, lo, hi time.Duration, example string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < lo || d > hi {
		return 0, refuse(name, "a Go duration from "+FormatDuration(lo)+" to "+FormatDuration(hi), example, s)
	}
	return d, nil
}

// Int parses s, the value of the parameter name, as a decimal whole number
// and returns it if it lies in [lo, hi].
func Int(name, s string, lo, hi int, example string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, refuse(name, fmt.Sprintf("a whole number from %d to %d", lo, hi), example, s)
	}
	return n, nil
}

// Float parses s, the value of the parameter name, as a decimal number and
// returns it if it lies above lo and at most hi. NaN and the infinities are
// never in range.
func Float(name, s string, lo, hi float64, example string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || !(f > lo && f <= hi) {
		return 0, refuse(name, "a number above "+strconv.FormatFloat(lo, 'g', -1, 64)+
			" and at most "+strconv.FormatFloat(hi, 'g', -1, 64), example, s)
	}
	return f, nil
}

// maxQuoted bounds how much of a refused value the message repeats.
const maxQuoted = 40

func refuse(name, want, example, got string) error {
	if len(got) > maxQuoted {
		got = strings.ToValidUTF8(got[:maxQuoted], "") + "..."
	}
	return errors.New(name + " must be " + want + ", such as " + example + "; got " + strconv.Quote(got))
}

// FormatDuration prints d as a person writes it: 8760h, 1h30m, 10s, 500ms, 0
// (time.Duration.String gives 8760h0m0s).
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	if s == "0s" {
		s = "0"
	}
	return s
}

// SaturatingAdd returns a+b, or the int64 bound it would cross: deadlines
// computed as now plus a configured duration must not wrap into the past.
func SaturatingAdd(a, b int64) int64 {
	switch {
	case b > 0 && a > math.MaxInt64-b:
		return math.MaxInt64
	case b < 0 && a < math.MinInt64-b:
		return math.MinInt64
	}
	return a + b
}
