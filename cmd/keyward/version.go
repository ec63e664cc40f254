package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion is what keyward --version and keyward version print.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	return versionText(info, ok)
}

// versionText describes a build: the module version (a release tag for go
// install ...@v1.2.3, a pseudo-version for a build from a checkout with VCS
// stamping, "(devel)" for go run and tests), the commit and its time when
// go build stamped them, and the Go version and platform.
func versionText(info *debug.BuildInfo, ok bool) string {
	var b strings.Builder
	goVersion := runtime.Version()
	if !ok || info == nil {
		b.WriteString("keyward (unknown: built without module information)\n")
	} else {
		fmt.Fprintf(&b, "keyward %s\n", orDash(info.Main.Version))
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		var revision, when string
		modified := false
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				revision = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if revision != "" {
			fmt.Fprintf(&b, "commit %s", revision)
			if modified {
				b.WriteString(" (modified)")
			}
			b.WriteByte('\n')
		}
		if when != "" {
			fmt.Fprintf(&b, "commit time %s\n", when)
		}
	}
	fmt.Fprintf(&b, "go %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print keyward's version, commit and Go version",
		Long: `Print the version of this keyward binary (the module version: a release such
as v1.2.0 for go install ...@v1.2.0, a pseudo-version for a build from a
checkout, "(devel)" for go run), the commit and its time when the build
recorded them, and the Go version. keyward --version prints the same.`,
		Args: noArgs(""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(a.stdout, cmd.Root().Version)
			return err
		},
	}
}
