// Package livetest is a client of longhaul's live WebSocket for tests: it reads a job's
// messages to the close and checks the contract's ordering rules on the way.
package livetest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/jobs"
)

// Message is any message of the live channels.
type Message struct {
	Type    string          `json:"type"`
	Seq     int64           `json:"seq"`
	Epoch   string          `json:"epoch"`
	Status  string          `json:"status"`
	FileID  int64           `json:"file_id"`
	Percent float64         `json:"percent"`
	Job     *jobs.Job       `json:"job"`
	Error   json.RawMessage `json:"error"`
}

// Dial opens the live WebSocket of job id on the server at baseURL (http://...).
func Dial(t testing.TB, baseURL, id string, header http.Header) *websocket.Conn {
	t.Helper()
	url := "ws" + strings.TrimPrefix(baseURL, "http") + "/ws/download/" + id
	conn, resp, err := websocket.DefaultDialer.Dial(url, header)
	if err != nil {
		t.Fatalf("dial %s: %v (response %v)", url, err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Read reads one message, waiting at most a minute.
func Read(t testing.TB, conn *websocket.Conn) (Message, error) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(time.Minute))
	var m Message
	_, data, err := conn.ReadMessage()
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("message is not JSON: %q", data)
	}
	return m, nil
}

// Follow reads a live connection to its close and checks the contract's order: a snapshot
// first, then events whose seq is one above the one before, or a newer snapshot. It
// returns the messages and the close code. It may run in its own goroutine: it reports
// failures with Error, not Fatal.
func Follow(t testing.TB, conn *websocket.Conn) ([]Message, int) {
	t.Helper()
	return FollowAfter(t, conn)
}

// FollowAfter is Follow on a connection whose first messages, seen, were read already (a
// test that must see the snapshot before it moves the job on); the messages it returns
// begin with them.
func FollowAfter(t testing.TB, conn *websocket.Conn, seen ...Message) ([]Message, int) {
	t.Helper()
	msgs := seen
	for {
		m, err := Read(t, conn)
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return msgs, ce.Code
		} else if err != nil {
			t.Errorf("read after %d messages: %v", len(msgs), err)
			return msgs, 0
		}
		switch {
		case len(msgs) == 0 && m.Type != "snapshot":
			t.Errorf("first message is %q, want a snapshot", m.Type)
		case m.Type == "snapshot" && len(msgs) > 0 && m.Seq < msgs[len(msgs)-1].Seq:
			t.Errorf("snapshot %d is older than seq %d already seen", m.Seq, msgs[len(msgs)-1].Seq)
		case m.Type != "snapshot" && len(msgs) > 0 && m.Seq != msgs[len(msgs)-1].Seq+1:
			t.Errorf("event seq %d after %d: a gap or a repeat", m.Seq, msgs[len(msgs)-1].Seq)
		}
		msgs = append(msgs, m)
	}
}

// FinalStatus is the job status that a followed connection ended on.
func FinalStatus(msgs []Message) string {
	if len(msgs) == 0 {
		return ""
	}
	last := msgs[len(msgs)-1]
	if last.Type == "snapshot" && last.Job != nil {
		return string(last.Job.Status)
	}
	return last.Status
}
