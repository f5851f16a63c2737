package main

import (
	"encoding/base64"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/storage"
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
		{"LONGHAUL_METRICS_ADDR", "9100", "like :9100"},
		{"REDIS_URL", "localhost:6379", "redis://"},
		{"LONGHAUL_WEBHOOK_SECRET", "whsec_c2hvcnQ=", "24 to 64 random bytes"},
		{"LONGHAUL_WEBHOOK_SECRET", "hunter2-hunter2-hunter2-hunter2", "whsec_"},
		{"LONGHAUL_WEBHOOK_ALLOW", "127.0.0.1/33", "CIDR ranges"},
		{"LONGHAUL_WEBHOOK_ALLOW_HTTP", "yes please", "true or false"},
		{"LONGHAUL_WEBHOOK_RETRIES", "0", "from 1 to 100"},
		{"LONGHAUL_WEBHOOK_TIMEOUT", "5m", "from 100ms to 1m"},
		{"LONGHAUL_WEBHOOK_BACKOFF", "1ms", "from 100ms"},
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

func TestConfigReadsWebhooks(t *testing.T) {
	oldSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("o", 32)))
	newSecret := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("n", 32)))
	env := map[string]string{
		"LONGHAUL_WEBHOOK_SECRET": newSecret + " " + oldSecret, "LONGHAUL_WEBHOOK_ALLOW": "127.0.0.1, 10.1.2.0/24",
		"LONGHAUL_WEBHOOK_ALLOW_HTTP": "true", "LONGHAUL_WEBHOOK_RETRIES": "3", "LONGHAUL_WEBHOOK_BACKOFF": "1s",
		"LONGHAUL_WEBHOOK_TIMEOUT": "2s", "LONGHAUL_WEBHOOK_CONCURRENCY": "4",
	}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	w := c.Webhooks
	wantAllow := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.2.0/24")}
	if w.Signer == nil || !w.Policy.AllowHTTP || !slices.Equal(w.Policy.Allow, wantAllow) || w.Options.MaxRetry != 3 ||
		w.Options.Backoff != time.Second || w.Options.Timeout != 2*time.Second || w.Concurrency != 4 {
		t.Errorf("webhooks = %+v", w)
	}
	if got := len(strings.Fields(w.Signer.Sign("msg_1", time.Unix(0, 0), nil))); got != 2 {
		t.Errorf("signatures with two secrets: %d", got)
	}
	defaults, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if d := defaults.Webhooks; d.Signer != nil || d.Policy.AllowHTTP || len(d.Policy.Allow) != 0 || d.Options.MaxRetry != 12 {
		t.Errorf("webhook defaults = %+v, want no secret, https to public addresses only, 12 retries", d)
	}
}

func TestConfigNeverShowsTheWebhookSecret(t *testing.T) {
	bad := "whsec_" + base64.StdEncoding.EncodeToString([]byte("too-short-to-sign"))
	_, err := loadConfig(func(k string) string {
		if k == "LONGHAUL_WEBHOOK_SECRET" {
			return bad
		}
		return ""
	})
	if err == nil || strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), strings.TrimPrefix(bad, "whsec_")) {
		t.Errorf("loadConfig = %v; want an error that does not repeat the secret", err)
	}
}

func TestConfigReadsTheBucket(t *testing.T) {
	env := map[string]string{
		"LONGHAUL_STORAGE": "s3://files/longhaul", "LONGHAUL_S3_ENDPOINT": "http://127.0.0.1:9000",
		"LONGHAUL_S3_PATH_STYLE": "true", "LONGHAUL_S3_PART_SIZE": "16MiB", "LONGHAUL_S3_DOWNLOADS": "redirect",
		"LONGHAUL_S3_URL_EXPIRY": "1m", "AWS_REGION": "eu-west-1",
		"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
	}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := storage.BucketConfig{Bucket: "files", Prefix: "longhaul", Endpoint: "http://127.0.0.1:9000",
		Region: "eu-west-1", PathStyle: true, AccessKeyID: "AKID", SecretAccessKey: "secret", SessionToken: "token",
		PartSize: 16 << 20, URLExpiry: time.Minute}
	if c.S3 == nil {
		t.Fatal("no bucket configured")
	}
	if diff := cmp.Diff(want, *c.S3); diff != "" || !c.S3Redirect {
		t.Errorf("bucket (-want +got):\n%s\nredirect %v, want true", diff, c.S3Redirect)
	}

	c, err = loadConfig(func(k string) string { return map[string]string{"LONGHAUL_STORAGE": "s3://files"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	want = storage.BucketConfig{Bucket: "files", Endpoint: storage.EndpointDefault, PartSize: storage.PartSizeDefault,
		URLExpiry: storage.URLExpiryDefault}
	if diff := cmp.Diff(want, *c.S3); diff != "" || c.S3Redirect {
		t.Errorf("bucket with defaults (-want +got):\n%s\nredirect %v, want false", diff, c.S3Redirect)
	}
	if c, _ := loadConfig(func(string) string { return "" }); c.S3 != nil {
		t.Errorf("without LONGHAUL_STORAGE, a bucket is configured: %+v", c.S3)
	}
}

func TestConfigRefusesBadBucketSettingsWithAFix(t *testing.T) {
	bucket := func(kv ...string) map[string]string {
		env := map[string]string{"LONGHAUL_STORAGE": "s3://files"}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"not a bucket URL", map[string]string{"LONGHAUL_STORAGE": "/var/lib/files"}, []string{"LONGHAUL_STORAGE", "s3://BUCKET"}},
		{"no valid bucket name", map[string]string{"LONGHAUL_STORAGE": "s3://My_Files"}, []string{"LONGHAUL_STORAGE", "s3://BUCKET"}},
		{"a directory as well", bucket("LONGHAUL_STORAGE_DIR", "/srv/files"), []string{"LONGHAUL_STORAGE_DIR", "unset one"}},
		{"S3 settings without a bucket", map[string]string{"LONGHAUL_S3_ENDPOINT": "http://127.0.0.1:9000"},
			[]string{"LONGHAUL_S3_ENDPOINT", "LONGHAUL_STORAGE=s3://"}},
		{"endpoint", bucket("LONGHAUL_S3_ENDPOINT", "127.0.0.1:9000"), []string{"LONGHAUL_S3_ENDPOINT", "http://127.0.0.1:9000"}},
		{"key without secret", bucket("AWS_ACCESS_KEY_ID", "AKID"), []string{"AWS_SECRET_ACCESS_KEY", "set both"}},
		{"part size", bucket("LONGHAUL_S3_PART_SIZE", "1MiB"), []string{"LONGHAUL_S3_PART_SIZE", "5MiB to 5GiB"}},
		{"downloads", bucket("LONGHAUL_S3_DOWNLOADS", "presign"), []string{"LONGHAUL_S3_DOWNLOADS", "stream, redirect"}},
		{"URL expiry", bucket("LONGHAUL_S3_URL_EXPIRY", "30d"), []string{"LONGHAUL_S3_URL_EXPIRY", "duration"}},
		{"URL expiry too long", bucket("LONGHAUL_S3_URL_EXPIRY", "200h"), []string{"LONGHAUL_S3_URL_EXPIRY", "at most 168h"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadConfig(func(k string) string { return c.env[k] })
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("%v: got %v, want a message saying %q", c.env, err, w)
				}
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
