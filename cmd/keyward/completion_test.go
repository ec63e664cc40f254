package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompletion: keyward completion SHELL prints cobra's script for bash
// (which bash -n accepts), zsh, fish and powershell, each naming keyward.
func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, out, stderr := runInProcess(nil, "", "completion", shell)
		if code != exitOK || len(out) < 200 || !strings.Contains(out, "keyward") {
			t.Errorf("completion %s: exit %d, %d bytes\nstderr:\n%s", shell, code, len(out), stderr)
			continue
		}
		if shell != "bash" {
			continue
		}
		script := filepath.Join(t.TempDir(), "keyward.bash")
		if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		if msg, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n rejects the completion script: %v\n%s", err, msg)
		}
		if !strings.Contains(out, "__complete") {
			t.Errorf("the bash script does not ask keyward __complete for completions")
		}
	}
	// The script's questions are answered: keyward __complete lists the commands.
	code, out, _ := runInProcess(nil, "", "__complete", "")
	for _, c := range []string{"update", "delete", "version", "completion"} {
		if code != exitOK || !strings.Contains(out, c) {
			t.Errorf("keyward __complete does not offer %s:\n%s", c, out)
		}
	}
	code, _, stderr := runInProcess(nil, "", "completion", "tcsh")
	if code != exitUsage || !strings.Contains(stderr, "bash, zsh, fish or powershell") || strings.Contains(stderr, "tcsh") {
		t.Errorf("completion tcsh: exit %d\n%s", code, stderr)
	}
}
