package deploy_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

// rootDir is the repository root, where compose.yaml and the Dockerfile live.
const rootDir = ".."

// defaultShutdownTimeout is LONGHAUL_SHUTDOWN_TIMEOUT's default (cmd/longhaul/config.go).
const defaultShutdownTimeout = 10 * time.Second

// loadCompose loads compose.yaml as `docker compose config` would, with an empty environment
// so that every ${VAR:-default} takes its default, and the services of profiles on.
func loadCompose(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	root, err := filepath.Abs(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root),
		cli.WithInterpolation(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithProfiles(profiles),
	)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("load compose.yaml: %v", err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("compose.yaml has no service %q; it has %v", name, p.ServiceNames())
	}
	return s
}

func env(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	for _, name := range []string{"redis", "api", "worker"} {
		service(t, p, name)
	}
}

// TestComposeRedis checks that Redis keeps jobs across restarts and never evicts them.
func TestComposeRedis(t *testing.T) {
	p := loadCompose(t)
	redis := service(t, p, "redis")

	if !strings.HasPrefix(redis.Image, "redis:7") {
		t.Errorf("redis image = %q, want redis:7", redis.Image)
	}
	args := redisArgs(redis.Command)
	for flag, want := range map[string]string{
		"appendonly":       "yes",
		"appendfsync":      "everysec",
		"maxmemory-policy": "noeviction",
	} {
		if got := args[flag]; got != want {
			t.Errorf("redis --%s = %q, want %q (command %q)", flag, got, want, redis.Command)
		}
	}

	data := mountAt(redis, "/data")
	if data == nil || data.Type != types.VolumeTypeVolume {
		t.Errorf("redis has no named volume at /data, where it writes its append-only file: %+v", redis.Volumes)
	} else if _, ok := p.Volumes[data.Source]; !ok {
		t.Errorf("redis volume %q is not declared under volumes", data.Source)
	}
	if hc := redis.HealthCheck; hc == nil || hc.Disable || len(hc.Test) < 2 ||
		!strings.Contains(strings.Join(hc.Test, " "), "redis-cli") {
		t.Errorf("redis healthcheck = %+v, want a redis-cli check", hc)
	}
}

// redisArgs reads redis-server's command line (--name value) into a map.
func redisArgs(cmd types.ShellCommand) map[string]string {
	args := map[string]string{}
	for i, a := range cmd {
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(name, "="); ok {
			args[k] = v
		} else if i+1 < len(cmd) && !strings.HasPrefix(cmd[i+1], "--") {
			args[name] = cmd[i+1]
		}
	}
	return args
}

func mountAt(s types.ServiceConfig, target string) *types.ServiceVolumeConfig {
	for i := range s.Volumes {
		if s.Volumes[i].Target == target {
			return &s.Volumes[i]
		}
	}
	return nil
}

// TestComposeLonghaul checks what api and worker have in common: the image built from the
// Dockerfile, the Redis they use and the files they share.
func TestComposeLonghaul(t *testing.T) {
	p := loadCompose(t)
	root, err := filepath.Abs(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	redisPort := "6379"
	if port := redisArgs(service(t, p, "redis").Command)["port"]; port != "" {
		redisPort = port
	}

	storage := map[string]types.ServiceVolumeConfig{}
	for _, name := range []string{"api", "worker"} {
		t.Run(name, func(t *testing.T) {
			s := service(t, p, name)
			if !slices.Equal([]string(s.Command), []string{name}) {
				t.Errorf("command = %q, want [%q]", s.Command, name)
			}
			if s.Build == nil || filepath.Clean(s.Build.Context) != root ||
				(s.Build.Dockerfile != "" && s.Build.Dockerfile != "Dockerfile") {
				t.Errorf("build = %+v, want the Dockerfile at %s", s.Build, root)
			}

			raw := env(s, "REDIS_URL")
			u, err := url.Parse(raw)
			if err != nil || u.Scheme != "redis" || u.Hostname() != "redis" || u.Port() != redisPort {
				t.Errorf("REDIS_URL = %q, want redis://redis:%s/...", raw, redisPort)
			}
			if dep, ok := s.DependsOn["redis"]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on = %+v, want redis with condition %s", s.DependsOn, types.ServiceConditionHealthy)
			}

			dir := env(s, "LONGHAUL_STORAGE_DIR")
			if !filepath.IsAbs(dir) {
				t.Fatalf("LONGHAUL_STORAGE_DIR = %q, want an absolute path inside the container", dir)
			}
			m := mountAt(s, dir)
			if m == nil || m.Type != types.VolumeTypeVolume || m.ReadOnly {
				t.Fatalf("no writable named volume at LONGHAUL_STORAGE_DIR %s: %+v", dir, s.Volumes)
			}
			if _, ok := p.Volumes[m.Source]; !ok {
				t.Errorf("volume %q is not declared under volumes", m.Source)
			}
			storage[name] = *m
		})
	}
	api, apiOK := storage["api"]
	worker, workerOK := storage["worker"]
	if apiOK && workerOK && (api.Source != worker.Source || api.Target != worker.Target) {
		t.Errorf("api stores files in volume %q at %s, worker in %q at %s; they must share one",
			api.Source, api.Target, worker.Source, worker.Target)
	}
}

func TestComposeAPI(t *testing.T) {
	p := loadCompose(t)
	api := service(t, p, "api")

	listen := "3000"
	if addr := env(api, "LONGHAUL_ADDR"); addr != "" {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("LONGHAUL_ADDR = %q: %v", addr, err)
		}
		listen = port
	}
	if listen != "3000" {
		t.Errorf("api listens on port %s, want 3000", listen)
	}
	published := slices.ContainsFunc(api.Ports, func(pc types.ServicePortConfig) bool {
		return pc.Target == 3000 && pc.Published == "3000"
	})
	if !published {
		t.Errorf("api ports = %+v, want 3000 published as 3000", api.Ports)
	}

	hc := api.HealthCheck
	if hc == nil || hc.Disable || len(hc.Test) < 2 {
		t.Fatalf("api healthcheck = %+v, want a check of /readyz", hc)
	}
	check := strings.Join(hc.Test[1:], " ")
	if !strings.Contains(check, ":"+listen+"/readyz") {
		t.Errorf("api healthcheck runs %q, want it to ask :%s/readyz", check, listen)
	}
}

// TestComposeWorkerStopGrace checks that Docker waits for the worker to hand its jobs
// back before it kills it.
func TestComposeWorkerStopGrace(t *testing.T) {
	p := loadCompose(t)
	worker := service(t, p, "worker")

	shutdown := defaultShutdownTimeout
	if v := env(worker, "LONGHAUL_SHUTDOWN_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LONGHAUL_SHUTDOWN_TIMEOUT = %q: %v", v, err)
		}
		shutdown = d
	}
	if worker.StopGracePeriod == nil {
		t.Fatalf("worker has no stop_grace_period; Docker's 10 s default does not exceed LONGHAUL_SHUTDOWN_TIMEOUT (%v)", shutdown)
	}
	if got := time.Duration(*worker.StopGracePeriod); got <= shutdown {
		t.Errorf("worker stop_grace_period = %v, want more than LONGHAUL_SHUTDOWN_TIMEOUT (%v)", got, shutdown)
	}
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	stage int    // index of the FROM it belongs to
	cmd   string // upper case, like RUN
	args  string
}

func readDockerfile(t *testing.T) []instruction {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootDir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var out []instruction
	stage, line := -1, ""
	for raw := range strings.SplitSeq(string(b), "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && line == "") {
			continue
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			line += body + " "
			continue
		}
		line += trimmed
		cmd, args, _ := strings.Cut(strings.TrimSpace(line), " ")
		line = ""
		cmd = strings.ToUpper(cmd)
		if cmd == "FROM" {
			stage++
		}
		out = append(out, instruction{stage: stage, cmd: cmd, args: strings.Join(strings.Fields(args), " ")})
	}
	return out
}

// TestDockerfileBuild checks that the image is built the way the Makefile builds the
// binary: the UI with npm ci and npm run build, then go build of ./cmd/longhaul embedding it.
func TestDockerfileBuild(t *testing.T) {
	ins := readDockerfile(t)
	find := func(cmd string, re *regexp.Regexp) (instruction, bool) {
		for _, in := range ins {
			if in.cmd == cmd && re.MatchString(in.args) {
				return in, true
			}
		}
		return instruction{}, false
	}
	from := func(stage int) string {
		for _, in := range ins {
			if in.cmd == "FROM" && in.stage == stage {
				return in.args
			}
		}
		return ""
	}

	npmCI, ok := find("RUN", regexp.MustCompile(`\bnpm ci\b`))
	if !ok {
		t.Error("no RUN npm ci")
	}
	npmBuild, ok := find("RUN", regexp.MustCompile(`\bnpm run build\b`))
	if !ok {
		t.Error("no RUN npm run build")
	}
	goBuild, ok := find("RUN", regexp.MustCompile(`\bgo build\b.*\s\./cmd/longhaul$`))
	if !ok {
		t.Fatal("no RUN go build ... ./cmd/longhaul")
	}
	if !strings.HasPrefix(from(npmBuild.stage), "node:20") || npmCI.stage != npmBuild.stage {
		t.Errorf("the UI is built in stage %q, want node:20", from(npmBuild.stage))
	}
	if !strings.HasPrefix(from(goBuild.stage), "golang:1.26") {
		t.Errorf("the binary is built in stage %q, want golang:1.26", from(goBuild.stage))
	}
	if !strings.Contains(goBuild.args, "-trimpath") {
		t.Errorf("go build runs without -trimpath: %q", goBuild.args)
	}

	// The built UI must be in frontend/dist/app of the Go stage before go build embeds it.
	uiCopied := false
	for _, in := range ins {
		if in.stage == goBuild.stage && in.cmd == "COPY" && strings.Contains(in.args, "--from=") &&
			strings.HasSuffix(in.args, "frontend/dist/app") {
			uiCopied = true
		}
		if in == goBuild {
			break
		}
	}
	if !uiCopied {
		t.Error("the Go stage does not copy the built UI into frontend/dist/app before go build")
	}
}

func TestDockerfileRuntime(t *testing.T) {
	ins := readDockerfile(t)
	last := ins[len(ins)-1].stage
	got := map[string]string{}
	for _, in := range ins {
		if in.stage == last {
			got[in.cmd] = in.args // the last of each instruction wins, as in Docker
		}
	}
	want := map[string]string{
		"ENTRYPOINT": `["/usr/local/bin/longhaul"]`,
		"CMD":        `["serve"]`,
		"EXPOSE":     "3000",
	}
	for cmd, w := range want {
		if got[cmd] != w {
			t.Errorf("runtime %s = %q, want %q", cmd, got[cmd], w)
		}
	}
	if user := got["USER"]; user == "" || user == "root" || user == "0" || strings.HasPrefix(user, "root:") || strings.HasPrefix(user, "0:") {
		t.Errorf("runtime USER = %q, want a non-root user", user)
	}
}

func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(rootDir, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/"))
		}
	}
	for _, want := range []string{".git", "bin", "data", "frontend/node_modules"} {
		if !slices.Contains(patterns, want) {
			t.Errorf(".dockerignore does not keep out %s (patterns %q)", want, patterns)
		}
	}
}
