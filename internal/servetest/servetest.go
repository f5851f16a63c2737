// Package servetest runs `longhaul serve` as real processes, on free loopback ports with
// their embedded Redis, for the tests of the client and the command line, whose TestMain
// shares a few servers between all their tests. It is a thin layer over the process kit
// (internal/devbin) for a TestMain, which has no testing.T.
package servetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// FastFiles are settings that make the simulated files quick and small: 200-600 ms to
// prepare, at most 64 KiB.
func FastFiles() []string {
	return []string{
		"LONGHAUL_FILE_TIME_MIN=200ms",
		"LONGHAUL_FILE_TIME_MAX=600ms",
		"LONGHAUL_FILE_SIZE_MAX=64KiB",
	}
}

// Main is the body of a TestMain whose tests need longhaul servers: it builds the binary,
// starts one server for each list of settings (NAME=value, each server with its own
// directory), hands the binary and the servers' URLs to setup, runs the tests, and stops
// the servers. It returns the exit code for os.Exit.
func Main(m interface{ Run() int }, setup func(bin string, urls []string), settings ...[]string) int {
	dir, err := os.MkdirTemp("", "longhaul-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := build(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var urls []string
	for i, s := range settings {
		srv, err := start(bin, filepath.Join(dir, fmt.Sprint(i)), s)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() {
			if err := srv.Stop(20 * time.Second); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
		urls = append(urls, srv.URL)
	}
	setup(bin, urls)
	return m.Run()
}

func build(dir string) (string, error) {
	root, err := devbin.ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "longhaul")
	return bin, devbin.Build(context.Background(), root, bin)
}

// start runs bin serve with its files in dir and the given settings, with the defaults of
// `make run` otherwise (the embedded Redis, no keys), and returns once it answers /healthz.
func start(bin, dir string, settings []string) (*devbin.Longhaul, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	env := map[string]string{
		"LONGHAUL_STORAGE_DIR":      filepath.Join(dir, "files"),
		"LONGHAUL_SHUTDOWN_TIMEOUT": "5s",
	}
	for _, kv := range settings {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return devbin.StartLonghaul(context.Background(), devbin.LonghaulSpec{Bin: bin, Mode: "serve",
		Settings: env, Log: filepath.Join(dir, "longhaul.log")})
}
