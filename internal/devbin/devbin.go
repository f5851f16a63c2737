// Package devbin builds the longhaul binary and picks free loopback ports, for the tests
// and tools that run longhaul as real processes: the proxy tests, the script tests, the
// chaos run and the benchmark.
package devbin

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ModuleRoot is the directory of the longhaul module around the working directory.
func ModuleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the longhaul module: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("run inside the longhaul module: go env GOMOD names no go.mod")
	}
	root := filepath.Dir(mod)
	if _, err := os.Stat(filepath.Join(root, "cmd", "longhaul")); err != nil {
		return "", fmt.Errorf("run inside the longhaul module: no cmd/longhaul in %s", root)
	}
	return root, nil
}

// Build compiles ./cmd/longhaul of the module at root into the file out, with extra go
// build flags (such as -race, or -overlay FILE).
func Build(ctx context.Context, root, out string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), "./cmd/longhaul")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/longhaul: %w\n%s", err, msg)
	}
	return nil
}

// FreePort returns a TCP port of 127.0.0.1 that nothing listened on a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
