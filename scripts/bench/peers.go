package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/longhaul-dev/longhaul/internal/devbin"
	"github.com/longhaul-dev/longhaul/jobs"
	"github.com/redis/go-redis/v9"
)

// The servers the benchmark measures, as the report names them. The peers print these
// names in their listening lines.
const (
	keyLonghaul = "longhaul"
	keyGin      = "gin-peer"
	keyNode     = "node-peer"
)

// serverTitle is how the report calls a server.
func serverTitle(key string) string {
	switch key {
	case keyGin:
		return "Gin + asynq"
	case keyNode:
		return "Node + BullMQ"
	}
	return key
}

// server is one HTTP server the benchmark measures: a longhaul API or a peer.
type server struct {
	// Key names it: keyLonghaul, keyGin or keyNode.
	Key  string
	URL  string
	proc *devbin.Process
	// lh is set when the server is longhaul, so that it can be profiled.
	lh *longhaul
}

// server is the longhaul API as one of the servers measured.
func (l *longhaul) server() *server {
	return &server{Key: keyLonghaul, URL: l.URL, proc: l.Process, lh: l}
}

// peersDir is where the peers live in the repository (see peers/README.md).
func (b *bench) peersDir() string { return filepath.Join(b.root, "scripts", "bench", "peers") }

// preparePeers builds the Gin peer and installs the Node peer's packages with its own
// script (npm ci from the registry, nothing when they are installed already). The quick run
// installs nothing: it measures the Node peer only where its packages are there already.
func (b *bench) preparePeers(ctx context.Context) error {
	if !b.selected("initiate") && !b.selected("status") && !b.selected("fanout") {
		return nil // no stage of this run measures them
	}
	b.ginBin = filepath.Join(b.work, "gin-peer")
	b.logf("building %s", b.ginBin)
	build := exec.CommandContext(ctx, "go", "build", "-o", b.ginBin, "./bench/peers/gin")
	build.Dir = filepath.Join(b.root, "scripts")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the Gin peer: %w\n%s", err, out)
	}
	dir := filepath.Join(b.peersDir(), "node")
	if b.opts.Quick {
		b.nodeOK = nodeInstalled(dir)
		if !b.nodeOK {
			b.logf("the Node peer is not installed (scripts/bench/peers/node/install.sh): the quick run leaves it out")
		}
		return nil
	}
	b.logf("installing the Node peer (%s)", filepath.Join(dir, "install.sh"))
	install := exec.CommandContext(ctx, filepath.Join(dir, "install.sh"))
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("install the Node peer: %w\n%s", err, out)
	}
	b.nodeOK = true
	return nil
}

// nodeInstalled reports whether the Node peer's packages are installed from its current
// lock, as install.sh decides it: npm ci leaves node_modules/.package-lock.json behind,
// newer than package-lock.json.
func nodeInstalled(dir string) bool {
	marker, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err != nil {
		return false
	}
	lock, err := os.Stat(filepath.Join(dir, "package-lock.json"))
	return err == nil && marker.ModTime().After(lock.ModTime())
}

// peers starts the peers of this run on the stage's Redis: the Gin peer, and the Node peer
// where it is installed.
func (s *rig) peers(ctx context.Context) ([]*server, error) {
	gin, err := s.startPeer(ctx, keyGin, []string{s.b.ginBin})
	if err != nil {
		return nil, err
	}
	if !s.b.nodeOK {
		return []*server{gin}, nil
	}
	node, err := s.nodePeer(ctx)
	if err != nil {
		return nil, err
	}
	return []*server{gin, node}, nil
}

// nodePeer starts the Node peer on the stage's Redis.
func (s *rig) nodePeer(ctx context.Context) (*server, error) {
	return s.startPeer(ctx, keyNode, []string{"node", filepath.Join(s.b.peersDir(), "node", "server.js")})
}

// startPeer runs a peer on a free loopback port with the stage's Redis, and waits until it
// prints its listening line and answers /healthz.
func (s *rig) startPeer(ctx context.Context, name string, args []string) (*server, error) {
	onLine, urls := firstURL(func(line string) (string, bool) { return devbin.ServerURL(name, line) })
	p, err := s.start(devbin.Spec{Name: name, Args: args, Env: peerEnv(s.redis.URL()),
		Log: filepath.Join(s.dir, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())), OnLine: onLine})
	if err != nil {
		return nil, err
	}
	url, err := awaitURL(ctx, p, urls, "address")
	if err != nil {
		return nil, err
	}
	if err := devbin.WaitUntil(ctx, 30*time.Second, name+" to answer /healthz", func() bool { return devbin.Healthy(url) }); err != nil {
		return nil, fmt.Errorf("%w:\n%s", err, p.Tail(10))
	}
	return &server{Key: name, URL: url, proc: p}, nil
}

// peerEnv is this process's environment with the peers' settings: the stage's Redis and a
// free loopback port, their key and channel names left at longhaul's.
func peerEnv(redisURL string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "REDIS_URL", "ADDR", "PORT", "JOB_KEY_TEMPLATE", "CHANNEL_TEMPLATE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "REDIS_URL="+redisURL, "ADDR=127.0.0.1:0")
}

// bullKey is the key of a job's BullMQ hash in the Node peer's queue, "downloads".
func bullKey(id string) string { return "bull:downloads:" + id }

// writeBullJobs gives every job of ids the BullMQ hash that the Node peer reads for its
// status and its snapshots, under the same id (see peers/node/README.md). Its progress
// holds the job as the store has it now, seq included for the WebSocket readers' order
// check, so that the peer's bodies carry the same files as longhaul's.
func writeBullJobs(ctx context.Context, rdb *redis.Client, store *jobs.Store, ids []string) error {
	now := time.Now().UnixMilli()
	pipe := rdb.Pipeline()
	for i, id := range ids {
		job, err := store.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("read job %s for its BullMQ hash: %w", id, err)
		}
		progress, err := json.Marshal(job)
		if err != nil {
			return err
		}
		fileIDs := make([]int64, len(job.Files))
		for j, f := range job.Files {
			fileIDs[j] = f.ID
		}
		data, err := json.Marshal(map[string][]int64{"file_ids": fileIDs})
		if err != nil {
			return err
		}
		pipe.HSet(ctx, bullKey(id), "name", "download", "data", data, "opts", "{}", "timestamp", now, "progress", progress)
		if (i+1)%100 == 0 || i == len(ids)-1 {
			if _, err := pipe.Exec(ctx); err != nil {
				return fmt.Errorf("write BullMQ hashes: %w", err)
			}
		}
	}
	return nil
}
