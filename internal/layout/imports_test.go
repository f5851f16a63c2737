// Package layout holds the tests that keep the shape of the code base: which package may
// import which.
package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/longhaul-dev/longhaul"

// floors places every product package on a floor; a package imports only packages on
// floors below its own. So the packages of floor 0 import nothing of ours, api and worker
// (one floor) never import each other, and nothing imports cmd.
var floors = map[string]int{
	"cmd/longhaul": 3,

	"api":       2,
	"worker":    2,
	"dashboard": 2,
	"frontend":  2,

	"live":    1,
	"limits":  1,
	"metrics": 1,
	"cli":     1,
	"webhook": 1,

	"auth":      0,
	"client":    0,
	"jobs":      0,
	"tasks":     0,
	"storage":   0,
	"origin":    0,
	"requestid": 0,
}

// testKits are the packages that help tests and tools run longhaul; product code never
// imports them.
var testKits = []string{"internal/devbin", "internal/redistest", "internal/livetest"}

type listed struct {
	ImportPath string
	Imports    []string
}

func TestImportsPointDown(t *testing.T) {
	pkgs := listModule(t)
	for _, p := range pkgs {
		name := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if isTooling(name) {
			continue
		}
		floor, ok := floors[name]
		if !ok {
			t.Errorf("package %s has no floor: add it to floors in %s", name, "internal/layout/imports_test.go")
			continue
		}
		for _, imp := range ours(p.Imports) {
			if kitFloor, isProduct := floors[imp]; isProduct && kitFloor >= floor {
				t.Errorf("%s (floor %d) imports %s (floor %d): imports must point down", name, floor, imp, kitFloor)
			}
			for _, kit := range testKits {
				if imp == kit {
					t.Errorf("%s imports the test kit %s", name, kit)
				}
			}
		}
	}
}

// isTooling reports whether a package is the tooling around the product (tests, kits,
// scripts), which may import any package.
func isTooling(name string) bool {
	for _, prefix := range []string{"internal/", "scripts", "deploy"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// ours keeps the imports of this module, without its path.
func ours(imports []string) []string {
	var out []string
	for _, imp := range imports {
		if rest, ok := strings.CutPrefix(imp, module+"/"); ok {
			out = append(out, rest)
		}
	}
	sort.Strings(out)
	return out
}

func listModule(t *testing.T) []listed {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); dec.More(); {
		var p listed
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("read go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < len(floors) {
		t.Fatalf("go list found %d packages, fewer than the %d product packages: %s", len(pkgs), len(floors),
			fmt.Sprint(pkgs))
	}
	return pkgs
}
