package api

import (
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// hostCheck decides which Host a request may name and which Origin a WebSocket may come
// from. With auth off, as in the demo, the server's own origin is whatever host the
// request came to. With auth on, both are checked against the configured public origins,
// not trusted from the request: a page on a domain rebound to this server's address would
// otherwise pass as its own.
type hostCheck struct {
	strict bool
	hosts  map[string]bool // allowed Host values, lower case; empty: loopback names
	extra  map[string]bool // allowed Origins besides the public ones, lower case
}

func newHostCheck(mode AuthMode, public, allowed []string) *hostCheck {
	h := &hostCheck{strict: mode == AuthKeys, hosts: map[string]bool{}, extra: map[string]bool{}}
	for _, o := range public {
		if u, err := url.Parse(o); err == nil {
			h.hosts[strings.ToLower(u.Host)] = true
		}
	}
	for _, o := range allowed {
		h.extra[strings.TrimRight(strings.ToLower(o), "/")] = true
	}
	return h
}

// hostAllowed reports whether a request may name host.
func (h *hostCheck) hostAllowed(host string) bool {
	host = strings.ToLower(host)
	if !h.strict {
		return true
	}
	if len(h.hosts) > 0 {
		return h.hosts[host]
	}
	name := host
	if n, _, err := net.SplitHostPort(host); err == nil {
		name = n
	}
	name = strings.Trim(name, "[]")
	if name == "localhost" {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

// originAllowed is the WebSocket upgrader's check: requests without an Origin (scripts),
// from the server's own origin, and from the configured extra origins.
func (h *hostCheck) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || h.extra[strings.ToLower(origin)] {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if h.strict {
		return h.hostAllowed(u.Host)
	}
	return strings.EqualFold(u.Host, r.Host)
}

// probes are the paths load balancers and monitors call by address, whatever Host.
var probes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

var errMisdirected = &Error{Status: http.StatusMisdirectedRequest, Code: CodeInvalidRequest,
	Message: "this server does not answer for that host name; add it to LONGHAUL_PUBLIC_ORIGINS if it should"}

// middleware refuses a request for a host name the server does not answer for.
func (h *hostCheck) middleware(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		if !probes[c.Request.URL.Path] && !h.hostAllowed(c.Request.Host) {
			writeError(c, log, errMisdirected)
		}
	}
}

// securityHeaders go on every answer. The page loads only its own files and talks only to
// its own origin; nothing of longhaul's may be framed (clickjacking) or sniffed into
// another type; no URL leaks to other sites in a Referer. The dashboard, asynqmon's build,
// runs an inline script and inline styles, so its policy allows those, on its own paths.
// The viewer at /docs (Swagger UI) needs no more than the page's policy: its scripts and
// styles are its own files, it fetches only /openapi.json and draws its icons from data:
// URLs; so it gets that policy, not a wider one (frontend/e2e/docs.e2e.mjs checks it).
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(c.Request.URL.Path, "/monitoring") {
		h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; "+
			"style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; frame-ancestors 'none'; base-uri 'none'")
		return
	}
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; connect-src 'self'; "+
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
}
