package main

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestConfigDefaults(t *testing.T) {
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != ":3000" || c.FileTimeMin != 10*time.Second || c.FileTimeMax != 30*time.Second ||
		c.FileSizeMax != 8<<20 || c.FileRetries != 3 || c.MaxFiles != 1000 || c.WorkerConcurrency != 20 ||
		c.FileConcurrency != 4 || c.PingInterval != 20*time.Second || c.Retention != 24*time.Hour {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigReadsValues(t *testing.T) {
	env := map[string]string{
		"LONGHAUL_FILE_TIME_MIN": "0", "LONGHAUL_FILE_TIME_MAX": "250ms", "LONGHAUL_FILE_SIZE_MAX": "512KiB",
		"LONGHAUL_ALLOWED_ORIGINS": "https://a.example, https://b.example", "LONGHAUL_FILE_FAILURE_RATE": "0.05",
	}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.FileTimeMin != 0 || c.FileTimeMax != 250*time.Millisecond || c.FileSizeMax != 512<<10 ||
		len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" || c.FileFailureRate != 0.05 {
		t.Errorf("config = %+v", c)
	}
}

func TestConfigRefusesBadValuesWithAFix(t *testing.T) {
	cases := []struct{ name, value, want string }{
		{"LONGHAUL_FILE_TIME_MIN", "ten seconds", "use a Go duration"},
		{"LONGHAUL_FILE_TIME_MAX", "1ms", "below LONGHAUL_FILE_TIME_MIN"},
		{"LONGHAUL_PING_INTERVAL", "54s", "at most 25s"},
		{"LONGHAUL_FILE_FAILURE_RATE", "1.5", "from 0 to 1"},
		{"LONGHAUL_FILE_SIZE_MAX", "8 parsecs", "like 8MiB"},
		{"LONGHAUL_WORKER_CONCURRENCY", "0", "from 1 to"},
		{"LONGHAUL_MAX_FILES", "-3", "from 1 to"},
		{"LONGHAUL_RETENTION", "5s", "at least 1m"},
		{"LONGHAUL_LOG_FORMAT", "xml", "text, json"},
		{"REDIS_URL", "localhost:6379", "redis://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(func(k string) string {
				if k == c.name {
					return c.value
				}
				return ""
			})
			if err == nil || !strings.Contains(err.Error(), c.name) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s=%q: got %v, want a message naming it and saying %q", c.name, c.value, err, c.want)
			}
		})
	}
}

func TestRunRefusesToStartWrongly(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no command", []string{"longhaul"}, nil, "usage"},
		{"unknown command", []string{"longhaul", "launch"}, nil, `unknown command "launch"`},
		{"api without Redis", []string{"longhaul", "api"}, nil, "REDIS_URL is required"},
		{"bad setting", []string{"longhaul", "serve"}, map[string]string{"LONGHAUL_PING_INTERVAL": "1m"}, "LONGHAUL_PING_INTERVAL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stderr strings.Builder
			err := run(t.Context(), c.args, func(k string) string { return c.env[k] }, &strings.Builder{}, &stderr)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}

// TestEmbeddedRedisExpiresKeys: miniredis expires keys only when told that time passed;
// the embedded mode's clock must move, or retention never ends.
func TestEmbeddedRedisExpiresKeys(t *testing.T) {
	addr, stop, err := startEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx := t.Context()
	if err := rdb.Set(ctx, "longhaul:probe", "x", 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for rdb.Exists(ctx, "longhaul:probe").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a 2s expiry still exists after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
