package client_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// faults are what a proxy does to the traffic between a client and the real server.
type faults struct {
	// refuseWebSocket strips the upgrade from WebSocket requests, as a proxy that does not
	// pass upgrades on: the server then answers that the endpoint takes an upgrade.
	refuseWebSocket bool
	// refuseEvents answers the event stream with 502, as a proxy without that route.
	refuseEvents bool
	// drop reports the live messages (WebSocket or SSE data) to leave out.
	drop func(msg []byte) bool
	// goAway closes this many WebSockets with 1001 right after their first message.
	goAway int
	// cutFiles cuts the first download of each file after half of its bytes.
	cutFiles bool
	// unavailable answers this many initiate requests with 503 and Retry-After: 1.
	unavailable int
	// loseAnswers forwards this many initiate requests, then cuts the connection instead
	// of passing the answer on.
	loseAnswers int
	// keys, when set, makes the proxy ask for API keys and tickets as a server with auth
	// on does.
	keys *keyRules
}

// keyRules emulate a server with API keys: REST calls need the key, live connections a
// ticket of POST /v1/download/{id}/ticket, each good for one connection.
type keyRules struct {
	key string
	// authNone makes GET /v1/me answer {"auth":"none"}: keys are off, tickets not needed.
	authNone bool
}

// seen is one request as the proxy saw it.
type seen struct {
	method, path, query string
	header              http.Header
	status              int
	at                  time.Time // when the request arrived
}

// proxy is a reverse proxy in front of the real server, with faults. It logs every
// request.
type proxy struct {
	URL      string
	upstream *url.URL
	faults   faults
	reverse  *httputil.ReverseProxy

	mu      sync.Mutex // guards the fields below, written by the server's handlers
	log     []seen
	goAways int
	cut     map[string]bool
	refused int
	lost    int
	tickets map[string]bool // issued → used
}

func newProxy(t *testing.T, upstream string, f faults) *proxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{upstream: u, faults: f, reverse: httputil.NewSingleHostReverseProxy(u),
		cut: map[string]bool{}, tickets: map[string]bool{}}
	p.reverse.ErrorLog = nil
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	s := seen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, header: r.Header.Clone(),
		at: time.Now()}
	defer func() {
		s.status = rec.status
		p.mu.Lock()
		p.log = append(p.log, s)
		p.mu.Unlock()
	}()
	if p.faults.keys != nil && !p.checkKeys(rec, r) {
		return
	}
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/ws/"):
		p.serveWebSocket(rec, r)
	case strings.HasSuffix(path, "/events"):
		p.serveEvents(rec, r)
	case strings.Contains(path, "/files/"):
		p.serveFile(rec, r)
	case path == "/v1/download/initiate":
		p.serveInitiate(rec, r)
	default:
		p.reverse.ServeHTTP(rec, r)
	}
}

// requests are the requests seen so far whose path contains part.
func (p *proxy) requests(part string) []seen {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []seen
	for _, s := range p.log {
		if strings.Contains(s.path, part) {
			out = append(out, s)
		}
	}
	return out
}

// checkKeys answers what a server with keys answers itself, and reports whether the
// request may go on to the real server.
func (p *proxy) checkKeys(w http.ResponseWriter, r *http.Request) bool {
	k := p.faults.keys
	path := r.URL.Path
	live := strings.HasPrefix(path, "/ws/") || strings.HasSuffix(path, "/events")
	if live {
		if k.authNone {
			return true
		}
		ticket := r.URL.Query().Get("ticket")
		p.mu.Lock()
		used, issued := p.tickets[ticket]
		if issued && !used {
			p.tickets[ticket] = true
		}
		p.mu.Unlock()
		if !issued || used {
			writeAPIError(w, http.StatusUnauthorized, "unauthorized", "this ticket is unknown, used or expired")
			return false
		}
		q := r.URL.Query()
		q.Del("ticket")
		r.URL.RawQuery = q.Encode()
		return true
	}
	if r.Header.Get("Authorization") != "Bearer "+k.key {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeAPIError(w, http.StatusUnauthorized, "unauthorized", "an API key is required")
		return false
	}
	switch {
	case path == "/v1/me":
		w.Header().Set("Content-Type", "application/json")
		if k.authNone {
			io.WriteString(w, `{"auth":"none"}`)
		} else {
			io.WriteString(w, `{"auth":"keys","role":"client"}`)
		}
		return false
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/ticket"):
		b := make([]byte, 16)
		rand.Read(b)
		ticket := hex.EncodeToString(b)
		p.mu.Lock()
		p.tickets[ticket] = false
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"ticket":%q,"expires_at":"2030-01-01T00:00:30Z"}`, ticket)
		return false
	}
	return true
}

func writeAPIError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":%q}}`, code, message)
}

func (p *proxy) serveInitiate(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	refuse := p.refused < p.faults.unavailable
	if refuse {
		p.refused++
	}
	lose := !refuse && p.lost < p.faults.loseAnswers
	if lose {
		p.lost++
	}
	p.mu.Unlock()
	switch {
	case refuse:
		w.Header().Set("Retry-After", "1")
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable", "the job store is unavailable; retry shortly")
	case lose:
		p.reverse.ServeHTTP(httptest.NewRecorder(), r) // the job is made; its answer never arrives
		panic(http.ErrAbortHandler)
	default:
		p.reverse.ServeHTTP(w, r)
	}
}

func (p *proxy) serveEvents(w http.ResponseWriter, r *http.Request) {
	if p.faults.refuseEvents {
		http.Error(w, "502 Bad Gateway", http.StatusBadGateway)
		return
	}
	if p.faults.drop == nil {
		p.reverse.ServeHTTP(w, r)
		return
	}
	resp, ok := p.forward(w, r)
	if !ok {
		return
	}
	defer resp.Body.Close()
	rc := http.NewResponseController(w)
	rc.Flush()
	// Pass the stream on event by event, leaving out the events to drop.
	in := bufio.NewReader(resp.Body)
	var block bytes.Buffer
	for {
		line, err := in.ReadBytes('\n')
		block.Write(line)
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(line)) > 0 {
			continue
		}
		if data := sseData(block.Bytes()); data == nil || !p.faults.drop(data) {
			w.Write(block.Bytes())
			rc.Flush()
		}
		block.Reset()
	}
}

// sseData is the data of one event block; nil for a comment.
func sseData(block []byte) []byte {
	for _, line := range bytes.Split(block, []byte("\n")) {
		if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
			return d
		}
	}
	return nil
}

func (p *proxy) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	if p.faults.refuseWebSocket {
		r.Header.Del("Upgrade")
		r.Header.Del("Connection")
		p.reverse.ServeHTTP(w, r)
		return
	}
	if p.faults.drop == nil && p.faults.goAway == 0 {
		p.reverse.ServeHTTP(w, r)
		return
	}
	// Relay message by message, to leave some out or close early.
	target := "ws" + strings.TrimPrefix(p.upstream.String(), "http") + r.URL.Path
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	up, resp, err := websocket.DefaultDialer.Dial(target, nil)
	if err != nil {
		status := http.StatusBadGateway
		if resp != nil {
			status = resp.StatusCode
		}
		http.Error(w, err.Error(), status)
		return
	}
	defer up.Close()
	down, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer down.Close()
	go func() { // the client sends nothing but control frames; its close ends the relay
		for {
			if _, _, err := down.ReadMessage(); err != nil {
				up.Close()
				return
			}
		}
	}()
	for first := true; ; first = false {
		_, msg, err := up.ReadMessage()
		if err != nil {
			code := websocket.CloseAbnormalClosure
			if ce, ok := err.(*websocket.CloseError); ok {
				code = ce.Code
			}
			down.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(code, ""))
			return
		}
		if p.faults.drop != nil && p.faults.drop(msg) {
			continue
		}
		if err := down.WriteMessage(websocket.TextMessage, msg); err != nil {
			return
		}
		if first && p.takeGoAway() {
			down.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "restarting"))
			return
		}
	}
}

func (p *proxy) takeGoAway() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.goAways < p.faults.goAway {
		p.goAways++
		return true
	}
	return false
}

func (p *proxy) serveFile(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	cut := p.faults.cutFiles && r.Method == http.MethodGet && !p.cut[r.URL.Path]
	p.cut[r.URL.Path] = true
	p.mu.Unlock()
	if !cut {
		p.reverse.ServeHTTP(w, r)
		return
	}
	resp, ok := p.forward(w, r)
	if !ok {
		return
	}
	defer resp.Body.Close()
	size, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	io.CopyN(w, resp.Body, size/2)
	http.NewResponseController(w).Flush()
	panic(http.ErrAbortHandler) // the connection drops mid-body
}

// forward sends r to the real server and passes on the answer's status and headers; the
// body is the caller's to pass on.
func (p *proxy) forward(w http.ResponseWriter, r *http.Request) (*http.Response, bool) {
	u := *p.upstream
	u.Path, u.RawQuery = r.URL.Path, r.URL.RawQuery
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, u.String(), nil)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return nil, false
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	return resp, true
}

// recorder remembers the status of an answer; Unwrap lets the reverse proxy hijack and
// flush the connection underneath.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack hands the connection over, for the WebSocket relay.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	r.status = http.StatusSwitchingProtocols
	return http.NewResponseController(r.ResponseWriter).Hijack()
}
