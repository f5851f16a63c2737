package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// version and commit are set when the binary is built, by the Makefile:
//
//	go build -ldflags "-X github.com/longhaul-dev/longhaul/cli.version=v1.2.0 -X github.com/longhaul-dev/longhaul/cli.commit=$(git rev-parse HEAD)"
//
// They are the one exception to having no package-level variables: the linker can only
// set variables. Nothing assigns them at run time.
var (
	version string
	commit  string
)

// built is what the binary says about its own build.
type built struct {
	version, commit, goVersion string
}

// buildVersion is the version and commit set at build time, or else what Go recorded in
// the binary (a module version for `go install`, the VCS revision where stamping is on).
func buildVersion() built {
	b := built{version: version, commit: commit, goVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		if b.version == "" && info.Main.Version != "" {
			b.version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && b.commit == "" {
				b.commit = s.Value
			}
			if s.Key == "vcs.modified" && s.Value == "true" && b.commit != "" && commit == "" {
				b.commit += "-dirty"
			}
		}
	}
	if b.version == "" {
		b.version = "(devel)"
	}
	if b.commit == "" {
		b.commit = "unknown"
	}
	return b
}

const versionHelp = `Usage: longhaul version [--json]

Prints longhaul's version and the commit it was built from (make build sets both).

Example:
  longhaul version
`

func runVersion(_ context.Context, inv *invocation, args []string) int {
	fs := inv.flags("version")
	rest, code := inv.parse(fs, args, versionHelp)
	if code >= 0 {
		return code
	}
	if len(rest) > 0 {
		return inv.usageError("takes no arguments, got %q", rest)
	}
	b := buildVersion()
	if inv.jsonAsked { // plain text even through a pipe, unless asked
		writeJSON(inv.stdout, map[string]string{"version": b.version, "commit": b.commit, "go": b.goVersion})
		return ExitOK
	}
	fmt.Fprintf(inv.stdout, "longhaul %s (commit %s, %s)\n", b.version, b.commit, b.goVersion)
	return ExitOK
}
