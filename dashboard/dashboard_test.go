package dashboard_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/dashboard"
	"github.com/longhaul-dev/longhaul/internal/redistest"
)

// TestPageLoadsNothingFromOutside: the dashboard must work on a network that reaches no
// outside host, so its page names none.
func TestPageLoadsNothingFromOutside(t *testing.T) {
	h := dashboard.New(redistest.Start(t, redistest.Options{}).Client(), dashboard.Options{ReadOnly: true})
	for _, path := range []string{"/monitoring/", "/monitoring/queues/downloads"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		page := string(body)
		if rec.Code != 200 || !strings.Contains(page, `<div id="root">`) {
			t.Fatalf("GET %s = %d %.200s", path, rec.Code, page)
		}
		if strings.Contains(page, "https://") || strings.Contains(page, "http://") {
			t.Errorf("the page at %s loads from another host:\n%s", path, page)
		}
		if !strings.Contains(page, `FLAG_READ_ONLY="true"`) {
			t.Errorf("the page at %s does not know it is read-only", path)
		}
	}
}
