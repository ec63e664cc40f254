package bounds

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		result time.Duration
	}{
		{"0", true, 0}, {"10m", true, 10 * time.Minute}, {"8760h", true, 8760 * time.Hour},
		{"8760h0m0.000000001s", false, 0}, {"2562047h", false, 0}, {"2562048h", false, 0},
		{"-1s", false, 0}, {"5", false, 0}, {"", false, 0}, {"forever", false, 0},
	} {
		d, err := Duration("stale_grace", tc.in, 0, 8760*time.Hour, "10m (0 for none)")
		if (err == nil) != tc.ok || d != tc.result {
			t.Errorf("Duration(%q) = %v, %v; want %v, ok %v", tc.in, d, err, tc.result, tc.ok)
		}
		if err != nil {
			want := `stale_grace must be a Go duration from 0 to 8760h, such as 10m (0 for none); got "` + tc.in + `"`
			if err.Error() != want {
				t.Errorf("Duration(%q): %q, want %q", tc.in, err, want)
			}
		}
	}
}

func TestInt(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"1", true}, {"1048576", true}, {"0", false}, {"-1", false}, {"1048577", false},
		{"9223372036854775808", false}, {"1e3", false}, {" 5", false}, {"", false}} {
		n, err := Int("size", tc.in, 1, 1<<20, "1000")
		if (err == nil) != tc.ok {
			t.Errorf("Int(%q) = %d, %v; want ok %v", tc.in, n, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "size must be a whole number from 1 to 1048576, such as 1000; got ") {
			t.Errorf("Int(%q): %v", tc.in, err)
		}
	}
}

func TestFloat(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{{"1", true}, {"0.8", true}, {"1e-9", true}, {"0", false}, {"-0", false}, {"1.0001", false},
		{"NaN", false}, {"Inf", false}, {"-Inf", false}, {"1e309", false}, {"", false}} {
		f, err := Float("refresh_ahead", tc.in, 0, 1, "0.8")
		if (err == nil) != tc.ok {
			t.Errorf("Float(%q) = %v, %v; want ok %v", tc.in, f, err, tc.ok)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "refresh_ahead must be a number above 0 and at most 1, such as 0.8; got ") {
			t.Errorf("Float(%q): %v", tc.in, err)
		}
	}
}

func TestLongValuesAreCut(t *testing.T) {
	_, err := Int("size", strings.Repeat("9", 1000), 1, 10, "5")
	if len(err.Error()) > 200 {
		t.Fatalf("the message repeats the whole value: %d bytes", len(err.Error()))
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0", 8760 * time.Hour: "8760h", 90 * time.Minute: "1h30m", 10 * time.Second: "10s",
		500 * time.Millisecond: "500ms", time.Hour + time.Second: "1h0m1s", 2 * time.Minute: "2m",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSaturatingAdd(t *testing.T) {
	for _, tc := range [][3]int64{
		{1, 2, 3}, {math.MaxInt64 - 1, 5, math.MaxInt64}, {math.MaxInt64, math.MaxInt64, math.MaxInt64},
		{math.MinInt64 + 1, -5, math.MinInt64}, {-3, 1, -2}, {math.MaxInt64, -1, math.MaxInt64 - 1},
	} {
		if got := SaturatingAdd(tc[0], tc[1]); got != tc[2] {
			t.Errorf("SaturatingAdd(%d, %d) = %d, want %d", tc[0], tc[1], got, tc[2])
		}
	}
}

func FuzzDuration(f *testing.F) {
	for _, s := range []string{"10m", "2562047h", "-1s", "1.5h", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Duration("ttl", s, time.Millisecond, 8760*time.Hour, "5m")
		if err == nil && (d < time.Millisecond || d > 8760*time.Hour) {
			t.Fatalf("Duration(%q) accepted %v", s, d)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "ttl must be a Go duration from 1ms to 8760h, such as 5m; got ") {
			t.Fatalf("Duration(%q): %v", s, err)
		}
	})
}
