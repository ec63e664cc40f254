package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// decodeOne decodes stdout as exactly one JSON document into v.
func decodeOne(t *testing.T, r result, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the JSON document expected: %v\n%s", err, r)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout holds more than one JSON document: %s", r)
	}
}

type listDoc struct {
	Rows []struct {
		ID         string     `json:"id"`
		Name       string     `json:"name"`
		Provider   string     `json:"provider"`
		State      string     `json:"state"`
		Encryption string     `json:"encryption"`
		Key        *string    `json:"key"`
		Ref        *string    `json:"ref"`
		ExpiresAt  *time.Time `json:"expires_at"`
		CreatedAt  *time.Time `json:"created_at"`
	} `json:"rows"`
	Error string `json:"error"`
}

type checkDoc struct {
	Findings []struct {
		Row       string     `json:"row"`
		Name      string     `json:"name"`
		Provider  string     `json:"provider"`
		Backend   string     `json:"backend"`
		Problem   string     `json:"problem"`
		Hint      string     `json:"hint"`
		Key       string     `json:"key"`
		ExpiresAt *time.Time `json:"expires_at"`
		Error     string     `json:"error"`
	} `json:"findings"`
	Rows         int            `json:"rows"`
	FindingCount int            `json:"finding_count"`
	Unreachable  int            `json:"unreachable"`
	OK           bool           `json:"ok"`
	Counts       map[string]int `json:"counts"`
	Backends     []string       `json:"backends"`
}

type walkDoc struct {
	Report struct {
		Scanned          int      `json:"scanned"`
		Done             int      `json:"done"`
		Skipped          int      `json:"skipped"`
		Undecryptable    int      `json:"undecryptable"`
		AlreadyCurrent   int      `json:"already_current"`
		Plaintext        int      `json:"plaintext"`
		References       int      `json:"references"`
		Null             int      `json:"null"`
		DryRun           bool     `json:"dry_run"`
		Position         string   `json:"position"`
		UndecryptableIDs []string `json:"undecryptable_ids"`
	} `json:"report"`
	Left *struct {
		Rows          int `json:"rows"`
		Plaintext     int `json:"plaintext"`
		OldKey        int `json:"encrypted_old_key"`
		Undecryptable int `json:"undecryptable"`
		References    int `json:"references"`
		Empty         int `json:"empty"`
	} `json:"left"`
	Done  bool   `json:"done"`
	Error string `json:"error"`
}

// TestJSONOutput: -o json (and --output json) on list, check, migrate and
// rotate prints one JSON document on stdout, with the fields documented
// and no value (the harness searches every run's stdout and stderr for
// the rows' values and the keys); prose goes to stderr; exit codes are
// those of text. On the old code -o was an unknown flag.
func TestJSONOutput(t *testing.T) {
	p := newPyKeys(t)
	h := p.h

	// list: every row, with its metadata only.
	r := h.must(0, nil, "", "list", "-o", "json")
	var l listDoc
	decodeOne(t, r, &l)
	if r.stderr != "" || l.Error != "" || len(l.Rows) != 8 {
		t.Fatalf("list -o json: want 8 rows and nothing on stderr: %s", r)
	}
	byID := map[string]int{}
	for i, row := range l.Rows {
		byID[row.ID] = i
	}
	env, token, expired, empty := l.Rows[byID[p.envRef]], l.Rows[byID[p.token]], l.Rows[byID[p.expired]], l.Rows[byID[p.empty]]
	if env.State != "reference" || env.Encryption != "reference" || env.Ref == nil || *env.Ref != "env:ANTHROPIC_API_KEY_1" || env.Key != nil || env.Provider != "anthropic" {
		t.Errorf("list -o json: the env reference row is %+v", env)
	}
	if token.State != "encrypted" || token.Key == nil || *token.Key != "primary" || token.Ref != nil || token.Name != "given" || token.CreatedAt == nil || token.ExpiresAt != nil {
		t.Errorf("list -o json: the token row is %+v", token)
	}
	if expired.State != "expired" || expired.Encryption != "encrypted" || expired.ExpiresAt == nil || !expired.ExpiresAt.Equal(time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("list -o json: the expired row is %+v", expired)
	}
	if empty.State != "empty" || empty.Key != nil || empty.Ref != nil {
		t.Errorf("list -o json: the empty row is %+v", empty)
	}
	// The filters apply; an empty result is an empty array, not null.
	r = h.must(0, nil, "", "list", "--output", "json", "--state", "reference")
	decodeOne(t, r, &l)
	if len(l.Rows) != 2 || l.Rows[0].ID != p.envRef || l.Rows[1].ID != p.awsRef {
		t.Errorf("list --output json --state reference: %s", r)
	}
	r = h.must(0, nil, "", "list", "-o", "json", "--state", "undecryptable")
	if r.stdout != `{"rows":[]}`+"\n" {
		t.Errorf("list -o json of no rows: %q", r.stdout)
	}
	// -o text is the default; anything else is a usage error.
	if a, b := h.must(0, nil, "", "list").stdout, h.must(0, nil, "", "list", "-o", "text").stdout; a != b {
		t.Errorf("list -o text differs from list:\n%s\n%s", a, b)
	}
	for _, cmd := range []string{"list", "check", "migrate", "rotate"} {
		r := h.run(nil, "", cmd, "-o", "yaml")
		if r.code != exitUsage || !strings.Contains(r.stderr, "-o/--output takes text or json") || r.stdout != "" {
			t.Errorf("%s -o yaml: %s", cmd, r)
		}
	}
	// An error before any row: no document, the error on stderr.
	for _, args := range [][]string{{"list", "-o", "json"}, {"list"}, {"migrate", "-o", "json"}, {"check", "-o", "json"}, {"migrate"}, {"rotate"}, {"rotate", "-o", "json"}} {
		r = h.must(exitConfig, nil, "", append(args, "--table", "nosuch")...)
		if r.stdout != "" || strings.Contains(r.stderr, "rows scanned") {
			t.Errorf("%v of a missing table printed a document, a header or a report: %s", args, r)
		}
	}

	// check: a finding per row to fix, none for reference rows.
	r = h.must(exitFindings, nil, "", "check", "-o", "json")
	var c checkDoc
	decodeOne(t, r, &c)
	if c.Rows != 8 || c.OK || c.FindingCount != 4 || len(c.Findings) != 4 || c.Unreachable != 0 ||
		c.Counts["reference"] != 2 || c.Counts["plaintext"] != 2 || c.Counts["empty"] != 1 || c.Counts["expired"] != 1 ||
		!slices.Equal(c.Backends, []string{"db"}) {
		t.Errorf("check -o json: %+v", c)
	}
	problems := map[string]string{}
	for _, f := range c.Findings {
		problems[f.Row] = f.Problem
		switch f.Problem {
		case "plaintext":
			if f.Hint != "run keyward migrate" || f.Provider != "openai" {
				t.Errorf("check -o json: plaintext finding %+v", f)
			}
		case "empty":
			if !strings.Contains(f.Hint, "keyward update "+p.empty) || !strings.Contains(f.Hint, "key_env_var") {
				t.Errorf("check -o json: empty finding %+v", f)
			}
		case "expired":
			if f.ExpiresAt == nil || f.Row != p.expired {
				t.Errorf("check -o json: expired finding %+v", f)
			}
		}
	}
	if want := map[string]string{p.plain1: "plaintext", p.plain2: "plaintext", p.empty: "empty", p.expired: "expired"}; !sameMap(problems, want) {
		t.Errorf("check -o json findings = %v, want %v", problems, want)
	}
	if !strings.Contains(r.stderr, "check: 4 findings in 8 rows") {
		t.Errorf("check -o json: no summary on stderr: %s", r)
	}

	// migrate: the report, what is left, the verdict.
	r = h.must(0, nil, "", "migrate", "-o", "json", "--batch", "3")
	var w walkDoc
	decodeOne(t, r, &w)
	if w.Report.Scanned != 8 || w.Report.Done != 2 || w.Report.AlreadyCurrent != 3 || w.Report.References != 2 || w.Report.Null != 1 ||
		w.Report.DryRun || w.Report.Position == "" || w.Report.UndecryptableIDs == nil ||
		w.Left == nil || w.Left.Rows != 8 || w.Left.Plaintext != 0 || w.Left.References != 2 || w.Left.Empty != 1 || !w.Done || w.Error != "" {
		t.Errorf("migrate -o json: %+v\n%s", w, r)
	}
	if !strings.Contains(r.stderr, "migrate: 8 rows scanned, 2 rewritten") || !strings.Contains(r.stderr, "migrate: done:") {
		t.Errorf("migrate -o json: no report on stderr: %s", r)
	}
	// rotate under a new key: done; then under a key that opens nothing: not done, exit 1.
	key2 := h.genkey()
	k2 := map[string]string{"ENCRYPTION_KEY": key2, "ENCRYPTION_KEY_PREVIOUS": p.key}
	r = h.must(exitFindings, k2, "", "rotate", "--output", "json", "--dry-run")
	w = walkDoc{}
	decodeOne(t, r, &w)
	if !w.Report.DryRun || w.Report.Done != 5 || w.Left.OldKey != 5 || w.Done {
		t.Errorf("rotate --dry-run -o json: %+v", w)
	}
	r = h.must(0, k2, "", "rotate", "--output", "json")
	w = walkDoc{}
	decodeOne(t, r, &w)
	if w.Report.Done != 5 || w.Left.OldKey != 0 || !w.Done {
		t.Errorf("rotate -o json: %+v", w)
	}
	k3 := map[string]string{"ENCRYPTION_KEY": h.genkey()}
	r = h.must(exitFindings, k3, "", "rotate", "-o", "json")
	w = walkDoc{}
	decodeOne(t, r, &w)
	if w.Report.Undecryptable != 5 || len(w.Report.UndecryptableIDs) != 5 || w.Left.Undecryptable != 5 || w.Done {
		t.Errorf("rotate -o json under a key that opens nothing: %+v", w)
	}

	// check with a backend down: a backend finding, exit 4.
	cfg := filepath.Join(h.dir, "keyward.conf")
	if err := os.WriteFile(cfg, []byte(refConfig+"\nvault = vault://?mount=secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := map[string]string{"ENCRYPTION_KEY": key2, "KEYWARD_CONFIG": "", "KEYWARD_CONFIG_FILE": cfg,
		"VAULT_ADDR": "http://127.0.0.1:1", "VAULT_TOKEN": "test-token-not-real"}
	r = h.must(exitUnavailable, down, "", "check", "-o", "json")
	c = checkDoc{}
	decodeOne(t, r, &c)
	if len(c.Findings) == 0 || c.Findings[0].Backend != "vault" || c.Findings[0].Problem != "unreachable" || c.Findings[0].Error == "" ||
		c.Unreachable != 1 || c.OK || !slices.Equal(c.Backends, []string{"db", "vault"}) {
		t.Errorf("check -o json with vault down: %+v", c)
	}
	if bytes.Contains([]byte(r.stdout+r.stderr), []byte("test-token-not-real")) {
		t.Error("check -o json printed the Vault token")
	}
}

// TestJSONInterrupted: migrate -o json stopped by SIGINT still prints one
// document: the report so far (its position to resume from), done false
// and the error; exit 130 as in text.
func TestJSONInterrupted(t *testing.T) {
	h := newHarness(t)
	key := h.genkey()
	dbURL := "sqlite:" + filepath.Join(h.dir, "int.db")
	h.must(0, map[string]string{"ENCRYPTION_KEY": key}, "", "--db", dbURL, "init")
	db := openTestDB(t, dbURL)
	if _, err := db.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000)
		INSERT INTO api_keys (name, provider, api_key) SELECT 'bot-' || x, 'openai', 'sk-legacy-test-' || x FROM c`); err != nil {
		t.Fatal(err)
	}
	r, err := h.interruptMigrate(key, "migrate", "--batch", "1", "-o", "json", "--db", dbURL)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("want exit %d after SIGINT, got %v: %s", exitInterrupted, err, r)
	}
	var w walkDoc
	decodeOne(t, r, &w)
	if w.Done || w.Left != nil || !strings.Contains(w.Error, "interrupted") || w.Report.Scanned < 10 || w.Report.Position == "" {
		t.Errorf("migrate -o json interrupted: %+v", w)
	}
}
