package api

import (
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/live"
)

// maxSeq is the highest seq a client may say it saw: the largest integer a JavaScript number
// holds exactly. Seqs count the writes of one job and never come near it; a claim above it
// is no client's, and would let a caller push the job's seq to where it cannot grow.
const maxSeq = 1<<53 - 1

// epochPattern is what an epoch the server handed out looks like, with room to spare.
var epochPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// heldOf reads what a live client that comes back holds of its job: `?seq=` and `?epoch=`,
// or, on an event stream, the Last-Event-ID its EventSource sends by itself (a seq, with no
// epoch). A malformed query is the caller's mistake; a malformed Last-Event-ID is ignored,
// since browsers send whatever id they last saw.
func heldOf(c *gin.Context) (live.Held, error) {
	var held live.Held
	if raw, ok := c.GetQuery("seq"); ok {
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 0 || n > maxSeq {
			return held, invalid("seq", "seq must be the seq of the last message applied: an integer from 0 to %d", int64(maxSeq))
		}
		held.Seq = n
	} else if n, err := strconv.ParseInt(c.GetHeader("Last-Event-ID"), 10, 64); err == nil && n >= 0 && n <= maxSeq {
		held.Seq = n
	}
	if raw, ok := c.GetQuery("epoch"); ok {
		if !epochPattern.MatchString(raw) {
			return held, invalid("epoch", "epoch must be the epoch of the last message applied, as the server sent it")
		}
		held.Epoch = raw
	}
	return held, nil
}
