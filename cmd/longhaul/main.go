// Command longhaul runs longhaul: the API, the worker, or both with the dashboard.
//
//	longhaul serve    API, worker and dashboard in one process (embedded Redis without REDIS_URL)
//	longhaul api      the HTTP API, live channels, UI and dashboard
//	longhaul worker   the job worker
//
// and, as a client of a running server, get, status, watch, cancel and version (package
// cli). Settings come from the environment; see the README.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/longhaul-dev/longhaul/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) > 1 && cli.Handles(os.Args[1]) {
		os.Exit(cli.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	ownsProcessLog = true
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "longhaul: %v\n", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
