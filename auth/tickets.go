package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// TicketTTLDefault is how long a ticket waits for its connection.
const TicketTTLDefault = 30 * time.Second

// ErrBadTicket: the ticket is unknown, used, expired, or for another job.
var ErrBadTicket = errors.New("the ticket is unknown, used, expired or for another job")

// ticketPrefix starts every ticket, so that it is never mistaken for a key.
const ticketPrefix = "lht_"

// Tickets issues and redeems live-channel tickets. Browsers cannot put a header on a
// WebSocket or an EventSource, and a long-lived key must never sit in a URL: a ticket,
// good for one connection to one job within a short time, goes in the URL instead. Each is
// one Redis key that expires on its own and is deleted when redeemed.
type Tickets struct {
	rdb redis.UniversalClient
	ttl time.Duration
	now func() time.Time
}

// NewTickets returns the ticket store on rdb; tickets live ttl, or TicketTTLDefault if zero.
func NewTickets(rdb redis.UniversalClient, ttl time.Duration) *Tickets {
	if ttl <= 0 {
		ttl = TicketTTLDefault
	}
	return &Tickets{rdb: rdb, ttl: ttl, now: time.Now}
}

func ticketKey(ticket string) string { return "longhaul:ticket:" + hashOf(ticket) }

// Issue makes a ticket for one connection to job jobID by the key keyID (empty when auth
// is off), and says when it expires.
func (t *Tickets) Issue(ctx context.Context, jobID, keyID string) (string, time.Time, error) {
	ticket := ticketPrefix + newSecret()
	expires := t.now().Add(t.ttl).UTC().Truncate(time.Second)
	if err := t.rdb.Set(ctx, ticketKey(ticket), jobID+" "+keyID, t.ttl).Err(); err != nil {
		return "", time.Time{}, fmt.Errorf("issue ticket: %w", err)
	}
	return ticket, expires, nil
}

// Redeem uses up a ticket for a connection to job jobID and returns the id of the key it
// was issued to. A ticket works once: whoever redeems it first has it.
func (t *Tickets) Redeem(ctx context.Context, jobID, ticket string) (keyID string, err error) {
	if !strings.HasPrefix(ticket, ticketPrefix) || len(ticket) > 100 {
		return "", ErrBadTicket
	}
	held, err := t.rdb.GetDel(ctx, ticketKey(ticket)).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrBadTicket
	} else if err != nil {
		return "", fmt.Errorf("redeem ticket: %w", err)
	}
	job, key, _ := strings.Cut(held, " ")
	if job != jobID {
		return "", ErrBadTicket
	}
	return key, nil
}

// LooksLikeKey reports whether s has the shape of an API key, so that one put where a
// ticket goes (a URL, which ends up in logs) is refused and not looked up.
func LooksLikeKey(s string) bool { return strings.HasPrefix(s, keyPrefix) }
