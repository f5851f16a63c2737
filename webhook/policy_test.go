package webhook_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/longhaul-dev/longhaul/webhook"
)

func TestPermits(t *testing.T) {
	loopbackAllowed := webhook.Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	for _, tc := range []struct {
		addr   string
		policy webhook.Policy
		want   bool
	}{
		{"93.184.215.14", webhook.Policy{}, true},
		{"2606:4700:4700::1111", webhook.Policy{}, true},
		{"127.0.0.1", webhook.Policy{}, false},
		{"127.8.9.10", webhook.Policy{}, false},
		{"::1", webhook.Policy{}, false},
		{"10.0.0.1", webhook.Policy{}, false},
		{"172.16.5.4", webhook.Policy{}, false},
		{"192.168.1.1", webhook.Policy{}, false},
		{"100.64.0.1", webhook.Policy{}, false},
		{"169.254.169.254", webhook.Policy{}, false},
		{"fd00:ec2::254", webhook.Policy{}, false},
		{"fe80::1", webhook.Policy{}, false},
		{"0.0.0.0", webhook.Policy{}, false},
		{"::", webhook.Policy{}, false},
		{"224.0.0.1", webhook.Policy{}, false},
		{"255.255.255.255", webhook.Policy{}, false},
		{"::ffff:10.0.0.1", webhook.Policy{}, false},
		{"::ffff:127.0.0.1", webhook.Policy{}, false},
		{"64:ff9b::a00:1", webhook.Policy{}, false},
		{"127.0.0.1", loopbackAllowed, true},
		{"::ffff:127.0.0.1", loopbackAllowed, true},
		{"127.0.0.2", loopbackAllowed, false},
		{"::1", loopbackAllowed, false},
	} {
		if got := tc.policy.Permits(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Permits(%s) with allow %v = %v, want %v", tc.addr, tc.policy.Allow, got, tc.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		policy    webhook.Policy
		refused   string // a word of the refusal; empty when the URL passes
	}{
		{"https to a public address", "https://93.184.215.14/hooks", webhook.Policy{}, ""},
		{"http, not allowed", "http://93.184.215.14/hooks", webhook.Policy{}, "https"},
		{"http, allowed", "http://93.184.215.14/hooks", webhook.Policy{AllowHTTP: true}, ""},
		{"another scheme", "ftp://93.184.215.14/x", webhook.Policy{AllowHTTP: true}, "https"},
		{"relative", "/hooks", webhook.Policy{}, "absolute"},
		{"credentials", "https://user:pw@93.184.215.14/", webhook.Policy{}, "password"},
		{"private", "http://10.0.0.1/x", webhook.Policy{AllowHTTP: true}, "10.0.0.1"},
		{"loopback IPv6", "http://[::1]/", webhook.Policy{AllowHTTP: true}, "::1"},
		{"metadata", "http://169.254.169.254/", webhook.Policy{AllowHTTP: true}, "169.254.169.254"},
		{"metadata IPv6", "http://[fd00:ec2::254]/", webhook.Policy{AllowHTTP: true}, "fd00:ec2::254"},
		{"unspecified", "https://0.0.0.0/", webhook.Policy{}, "0.0.0.0"},
		{"a name of loopback", "https://localhost/hooks", webhook.Policy{}, "not public"},
		{"a name that does not resolve", "https://nowhere.invalid/hooks", webhook.Policy{}, "resolved"},
		{"too long", "https://93.184.215.14/" + strings.Repeat("a", 2048), webhook.Policy{}, "2048"},
		{"loopback, allowed", "http://127.0.0.1:9/x",
			webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.CheckURL(ctx, tc.url)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("CheckURL(%s) = %v, want it to pass", tc.url, err)
				}
				return
			}
			var refusal *webhook.URLError
			if !errors.As(err, &refusal) || !strings.Contains(refusal.Reason, tc.refused) {
				t.Fatalf("CheckURL(%s) = %v, want a refusal that says %q", tc.url, err, tc.refused)
			}
		})
	}
}

// TestControlChecksTheDialedAddress is DNS rebinding: a host that passed at initiate may
// resolve elsewhere at delivery; the check runs on the address actually dialed.
func TestControlChecksTheDialedAddress(t *testing.T) {
	strict := webhook.Policy{}
	for _, addr := range []string{"10.0.0.1:443", "[::1]:80", "169.254.169.254:80", "[::ffff:192.168.0.1]:443"} {
		if err := strict.Control("tcp", addr, nil); !errors.Is(err, webhook.ErrAddressRefused) {
			t.Errorf("Control(%s) = %v, want ErrAddressRefused", addr, err)
		}
	}
	if err := strict.Control("tcp", "93.184.215.14:443", nil); err != nil {
		t.Errorf("Control of a public address = %v", err)
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	// "localhost" is a name, resolved only when the client dials: it lands on loopback.
	byName := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	post := func(p webhook.Policy) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, byName, nil)
		resp, err := p.Client(2 * time.Second).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := post(webhook.Policy{AllowHTTP: true}); !errors.Is(err, webhook.ErrAddressRefused) {
		t.Errorf("a delivery to a name resolving to loopback = %v, want ErrAddressRefused", err)
	}
	allowed := webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	if err := post(allowed); err != nil {
		t.Errorf("a delivery to allowed loopback = %v", err)
	}
}

func TestClientFollowsNoRedirect(t *testing.T) {
	var followed bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed = true }))
	defer target.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	p := webhook.Policy{AllowHTTP: true, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}
	resp, err := p.Client(2*time.Second).Post(srv.URL, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || followed {
		t.Errorf("answer %d, redirect followed: %v; want the 307 itself", resp.StatusCode, followed)
	}
}
