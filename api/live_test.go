package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/longhaul-dev/longhaul/api"
	"github.com/longhaul-dev/longhaul/internal/livetest"
	"github.com/longhaul-dev/longhaul/jobs"
)

func (e *env) dial(t *testing.T, id string, header http.Header) *websocket.Conn {
	t.Helper()
	return livetest.Dial(t, e.srv.URL, id, header)
}

func TestWebSocketSendsSnapshotThenEveryEventInOrder(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000, 70001)
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 5})
	conn := e.dial(t, id, nil)
	// The snapshot comes first and is read before the job moves on: read later, it could
	// already be the finished job's, and no event would follow it.
	snapshot, err := livetest.Read(t, conn)
	if err != nil {
		t.Fatal(err)
	}
	if snapshot.Type != "snapshot" || snapshot.Job == nil || snapshot.Job.ID != id || snapshot.Seq != snapshot.Job.Seq {
		t.Fatalf("first message = %+v, want the job's snapshot", snapshot)
	}

	done := make(chan struct{})
	var msgs []livetest.Message
	var code int
	go func() { defer close(done); msgs, code = livetest.FollowAfter(t, conn, snapshot) }()
	for p := 10.0; p < 100; p += 10 {
		e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: p})
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100})
	e.update(t, id, jobs.File{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100})
	if _, err := e.store.Complete(context.Background(), id, "a"); err != nil {
		t.Fatal(err)
	}
	<-done
	if code != websocket.CloseNormalClosure {
		t.Errorf("closed with %d, want 1000 after the final event", code)
	}
	for i, m := range msgs[1:] {
		if want := snapshot.Seq + int64(i) + 1; m.Seq != want || m.Type == "snapshot" {
			t.Errorf("message %d after the snapshot = %s at seq %d, want an event at seq %d", i, m.Type, m.Seq, want)
		}
	}
	last := msgs[len(msgs)-1]
	if last.Type != "job" || last.Status != "completed" || last.Seq != 14 {
		t.Errorf("last message = %+v, want the job's completed event at seq 14", last)
	}
}

func TestWebSocketOnAFinishedJobSendsTheSnapshotAndCloses(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70001)
	e.update(t, id, jobs.File{ID: 70001, Status: jobs.StatusUnavailable, Percent: 100})
	if _, err := e.store.Complete(context.Background(), id, "a"); err != nil {
		t.Fatal(err)
	}
	msgs, code := livetest.Follow(t, e.dial(t, id, nil))
	if len(msgs) != 1 || msgs[0].Job.Status != jobs.StatusFailed || code != 1000 {
		t.Errorf("got %d messages (first %+v) and close %d", len(msgs), msgs[0], code)
	}
}

func TestWebSocketUnknownJobAndBadOrigin(t *testing.T) {
	e := newEnv(t, api.Config{AllowedOrigins: []string{"https://app.example.com"}})
	conn := e.dial(t, jobs.NewID(), nil)
	m, err := livetest.Read(t, conn)
	if err != nil || m.Type != "error" || !strings.Contains(string(m.Error), `"not_found"`) {
		t.Errorf("first message = %+v, %v; want a not_found error", m, err)
	}
	_, err = livetest.Read(t, conn)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != api.CloseNotFound {
		t.Errorf("then %v, want close 4404", err)
	}

	id := e.newJob(t, 70000)
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/download/" + id
	_, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {"https://evil.example.com"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: err %v, response %v; want 403", err, resp)
	}
	for _, origin := range []string{"https://app.example.com", e.srv.URL} {
		e.dial(t, id, http.Header{"Origin": {origin}})
	}
	if resp, _ := e.do(t, "GET", "/ws/download/not-a-job", "", ""); resp.StatusCode != 400 {
		t.Errorf("malformed job id = %d, want 400 before any upgrade", resp.StatusCode)
	}
}

func TestSlowClientIsClosedAndOthersGetEverything(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)

	// The slow client reads nothing, through a small receive buffer, so the server's
	// queue for it fills.
	dialer := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			c.(*net.TCPConn).SetReadBuffer(4096)
		}
		return c, err
	}}
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/download/" + id
	slow, _, err := dialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	healthy := e.dial(t, id, nil)
	waitFor(t, "both clients watching", func() bool { return e.api.Watchers() == 2 })

	done := make(chan []livetest.Message)
	go func() { msgs, _ := livetest.Follow(t, healthy); done <- msgs }()
	// Large events fill every buffer between the server and the slow client quickly.
	bulk := strings.Repeat("x", 16<<10)
	const events = 600
	for i := 1; i <= events; i++ {
		e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: float64(i) / 10, Error: bulk})
	}
	waitFor(t, "the slow client dropped", func() bool { return e.api.Watchers() == 1 })
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100})
	if _, err := e.store.Complete(context.Background(), id, "a"); err != nil {
		t.Fatal(err)
	}
	msgs := <-done
	if got := msgs[len(msgs)-1]; got.Status != "completed" || got.Seq != events+3 {
		t.Errorf("healthy client ended with %+v, want completed at seq %d", got, events+3)
	}
}

func TestResyncAfterPubSubConnectionIsKilled(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	conn := e.dial(t, id, nil)
	done := make(chan []livetest.Message)
	go func() { msgs, _ := livetest.Follow(t, conn); done <- msgs }()
	ctx := context.Background()
	waitFor(t, "the hub subscribed", func() bool {
		return e.rdb.PubSubNumSub(ctx, jobs.Channel(id)).Val()[jobs.Channel(id)] == 1
	})
	if err := e.rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	// Events published while the hub reconnects are lost to pub/sub; the resync covers them.
	for p := 1.0; p <= 50; p++ {
		e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: p})
		time.Sleep(10 * time.Millisecond)
	}
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100})
	if _, err := e.store.Complete(ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	msgs := <-done
	snapshots := 0
	for _, m := range msgs {
		if m.Type == "snapshot" {
			snapshots++
		}
	}
	if last := msgs[len(msgs)-1]; last.Status != "completed" && (last.Job == nil || last.Job.Status != "completed") {
		t.Errorf("client ended with %+v, want the completed job", last)
	}
	if snapshots < 2 {
		t.Errorf("client got %d snapshots, want a resync after the connection loss", snapshots)
	}
}

func TestServerSentEvents(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	req, _ := http.NewRequest("GET", e.srv.URL+"/v1/download/"+id+"/events", nil)
	req.Header.Set("Last-Event-ID", "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Errorf("headers: %v", resp.Header)
	}
	go func() {
		waitFor(t, "stream watching", func() bool { return e.api.Watchers() == 1 })
		e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100})
		e.store.Complete(context.Background(), id, "a")
	}()
	var ids, types []string
	ended := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ids = append(ids, strings.TrimPrefix(line, "id: "))
		case strings.HasPrefix(line, "data: {\"type\""):
			var m livetest.Message
			json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m)
			types = append(types, m.Type)
		case line == "event: end":
			ended = true
		}
	}
	if strings.Join(ids, ",") != "1,2,3" || strings.Join(types, ",") != "snapshot,file,job" || !ended {
		t.Errorf("ids %v, types %v, ended %v; want a snapshot at 1, two events and the end", ids, types, ended)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestAClientThatSawLostWritesEndsOnTheRealState: a failover loses a job's last writes
// after a live client saw them (the record is put back as it was, as the new master has it,
// and the pub/sub connection drops, as it does in a failover). The client does not wait
// for a seq that will never come: the record gets a new epoch and a higher seq, the client a
// snapshot of it, and it ends on the job's real final state.
func TestAClientThatSawLostWritesEndsOnTheRealState(t *testing.T) {
	e := newEnv(t, api.Config{})
	ctx := context.Background()
	id := e.newJob(t, 70000, 70007)
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 10})
	conn := e.dial(t, id, nil)
	done := make(chan []livetest.Message)
	go func() { msgs, _ := livetest.Follow(t, conn); done <- msgs }()
	waitFor(t, "the watch", func() bool { return e.api.Watchers() == 1 })

	saved, err := e.rdb.Dump(ctx, jobs.RecordKey(id)).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The client sees these; the failover will lose them.
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 50})
	e.update(t, id, jobs.File{ID: 70007, Status: jobs.StatusProcessing, Percent: 40})
	before, _ := e.store.Get(ctx, id)
	time.Sleep(200 * time.Millisecond)
	if err := e.rdb.RestoreReplace(ctx, jobs.RecordKey(id), 0, saved).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the record repaired", func() bool {
		j, err := e.store.Get(ctx, id)
		return err == nil && j.Epoch != before.Epoch && j.Seq > before.Seq
	})
	// The worker goes on from what the record has now.
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusReady, Percent: 100, Size: 1})
	e.update(t, id, jobs.File{ID: 70007, Status: jobs.StatusUnavailable, Percent: 100})
	if _, err := e.store.Complete(ctx, id, "a"); err != nil {
		t.Fatal(err)
	}
	msgs := <-done
	final, _ := e.store.Get(ctx, id)
	last := msgs[len(msgs)-1]
	if last.Status != "completed" || last.Seq != final.Seq {
		t.Errorf("the client ended on %+v, want the job's real final state (completed at seq %d)", last, final.Seq)
	}
	epochs := map[string]bool{}
	for _, m := range msgs {
		if m.Type == "snapshot" && m.Job != nil {
			epochs[m.Job.Epoch] = true
		}
	}
	if len(epochs) < 2 {
		t.Errorf("the client got snapshots of epochs %v, want the repaired one too", epochs)
	}
}

// TestLiveChannelsRefuseAMalformedHeldSeqOrEpoch: what a client says it holds is checked
// before anything else happens, on both channels, with the field named.
func TestLiveChannelsRefuseAMalformedHeldSeqOrEpoch(t *testing.T) {
	e := newEnv(t, api.Config{})
	id := e.newJob(t, 70000)
	cases := []struct{ query, field string }{
		{"seq=-1", "seq"},
		{"seq=abc", "seq"},
		{"seq=1.5", "seq"},
		{"seq=9007199254740992", "seq"}, // 2^53: no client saw it, and the record could not go on
		{"seq=", "seq"},
		{"seq=3&epoch=", "epoch"},
		{"seq=3&epoch=a%20b", "epoch"},
		{"seq=3&epoch=" + strings.Repeat("A", 65), "epoch"},
	}
	for _, path := range []string{"/v1/download/" + id + "/events", "/ws/download/" + id} {
		for _, tc := range cases {
			t.Run(path+"?"+tc.query, func(t *testing.T) {
				resp, err := http.Get(e.srv.URL + path + "?" + tc.query)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				var body errorBody
				json.NewDecoder(resp.Body).Decode(&body)
				if resp.StatusCode != http.StatusBadRequest || body.Error.Code != "invalid_request" || body.Error.Field != tc.field {
					t.Errorf("= %d %+v, want 400 invalid_request on field %s", resp.StatusCode, body.Error, tc.field)
				}
			})
		}
	}
	if e.api.Watchers() != 0 {
		t.Errorf("%d watchers after refusals, want none", e.api.Watchers())
	}
}

// TestAWebSocketThatComesBackAboveTheRecordGetsANewEpoch: a client comes back holding a seq
// the record lost (a failover), in the record's epoch. Its first snapshot is of the
// repaired record: another epoch, above that seq. A client holding another epoch, or
// nothing, only gets the record as it is.
func TestAWebSocketThatComesBackAboveTheRecordGetsANewEpoch(t *testing.T) {
	e := newEnv(t, api.Config{})
	ctx := context.Background()
	id := e.newJob(t, 70000, 70007)
	e.update(t, id, jobs.File{ID: 70000, Status: jobs.StatusProcessing, Percent: 10})
	before, err := e.store.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	first := func(query string) livetest.Message {
		t.Helper()
		url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws/download/" + id + "?" + query
		conn, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var m struct {
			livetest.Message
			Epoch string `json:"epoch"`
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type != "snapshot" || m.Job == nil || m.Epoch != m.Job.Epoch {
			t.Fatalf("first message = %+v, want a snapshot with its epoch", m)
		}
		return m.Message
	}
	if m := first("seq=" + fmt.Sprint(before.Seq+5) + "&epoch=OTHER"); m.Seq != before.Seq || m.Job.Epoch != before.Epoch {
		t.Errorf("a client of another epoch got seq %d epoch %s, want the record as it is (%d, %s)",
			m.Seq, m.Job.Epoch, before.Seq, before.Epoch)
	}
	if m := first(""); m.Seq != before.Seq || m.Job.Epoch != before.Epoch {
		t.Errorf("a new client got seq %d epoch %s, want the record as it is (%d, %s)", m.Seq, m.Job.Epoch, before.Seq, before.Epoch)
	}
	m := first("seq=" + fmt.Sprint(before.Seq+5) + "&epoch=" + before.Epoch)
	if m.Seq <= before.Seq+5 || m.Job.Epoch == before.Epoch {
		t.Errorf("a client that saw seq %d got seq %d epoch %s, want a new epoch above it", before.Seq+5, m.Seq, m.Job.Epoch)
	}
}
