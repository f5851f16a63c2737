package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// secretPrefix starts a secret in the form the Standard Webhooks specification gives it.
const secretPrefix = "whsec_"

// minSecretBytes: the specification asks for 24 to 64 random bytes.
const minSecretBytes = 24

// Signer signs deliveries with one or more secrets. With several, every delivery carries a
// signature of each, so that receivers can move from the old secret to the new one at
// their own pace (key rotation).
type Signer struct {
	keys [][]byte
}

// ParseSecrets reads space-separated secrets, each "whsec_" and the base64 of 24 to 64
// random bytes, the first the newest. An empty string gives an error.
func ParseSecrets(s string) (*Signer, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil, errors.New("no secret")
	}
	sg := &Signer{}
	for i, f := range fields {
		raw, ok := strings.CutPrefix(f, secretPrefix)
		key, err := base64.StdEncoding.DecodeString(raw)
		if !ok || err != nil || len(key) < minSecretBytes || len(key) > 64 {
			return nil, fmt.Errorf("secret %d is not whsec_ and the base64 of 24 to 64 bytes", i+1)
		}
		sg.keys = append(sg.keys, key)
	}
	return sg, nil
}

// Sign returns the webhook-signature header of a delivery: "v1," and the base64 of
// HMAC-SHA256 over id.timestamp.body, once per secret, separated by spaces.
func (s *Signer) Sign(id string, at time.Time, body []byte) string {
	content := id + "." + strconv.FormatInt(at.Unix(), 10) + "."
	sigs := make([]string, len(s.keys))
	for i, key := range s.keys {
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(content))
		mac.Write(body)
		sigs[i] = "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	}
	return strings.Join(sigs, " ")
}
