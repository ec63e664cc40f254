package main

import (
	"os/exec"
	"strings"
	"testing"
)

// Issue 14, done when: the curl lines the zero-config start prints, run as
// printed by a shell with the printed export line, answer 2xx.
func TestPrintedCurlLinesAnswer2xx(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: apt-get install curl")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	s := start(t, map[string]string{"CHAT_RATE": "1000", "CHAT_BURST": "1000"})
	var export string
	var curls []string
	for _, line := range strings.Split(s.stdout.String(), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "export CHAT_TOKEN="):
			export = line
		case strings.HasPrefix(line, "curl "):
			cmd, _, _ := strings.Cut(line, "   #") // the comment after the command
			cmd, _, _ = strings.Cut(cmd, " | ")    // the grep after the metrics line
			curls = append(curls, cmd)
		}
	}
	if export == "" || len(curls) < 3 {
		t.Fatalf("the start printed no export line or fewer than 3 curl lines:\n%s", s.stdout)
	}
	for _, c := range curls {
		// -w prints the status after the body; -f is not used, so the
		// body of a failure is visible in the message.
		out, err := exec.Command("sh", "-c", export+"; "+strings.Replace(c, "curl -s", "curl -s -o /dev/null -w '%{http_code}'", 1)).CombinedOutput()
		code := strings.TrimSpace(string(out))
		if err != nil || len(code) != 3 || code[0] != '2' {
			t.Errorf("%s\nanswered %q (%v), want 2xx", c, code, err)
		}
	}
}
