package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
)

// The profiling build adds this file to cmd/longhaul through `go build -overlay`, so that
// the processes measured are the real binary, wiring and all, with net/http/pprof on a
// loopback port of their own. The tree is not touched, and the binary of record has no
// such file.
const (
	pprofEnv    = "LONGHAUL_BENCH_PPROF"
	pprofBanner = "longhaul-bench pprof on "
	pprofSource = `package main

import (
	_ "expvar"
	"fmt"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

// Added by the benchmark's profiling build only (scripts/bench/build.go).
func init() {
	addr := os.Getenv("` + pprofEnv + `")
	if addr == "" {
		return
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		panic(err)
	}
	runtime.SetMutexProfileFraction(100)
	runtime.SetBlockProfileRate(100000)
	fmt.Printf("` + pprofBanner + `http://%s\n", l.Addr())
	go http.Serve(l, nil)
}
`
)

// build compiles ./cmd/longhaul into b.bin; with -profile it adds the pprof endpoint, and
// with -overlay the caller's replacement files.
func (b *bench) build(ctx context.Context) error {
	var flags []string
	overlay := map[string]string{}
	if b.opts.Overlay != "" {
		var o struct{ Replace map[string]string }
		data, err := os.ReadFile(b.opts.Overlay)
		if err == nil {
			err = json.Unmarshal(data, &o)
		}
		if err != nil {
			return fmt.Errorf("read overlay %s: %w", b.opts.Overlay, err)
		}
		for k, v := range o.Replace {
			overlay[k] = v
		}
	}
	if b.profiling() {
		src := filepath.Join(b.work, "zz_bench_pprof.go")
		if err := os.WriteFile(src, []byte(pprofSource), 0o644); err != nil {
			return err
		}
		overlay[filepath.Join(b.root, "cmd", "longhaul", "zz_bench_pprof.go")] = src
	}
	if len(overlay) > 0 {
		data, _ := json.Marshal(map[string]any{"Replace": overlay})
		path := filepath.Join(b.work, "overlay.json")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		flags = append(flags, "-overlay", path)
	}
	return devbin.Build(ctx, b.root, b.bin, flags...)
}

// profile saves one pprof profile of a longhaul process, with `go tool pprof -top` beside
// it. kind is a /debug/pprof/ path like "profile?seconds=5" or "heap?gc=1".
func (b *bench) profile(ctx context.Context, lh *longhaul, kind, name string) error {
	if lh == nil || lh.Pprof == "" {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, lh.Pprof+"/debug/pprof/"+kind, nil)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", name, err)
	}
	defer resp.Body.Close()
	path := filepath.Join(b.opts.Profile, name)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if strings.HasPrefix(kind, "goroutine?debug") || strings.HasPrefix(kind, "../vars") || strings.HasPrefix(kind, "trace") {
		return nil
	}
	sample := []string{}
	if strings.HasPrefix(kind, "heap") {
		sample = []string{"-sample_index=inuse_space"}
	}
	top, err := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof", "-top", "-nodecount=45"}, sample...), b.bin, path)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go tool pprof %s: %w\n%s", path, err, top)
	}
	return os.WriteFile(path+".top.txt", top, 0o644)
}

// profileDuring takes a CPU profile of lh for d in the background; wait returns its error.
func (b *bench) profileDuring(ctx context.Context, lh *longhaul, d time.Duration, name string) (wait func() error) {
	if !b.profiling() || lh == nil {
		return func() error { return nil }
	}
	done := make(chan error, 1)
	go func() {
		done <- b.profile(ctx, lh, fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds()))), name)
	}()
	return func() error { return <-done }
}
