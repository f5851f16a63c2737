package api

import (
	"context"
	"sync"
)

// handshakesDefault is how many live connections (WebSocket and SSE) one API process sets up
// at once, from the route's checks to the first snapshot handed to the connection. A
// deploy's reconnect storm brings thousands within a second; set up all at once, they fill
// the run queue, and everything else the process answers (/healthz, status reads) waits
// behind them. Past the limit a handshake waits its turn, parked and costing no CPU: the
// storm is set up as fast as before, a few at a time.
const handshakesDefault = 64

// statusClientLeft is what the access log and the metrics count for a live request whose
// client left while it waited for a turn: nginx's 499, "client closed request". Nothing is
// written to the client, who is gone.
const statusClientLeft = 499

// handshakes is the turnstile of the live connections' set-up.
type handshakes chan struct{}

func newHandshakes(n int) handshakes { return make(handshakes, n) }

// turn waits for a turn, or reports false when ctx ends first (the client left). The leave
// it returns gives the turn back, once however often and from whichever goroutine it is
// called.
func (h handshakes) turn(ctx context.Context) (leave func(), ok bool) {
	select {
	case h <- struct{}{}:
		return sync.OnceFunc(func() { <-h }), true
	case <-ctx.Done():
		return nil, false
	}
}
