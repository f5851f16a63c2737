package webhook_test

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/webhook"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func secretOf(b byte) string {
	return "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(b), 32)))
}

// TestSignaturesVerify checks signatures with the Standard Webhooks library: with two
// secrets (a rotation), a receiver that knows either one verifies, and one that knows
// neither does not.
func TestSignaturesVerify(t *testing.T) {
	oldSecret, newSecret := secretOf('o'), secretOf('n')
	signer, err := webhook.ParseSecrets(newSecret + "  " + oldSecret)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"job_id":"dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB","status":"completed"}`)
	at := time.Now()
	header := http.Header{}
	header.Set("webhook-id", "msg_dl_01JH3W7ZK8Q4X9V2N6M5R0T8YB_finished")
	header.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	header.Set("webhook-signature", signer.Sign(header.Get("webhook-id"), at, body))
	if n := len(strings.Fields(header.Get("webhook-signature"))); n != 2 {
		t.Errorf("webhook-signature has %d signatures, want one per secret: %s", n, header.Get("webhook-signature"))
	}
	for _, secret := range []string{oldSecret, newSecret} {
		v, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(body, header); err != nil {
			t.Errorf("a receiver with one of the secrets: %v", err)
		}
	}
	stranger, _ := standardwebhooks.NewWebhook(secretOf('x'))
	if err := stranger.Verify(body, header); err == nil {
		t.Error("a receiver with another secret verified the delivery")
	}
	if err := mustVerifier(t, newSecret).Verify([]byte(`{"status":"failed"}`), header); err == nil {
		t.Error("a changed body verified")
	}
}

func mustVerifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestParseSecretsRefuses(t *testing.T) {
	for _, s := range []string{"", "   ", "whsec_", "whsec_!!!", "c2VjcmV0", secretOf('a') + " nope",
		"whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))} {
		if _, err := webhook.ParseSecrets(s); err == nil {
			t.Errorf("ParseSecrets(%q) took it", s)
		}
	}
}
