// Package requestid names each request, and the work it starts, with an id that its log lines
// carry: the API's lines of the request, and the worker's lines of the job it created, all
// have the same request_id, so one grep finds what one call did across processes.
//
// The id travels in a context (With, From); LogHandler adds it to every log line written with
// that context.
package requestid

import (
	"context"
	"crypto/rand"
	"log/slog"
)

// Header is the HTTP header that carries a request id, from a proxy in and to the client out.
const Header = "X-Request-ID"

// LogKey is the name of the id in log lines.
const LogKey = "request_id"

// maxLen bounds an id taken from a proxy: nginx's $request_id is 32 characters, a UUID 36.
const maxLen = 128

// New returns a fresh id: 26 characters of base32, 130 bits from crypto/rand.
func New() string { return rand.Text() }

// Valid reports whether id may name a request: 1 to 128 letters, digits and the characters
// - _ . : + / =, which covers the ids proxies make (hex, UUIDs, base64) and nothing that could
// break a log line or a header.
func Valid(id string) bool {
	if len(id) == 0 || len(id) > maxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		switch c {
		case '-', '_', '.', ':', '+', '/', '=':
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

type ctxKey struct{}

// With returns ctx carrying id. An empty id leaves ctx as it is.
func With(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// LogHandler returns a handler that writes what h writes, plus request_id on every record
// logged with a context that carries an id. The id goes among the record's own attributes, so
// inside a logger's group if it has one.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String(LogKey, id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
