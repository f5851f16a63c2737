// Package frontend embeds the browser UI built by Vite, and the page that renders the API's
// OpenAPI document.
//
// Vite writes its build to dist/app (see vite.config.ts), and scripts/build-docs.mjs the
// documentation page to dist/docs: Swagger UI from the npm package pinned in package.json,
// with the page in docs/. The folder dist itself is kept in the repository by placeholders,
// so that go build and go test work on a machine without Node: the binary then serves short
// pages that say how to build the UI and the documentation page.
package frontend

import (
	"embed"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// Files returns the built UI and true, or a page that explains how to build it and false
// when the build is missing.
func Files() (fs.FS, bool) { return built("dist/app", "dist/missing") }

// Docs returns the documentation page and true, or a page that explains how to build it and
// false when the build is missing.
func Docs() (fs.FS, bool) { return built("dist/docs", "dist/docs-missing") }

// built is the build in dir, with index.html at its root, or the placeholder in missing.
func built(dir, missing string) (fs.FS, bool) {
	files, err := fs.Sub(dist, dir)
	if err == nil {
		if _, err := fs.Stat(files, "index.html"); err == nil {
			return files, true
		}
	}
	placeholder, _ := fs.Sub(dist, missing)
	return placeholder, false
}
