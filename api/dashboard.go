package api

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/auth"
)

// The dashboard can delete, archive and run any task and pause any queue, so with auth on
// only an admin key opens it. A browser shows its own login box for HTTP basic auth: the
// key goes in as the password (any user name), and scripts may send it as a Bearer header.

var (
	errDashboardLogin = &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized,
		Message: "the dashboard needs an admin key: log in with any user name and the key as the password"}
	errCrossSite = &Error{Status: http.StatusForbidden, Code: CodeForbidden,
		Message: "the dashboard takes changes only from its own pages"}
)

// guardDashboard lets through, with auth on, only an admin key; and refuses any change
// that a page of another site sent: a browser sends basic-auth credentials with a forged
// form post too.
func (a *access) guardDashboard(c *gin.Context) {
	if a.mode == AuthKeys {
		secret := dashboardSecret(c.Request)
		if secret == "" {
			a.askDashboardLogin(c, errDashboardLogin)
			return
		}
		key, err := a.keys.Lookup(c.Request.Context(), secret)
		if errors.Is(err, auth.ErrUnknownKey) {
			a.askDashboardLogin(c, errBadKey)
			return
		} else if err != nil {
			writeError(c, a.log, err)
			return
		}
		if key.Role != auth.RoleAdmin {
			writeError(c, a.log, errNotAdmin)
			return
		}
	}
	if c.Request.Method != http.MethodGet && c.Request.Method != http.MethodHead && crossSite(c.Request) {
		writeError(c, a.log, errCrossSite)
	}
}

func (a *access) askDashboardLogin(c *gin.Context, err *Error) {
	c.Header("WWW-Authenticate", `Basic realm="longhaul dashboard", charset="UTF-8"`)
	writeError(c, a.log, err)
}

// dashboardSecret is the key a request carries: as the basic-auth password, or Bearer.
func dashboardSecret(r *http.Request) string {
	if _, password, ok := r.BasicAuth(); ok {
		return password
	}
	if scheme, secret, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(secret)
	}
	return ""
}

// crossSite reports whether a browser sent r from a page of another site: the browser says
// so in Sec-Fetch-Site, or, where it does not send that, in an Origin that is not the
// server's. A request with neither comes from a script, not a forged page.
func crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site != "same-origin" && site != "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || !strings.EqualFold(u.Host, r.Host)
}

// storeFailures answers the dashboard's failures as every other route does. asynqmon
// answers 500, with the error of Redis as its body, when it cannot read the queues (Redis
// restarts, or a failover is under way); the client hears 503 with Retry-After instead, in
// the contract's shape, and the cause is logged, not sent.
func storeFailures(dashboard http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &failureWriter{ResponseWriter: w}
		dashboard.ServeHTTP(fw, r)
		if fw.failed {
			log.ErrorContext(r.Context(), "dashboard request failed", "method", r.Method, "path", r.URL.Path,
				"err", strings.TrimSpace(fw.cause.String()))
			writeErrorTo(w, errUnavailable)
		}
	})
}

// failureWriter passes a response through, but holds back a 500 and its body.
type failureWriter struct {
	http.ResponseWriter
	failed bool
	cause  bytes.Buffer // the start of a 500's body
}

// maxCause bounds what of a 500's body is kept for the log.
const maxCause = 512

func (w *failureWriter) WriteHeader(status int) {
	if status == http.StatusInternalServerError {
		w.failed = true
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *failureWriter) Write(b []byte) (int, error) {
	if w.failed {
		w.cause.Write(b[:min(len(b), max(maxCause-w.cause.Len(), 0))])
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
