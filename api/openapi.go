package api

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/goccy/go-yaml"
)

// This file serves the API's OpenAPI document, docs/API.md for machines, and the page that
// renders it for people. The document is written by hand in YAML, where it can carry
// comments and be reviewed; clients and tools read it as JSON.

// Where the document and its page are served.
const (
	pathOpenAPI  = "/openapi.json"
	pathDocs     = "/docs"
	pathDocsFile = "/docs/*file"
)

//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is the document as /openapi.json serves it: the YAML's keys in their order.
func openAPIJSON() ([]byte, error) {
	doc, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		return nil, fmt.Errorf("read openapi.yaml: %w", err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, doc); err != nil {
		return nil, fmt.Errorf("openapi.yaml as JSON: %w", err)
	}
	return out.Bytes(), nil
}

// mustOpenAPIJSON is openAPIJSON for New: the document is built into the binary and its
// tests read it, so it cannot fail at run time but by a broken build.
func mustOpenAPIJSON() []byte {
	doc, err := openAPIJSON()
	if err != nil {
		panic(fmt.Sprintf("api: %v", err))
	}
	return doc
}

func handleOpenAPI(doc []byte) gin.HandlerFunc {
	return func(c *gin.Context) {
		// Revalidated on every use, so that a client never holds the document of an older
		// binary after an upgrade.
		c.Header("Cache-Control", "no-cache")
		c.Data(http.StatusOK, "application/json; charset=utf-8", doc)
	}
}

// serveDocs serves the page that renders the document: its index.html at /docs (and /docs/),
// and its scripts, styles and licence under /docs/.
func serveDocs(page fs.FS, log *slog.Logger) gin.HandlerFunc {
	files := http.FS(page)
	return func(c *gin.Context) {
		name := strings.TrimPrefix(c.Param("file"), "/")
		if name == "" || name == "index.html" {
			c.Header("Cache-Control", "no-cache")
			c.FileFromFS("/", files)
			return
		}
		if info, err := fs.Stat(page, name); err != nil || info.IsDir() {
			writeError(c, log, notFound("no such file of the documentation page: %s", name))
			return
		}
		c.FileFromFS("/"+name, files)
	}
}
