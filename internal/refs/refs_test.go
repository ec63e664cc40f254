package refs

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, path, field, query string
	}{
		{"name", "name", "", ""},
		{"prod/anthropic#api_key", "prod/anthropic", "api_key", ""},
		{"arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC#k", "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbC", "k", ""},
		{"prod/key?stage=AWSPREVIOUS#api_key", "prod/key", "api_key", "stage=AWSPREVIOUS"},
		{"a%23b%3Fc%25d#f%23x", "a#b?c%d", "f#x", ""},
		{"ключ#поле", "ключ", "поле", ""},
	}
	for _, tt := range tests {
		r, err := Parse(tt.in, "stage", "version")
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if r.Path != tt.path || r.Field != tt.field || r.Query.Encode() != tt.query {
			t.Errorf("Parse(%q) = %+v", tt.in, r)
		}
	}
	for in, want := range map[string]string{
		"":                        "empty ref",
		"#f":                      "empty name",
		"n#":                      "empty #field",
		"n?x=1":                   `unknown option "x": this backend takes stage, version`,
		"n?stage=a&stage=b":       "more than once",
		"n%zz":                    "bad %-escape",
		"n\x01":                   "control character",
		"n%00":                    "control character",
		"n#%0a":                   "control character",
		"\xff":                    "not valid UTF-8",
		strings.Repeat("a", 3000): "longer than",
	} {
		_, err := Parse(in, "stage", "version")
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, want)
		}
	}
	if _, err := Parse("n?x=1"); err == nil || !strings.Contains(err.Error(), "takes no ?options") {
		t.Errorf("a backend without options: %v", err)
	}
}

func TestField(t *testing.T) {
	doc := []byte(`{"api_key":"sk-1","n":3,"o":{"a":1},"s":"with \"quotes\"","z":null,"t":true}`)
	// A null field is JSON text like any other non-string value, "null", as
	// the decoded-document path of the driver layer gives it (not "").
	for field, want := range map[string]string{"api_key": "sk-1", "n": "3", "o": `{"a":1}`, "s": `with "quotes"`, "z": "null", "t": "true"} {
		if got, err := Field(doc, field); err != nil || got != want {
			t.Errorf("Field(%q) = %q, %v; want %q", field, got, err, want)
		}
	}
	if _, err := Field(doc, "missing"); err != ErrNoField {
		t.Errorf("missing field: %v", err)
	}
	for _, bad := range []string{"sk-plain", "[1,2]", "null", `{"a":`, ""} {
		if _, err := Field([]byte(bad), "a"); err != ErrNotDocument {
			t.Errorf("Field(%q) = %v, want ErrNotDocument", bad, err)
		}
	}
}
