package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestAuditDBNotLinked: audit = db without package audittable linked says
// which import to add. (This package's tests link it through all, so the
// registration is set aside for the test.)
func TestAuditDBNotLinked(t *testing.T) {
	auditTables.mu.Lock()
	saved := auditTables.m
	auditTables.m = nil
	auditTables.mu.Unlock()
	t.Cleanup(func() {
		auditTables.mu.Lock()
		auditTables.m = saved
		auditTables.mu.Unlock()
	})
	cfg, err := ParseConfig("env = env://\naudit = db")
	if err != nil {
		t.Fatal(err)
	}
	_, err = OpenConfig(context.Background(), cfg, nil)
	if !errors.Is(err, ErrUnknownScheme) || !strings.Contains(err.Error(), `import _ "github.com/keyward/secrets/audittable"`) {
		t.Fatalf("OpenConfig: %v; want ErrUnknownScheme naming the import", err)
	}
}
