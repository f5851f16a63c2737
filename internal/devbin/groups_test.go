package devbin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGroupsRefuseOptionsThatCannotWork(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(ctx context.Context, dir string) error
		want  string
	}{
		{"Sentinel group without Dir", func(ctx context.Context, _ string) error {
			_, err := StartSentinelGroup(ctx, SentinelOptions{})
			return err
		}, "needs Dir"},
		{"quorum above the Sentinels", func(ctx context.Context, dir string) error {
			_, err := StartSentinelGroup(ctx, SentinelOptions{Dir: dir, Sentinels: 3, Quorum: 4})
			return err
		}, "quorum 4 of 3 Sentinels"},
		{"Cluster without Dir", func(ctx context.Context, _ string) error {
			_, err := StartCluster(ctx, ClusterOptions{})
			return err
		}, "needs Dir"},
		{"Cluster of two masters", func(ctx context.Context, dir string) error {
			_, err := StartCluster(ctx, ClusterOptions{Dir: dir, Masters: 2})
			return err
		}, "at least 3"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := c.start(t.Context(), dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("start = %v, want an error that says %q", err, c.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("a start that cannot work left %d files in its directory", len(entries))
			}
		})
	}
}

func TestGroupsSayHowToInstallWhatIsMissing(t *testing.T) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal(err) // the other tests of the package need it as well
	}
	onlyServer := t.TempDir()
	if err := os.Symlink(server, filepath.Join(onlyServer, "redis-server")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, path, missing string
		start               func(ctx context.Context, dir string) error
	}{
		{"Sentinel group without redis-server", t.TempDir(), "redis-server", func(ctx context.Context, dir string) error {
			_, err := StartSentinelGroup(ctx, SentinelOptions{Dir: dir})
			return err
		}},
		{"Cluster without redis-cli", onlyServer, "redis-cli", func(ctx context.Context, dir string) error {
			_, err := StartCluster(ctx, ClusterOptions{Dir: dir})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			err := c.start(t.Context(), t.TempDir())
			if err == nil || !strings.Contains(err.Error(), c.missing+" not found") || !strings.Contains(err.Error(), "scripts/ensure-redis.sh") {
				t.Errorf("start = %v, want an error that says %s is missing and what to run", err, c.missing)
			}
		})
	}
}
