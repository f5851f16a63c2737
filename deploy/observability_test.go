package deploy_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/google/go-cmp/cmp"
	"github.com/longhaul-dev/longhaul/internal/proctest"
	"github.com/longhaul-dev/longhaul/internal/redistest"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v4"
)

// The files of the observability profile, from the repository root.
const (
	prometheusConfig   = "deploy/prometheus/prometheus.yml"
	grafanaProvision   = "deploy/grafana/provisioning"
	grafanaDashboards  = "deploy/grafana/dashboards"
	dashboardFile      = grafanaDashboards + "/longhaul.json"
	datasourceFile     = grafanaProvision + "/datasources/prometheus.yaml"
	dashboardsProvider = grafanaProvision + "/dashboards/longhaul.yaml"
	observability      = "observability"
)

// prometheusFile is what the tests read of a Prometheus configuration.
type prometheusFile struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName     string `yaml:"job_name"`
		MetricsPath string `yaml:"metrics_path"`
		DNSSD       []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// rulesFile is what the tests read of a Prometheus rules file.
type rulesFile struct {
	Groups []struct {
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// readYAML decodes the file at path (from the repository root) into v.
func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootDir, path))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
}

// mountOf is the bind mount of s at target, with its source relative to the repository root.
func mountOf(t *testing.T, s types.ServiceConfig, target string) (source string, ok bool) {
	t.Helper()
	m := mountAt(s, target)
	if m == nil || m.Type != types.VolumeTypeBind {
		return "", false
	}
	root, err := filepath.Abs(rootDir)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(root, m.Source)
	if err != nil {
		return "", false
	}
	return filepath.ToSlash(rel), true
}

func TestComposeObservabilityIsOptIn(t *testing.T) {
	plain := loadCompose(t)
	withProfile := loadCompose(t, observability)
	for _, name := range []string{"prometheus", "grafana"} {
		if _, ok := plain.Services[name]; ok {
			t.Errorf("%s runs without --profile %s; it should be opt-in", name, observability)
		}
		s := service(t, withProfile, name)
		if !slices.Equal(s.Profiles, []string{observability}) {
			t.Errorf("%s profiles = %q, want [%s]", name, s.Profiles, observability)
		}
		for _, pc := range s.Ports {
			if pc.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes port %d on %q; keep it on 127.0.0.1", name, pc.Target, pc.HostIP)
			}
		}
	}
	for _, name := range []string{"redis", "api", "worker"} {
		service(t, plain, name)
	}
}

func TestComposePrometheus(t *testing.T) {
	p := loadCompose(t, observability)
	prom := service(t, p, "prometheus")
	config := ""
	for _, arg := range prom.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			config = v
		}
	}
	if config == "" {
		t.Fatalf("prometheus command = %q, want --config.file=...", prom.Command)
	}
	if src, ok := mountOf(t, prom, config); !ok || src != prometheusConfig {
		t.Errorf("prometheus reads %s, where %s is not mounted (mounted: %q)", config, prometheusConfig, src)
	}
	var cfg prometheusFile
	readYAML(t, prometheusConfig, &cfg)
	for _, rules := range cfg.RuleFiles {
		src, ok := mountOf(t, prom, rules)
		if !ok {
			t.Errorf("prometheus.yml loads %s, which compose.yaml does not mount", rules)
			continue
		}
		var r rulesFile
		readYAML(t, src, &r) // it must at least parse
	}
}

// TestPrometheusScrapesEveryLonghaulProcess checks that each api and worker container is a
// scrape target on the port where it serves metrics.
func TestPrometheusScrapesEveryLonghaulProcess(t *testing.T) {
	p := loadCompose(t, observability)
	var cfg prometheusFile
	readYAML(t, prometheusConfig, &cfg)
	targets := map[string]int{} // host name → port
	for _, job := range cfg.ScrapeConfigs {
		if job.MetricsPath != "" && job.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s; longhaul serves /metrics", job.JobName, job.MetricsPath)
		}
		for _, sd := range job.DNSSD {
			for _, name := range sd.Names {
				targets[name] = sd.Port
			}
		}
		for _, sc := range job.StaticConfigs {
			for _, target := range sc.Targets {
				host, port, _ := net.SplitHostPort(target)
				targets[host], _ = strconv.Atoi(port)
			}
		}
	}
	for name := range targets {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("prometheus.yml scrapes %q, which is no service of compose.yaml", name)
		}
	}
	for _, name := range []string{"api", "worker"} {
		addr := env(service(t, p, name), "LONGHAUL_METRICS_ADDR")
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s has LONGHAUL_METRICS_ADDR %q; without it, it serves no metrics Prometheus may scrape without a key", name, addr)
			continue
		}
		if want, _ := strconv.Atoi(port); targets[name] != want {
			t.Errorf("%s serves metrics on port %s; prometheus.yml scrapes it on %d", name, port, targets[name])
		}
	}
}

// TestComposeGrafana checks that Grafana finds its datasource, the Prometheus service, and
// the dashboard, and that the dashboard reads that datasource.
func TestComposeGrafana(t *testing.T) {
	p := loadCompose(t, observability)
	grafana := service(t, p, "grafana")
	if src, ok := mountOf(t, grafana, "/etc/grafana/provisioning"); !ok || src != grafanaProvision {
		t.Errorf("grafana's /etc/grafana/provisioning is %q, want %s mounted", src, grafanaProvision)
	}
	var provider struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, dashboardsProvider, &provider)
	if len(provider.Providers) != 1 {
		t.Fatalf("%s has %d providers, want 1", dashboardsProvider, len(provider.Providers))
	}
	if src, ok := mountOf(t, grafana, provider.Providers[0].Options.Path); !ok || src != grafanaDashboards {
		t.Errorf("grafana loads dashboards from %s, where %s is not mounted", provider.Providers[0].Options.Path, grafanaDashboards)
	}

	var ds struct {
		Datasources []struct {
			UID  string `yaml:"uid"`
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, datasourceFile, &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("%s = %+v, want one prometheus datasource", datasourceFile, ds.Datasources)
	}
	u, err := url.Parse(ds.Datasources[0].URL)
	if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
		t.Errorf("the datasource's URL is %q, want the prometheus service on its port 9090", ds.Datasources[0].URL)
	}
	if dep, ok := grafana.DependsOn["prometheus"]; !ok || dep.Condition != types.ServiceConditionStarted {
		t.Errorf("grafana depends_on = %+v, want prometheus", grafana.DependsOn)
	}
	uids := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		uids[q.datasource] = true
	}
	if diff := cmp.Diff(map[string]bool{ds.Datasources[0].UID: true}, uids); diff != "" {
		t.Errorf("the dashboard's queries read datasources other than the provisioned one (-want +got):\n%s", diff)
	}
}

// query is one PromQL expression of the deployment files, and where it is.
type query struct {
	where, expr, datasource string
}

// panel is what the test reads of a Grafana panel; rows hold panels of their own.
type panel struct {
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr       string `json:"expr"`
		Datasource struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// dashboardQueries are the queries of every panel of the dashboard.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootDir, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("read %s: %v", dashboardFile, err)
	}
	var out []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out = append(out, query{where: "panel " + strconv.Quote(p.Title), expr: tg.Expr, datasource: tg.Datasource.UID})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// alertQueries are the expressions of the alert rules prometheus.yml loads.
func alertQueries(t *testing.T) []query {
	t.Helper()
	p := loadCompose(t, observability)
	prom := service(t, p, "prometheus")
	var cfg prometheusFile
	readYAML(t, prometheusConfig, &cfg)
	var out []query
	for _, rules := range cfg.RuleFiles {
		src, ok := mountOf(t, prom, rules)
		if !ok {
			t.Fatalf("prometheus.yml loads %s, which compose.yaml does not mount", rules)
		}
		var r rulesFile
		readYAML(t, src, &r)
		for _, g := range r.Groups {
			for _, rule := range g.Rules {
				out = append(out, query{where: "alert " + rule.Alert, expr: rule.Expr})
			}
		}
	}
	return out
}

// prometheusOwn are the series Prometheus makes itself for each target it scrapes.
var prometheusOwn = map[string]bool{"up": true}

// TestDashboardAndAlertsNameExportedMetrics runs an API and a worker as compose.yaml does
// (each with its metrics on an address of its own), runs a job through them, and checks that
// every metric the dashboard and the alerts query is one they export.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	queries := append(dashboardQueries(t), alertQueries(t)...)
	if len(queries) < 10 {
		t.Fatalf("found %d queries in the dashboard and the alerts; the test would prove little", len(queries))
	}
	exported := exportedNames(t)
	for _, q := range queries {
		names := metricNames(q.expr)
		if len(names) == 0 {
			t.Errorf("%s: %q names no metric", q.where, q.expr)
		}
		for _, name := range names {
			if !exported[name] && !prometheusOwn[name] {
				t.Errorf("%s queries %s, which longhaul does not export", q.where, name)
			}
		}
	}
}

// exportedNames are the series names that an API and a worker export once a job ran: a
// histogram's are its _bucket, _sum and _count.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	redis := redistest.Start(t, redistest.Options{})
	apiMetrics, workerMetrics := freeAddr(t), freeAddr(t)
	api := startAPI(t, "api", redis.URL(), fastSettings(t).with("LONGHAUL_METRICS_ADDR", apiMetrics))
	startWorker(t, "worker", redis.URL(), fastSettings(t).with("LONGHAUL_METRICS_ADDR", workerMetrics))
	id := initiate(t, api.URL, 70000, 70001)
	proctest.WaitUntil(t, time.Minute, "the job to finish", func() bool {
		return status(t, api.URL, id).Status.Terminal()
	})
	names := map[string]bool{}
	for _, addr := range []string{apiMetrics, workerMetrics} {
		for name, f := range scrapeFamilies(t, "http://"+addr+"/metrics") {
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
			default:
				names[name] = true
			}
		}
	}
	return names
}

func freeAddr(t *testing.T) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(freePort(t))
}

// scrapeFamilies reads url in Prometheus' text format.
func scrapeFamilies(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return families
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want []string
	}{
		{`histogram_quantile(0.95, sum by (le, route) (rate(longhaul_http_request_duration_seconds_bucket{route!~"/ws/.*|.*/events"}[$__rate_interval])))`,
			[]string{"longhaul_http_request_duration_seconds_bucket"}},
		{"sum(rate(a_total{status=\"failed\"}[15m]))\n  / sum(rate(a_total[15m])) > 0.1", []string{"a_total", "a_total"}},
		{`max by (state) (asynq_tasks_enqueued_total{queue="downloads",state=~"pending|active"})`, []string{"asynq_tasks_enqueued_total"}},
		{`sum(rate(x[5m])) by (outcome) / on (outcome) group_left y offset 1h`, []string{"x", "y"}},
		{`sum(up{job="longhaul-worker"}) == 0`, []string{"up"}},
		{`{__name__="hidden"} and 1e3`, nil},
		{`count(z{a="}{"})`, []string{"z"}},
	}
	for _, c := range cases {
		if diff := cmp.Diff(c.want, metricNames(c.expr)); diff != "" {
			t.Errorf("metricNames(%q) (-want +got):\n%s", c.expr, diff)
		}
	}
}

// promqlWords are the keywords of PromQL that are not followed by a parenthesis.
var promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "offset": true, "bool": true,
	"inf": true, "nan": true}

// labelLists are the keywords of PromQL followed by a list of label names.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

// metricNames returns the metric names a PromQL expression selects, in order: every
// identifier that is not a function, a keyword, a label, a string, a duration or a Grafana
// variable.
func metricNames(expr string) []string {
	var out []string
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '{':
			i = skipUntil(expr, i, '}')
		case c == '[':
			i = skipUntil(expr, i, ']')
		case c == '$':
			i = skipWord(expr, i+1)
		case c >= '0' && c <= '9' || c == '.':
			i = skipWord(expr, i)
		case isIdentStart(c):
			end := skipWord(expr, i)
			word := expr[i:end]
			next := strings.TrimLeft(expr[end:], " \t\n")
			nextWord := next[:skipWord(next, 0)]
			i = end
			switch {
			case labelLists[word]:
				if strings.HasPrefix(next, "(") {
					i = skipUntil(expr, strings.Index(expr[i:], "(")+i, ')')
				}
			case strings.HasPrefix(next, "("), promqlWords[strings.ToLower(word)],
				nextWord == "by", nextWord == "without":
				// a function, an aggregation (sum by (le) (...)), or a keyword
			default:
				out = append(out, word)
			}
		default:
			i++
		}
	}
	return out
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// skipWord returns the end of the word (letters, digits, _ : .) that starts at i.
func skipWord(s string, i int) int {
	for i < len(s) && (isIdentStart(s[i]) || s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	return i
}

// skipString returns the index after the string literal that starts at i.
func skipString(s string, i int) int {
	quote := s[i]
	for i++; i < len(s); i++ {
		if s[i] == '\\' && quote != '`' {
			i++
		} else if s[i] == quote {
			return i + 1
		}
	}
	return len(s)
}

// skipUntil returns the index after the close that ends the bracket at i, passing over the
// strings inside it.
func skipUntil(s string, i int, close byte) int {
	for i++; i < len(s); {
		switch s[i] {
		case close:
			return i + 1
		case '"', '\'', '`':
			i = skipString(s, i)
		default:
			i++
		}
	}
	return len(s)
}

// TestTheProxyNamesRequests: behind nginx (trusted), a request is named by nginx's
// $request_id, whatever id the client sent.
func TestTheProxyNamesRequests(t *testing.T) {
	t.Parallel()
	requireNginx(t)
	redis := redistest.Start(t, redistest.Options{})
	api := startAPI(t, "api", redis.URL(), fastSettings(t).with("LONGHAUL_TRUSTED_PROXIES", "127.0.0.1"))
	ng := startNginx(t, proxy{Upstreams: []string{api.Addr(), api.Addr()}})
	req, _ := http.NewRequest("GET", ng.url+"/v1/me", nil)
	req.Header.Set("X-Request-ID", "chosen-by-the-client")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-ID"); !nginxRequestID.MatchString(id) {
		t.Errorf("through nginx, X-Request-ID = %q, want nginx's $request_id (32 hex digits)", id)
	}
}

// nginxRequestID is the shape of nginx's $request_id.
var nginxRequestID = regexp.MustCompile(`^[0-9a-f]{32}$`)
