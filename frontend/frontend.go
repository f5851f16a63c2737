// Package frontend embeds the browser UI built by Vite.
//
// Vite writes its build to dist/app (see vite.config.ts). The folder dist itself is kept in
// the repository by a placeholder, so that go build and go test work on a machine without
// Node: the binary then serves a short page that says how to build the UI.
package frontend

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built UI and true, or a page that explains how to build it and false
// when the build is missing.
func Files() (fs.FS, bool) {
	app, err := fs.Sub(dist, "dist/app")
	if err == nil {
		if _, err := fs.Stat(app, "index.html"); err == nil {
			return app, true
		}
	}
	missing, _ := fs.Sub(dist, "dist/missing")
	return missing, false
}
