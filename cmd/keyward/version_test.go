package main

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion: keyward --version and keyward version print the same text:
// the module version ("(devel)" in a test binary, which has no VCS
// settings) and the Go version.
func TestVersion(t *testing.T) {
	code, flag, stderr := runInProcess(nil, "", "--version")
	if code != exitOK {
		t.Fatalf("--version: exit %d\n%s", code, stderr)
	}
	code, cmd, stderr := runInProcess(nil, "", "version")
	if code != exitOK {
		t.Fatalf("version: exit %d\n%s", code, stderr)
	}
	if flag != cmd {
		t.Errorf("--version and version differ:\n%s\n%s", flag, cmd)
	}
	want := "keyward (devel)\ngo " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if cmd != want {
		t.Errorf("version in a test binary:\n%q\nwant\n%q", cmd, want)
	}
}

// TestVersionText: the VCS settings go build stamps, when present.
func TestVersionText(t *testing.T) {
	info := &debug.BuildInfo{GoVersion: "go1.99.1", Main: debug.Module{Path: "github.com/keyward/secrets", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{{Key: "GOOS", Value: "linux"}, {Key: "vcs.revision", Value: "0123abcd"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}}
	want := "keyward v1.4.0\ncommit 0123abcd (modified)\ncommit time 2026-01-02T03:04:05Z\ngo go1.99.1 " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if got := versionText(info, true); got != want {
		t.Errorf("versionText:\n%q\nwant\n%q", got, want)
	}
	info.Settings = info.Settings[:3]
	if got := versionText(info, true); !strings.Contains(got, "commit 0123abcd\n") {
		t.Errorf("versionText of an unmodified tree:\n%s", got)
	}
	if got := versionText(nil, false); !strings.HasPrefix(got, "keyward (unknown: built without module information)\ngo ") {
		t.Errorf("versionText without build information:\n%s", got)
	}
}

// TestVersionOfABuild: a binary built from this checkout with VCS stamping
// says what go version -m says of it: its module version, and the revision
// when there is one.
func TestVersionOfABuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "keyward")
	if out, err := exec.Command("go", "build", "-buildvcs=auto", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	meta, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var modVersion, revision string
	sc := bufio.NewScanner(strings.NewReader(string(meta)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 3 && f[0] == "mod" && f[1] == "github.com/keyward/secrets":
			modVersion = f[2]
		case len(f) == 2 && f[0] == "build" && strings.HasPrefix(f[1], "vcs.revision="):
			revision = strings.TrimPrefix(f[1], "vcs.revision=")
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if !strings.HasPrefix(got, "keyward "+modVersion+"\n") || revision != "" && !strings.Contains(got, "\ncommit "+revision) {
		t.Errorf("keyward --version of a build:\n%s\ngo version -m says module %s, revision %q", got, modVersion, revision)
	}
	if cmd, _ := exec.Command(bin, "version").Output(); string(cmd) != got {
		t.Errorf("keyward version differs from --version:\n%s", cmd)
	}
}
