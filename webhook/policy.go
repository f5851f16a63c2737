// Package webhook delivers a job's webhooks: it checks where a callback may go, signs each
// delivery as the Standard Webhooks specification says, and POSTs it from a task of its own
// (tasks.TypeWebhook), recording in the job how the delivery of its end fares.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// ErrAddressRefused is the error of a dial to an address no callback may reach.
var ErrAddressRefused = errors.New("the callback's address is loopback, private, link-local or otherwise not public")

// URLError says why a callback URL is refused, in words a client can act on.
type URLError struct{ Reason string }

func (e *URLError) Error() string { return e.Reason }

// maxURLLength bounds a callback URL; browsers and proxies agree on about this much.
const maxURLLength = 2048

// resolveTimeout bounds the look-up of a callback's host at initiate.
const resolveTimeout = 3 * time.Second

// notPublic are ranges beyond what netip's predicates name that no callback may reach: the
// carrier-grade NAT range, "this network", and IPv6 prefixes that carry IPv4 addresses
// (NAT64, 6to4), which could smuggle a private one.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2002::/16"),
}

// Policy says where callbacks may go: https to public addresses, plus what the operator
// allows. Its zero value allows exactly that.
type Policy struct {
	// AllowHTTP lets callbacks use plain http.
	AllowHTTP bool
	// Allow are ranges a callback may reach although they are not public (a receiver on
	// the same network, or on loopback in tests).
	Allow []netip.Prefix
	// Resolver looks hosts up. If nil, net.DefaultResolver is used.
	Resolver *net.Resolver
}

// Permits reports whether a callback may reach addr: a public unicast address (not
// loopback, private, link-local, multicast, unspecified, nor the cloud metadata addresses
// 169.254.169.254 and fd00:ec2::254, which are link-local and private), or one the operator
// allows.
func (p Policy) Permits(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, allowed := range p.Allow {
		if allowed.Contains(addr) {
			return true
		}
	}
	if !addr.IsGlobalUnicast() || addr.IsPrivate() {
		return false
	}
	for _, r := range notPublic {
		if r.Contains(addr) {
			return false
		}
	}
	return true
}

// CheckURL checks a callback URL as a client sent it: an absolute https (or allowed http)
// URL without credentials, whose host resolves only to addresses the policy permits. Its
// refusals are *URLError; a failure of the look-up itself is a *URLError too, since the
// client named the host.
func (p Policy) CheckURL(ctx context.Context, raw string) error {
	if len(raw) > maxURLLength {
		return &URLError{fmt.Sprintf("callback_url must be at most %d characters", maxURLLength)}
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return &URLError{"callback_url must be an absolute URL like https://hooks.example.com/longhaul"}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return &URLError{"callback_url must use https; this server sends no webhooks over plain http"}
	default:
		return &URLError{"callback_url must be an https URL"}
	}
	if u.User != nil {
		return &URLError{"callback_url must not carry a user name or password; put a secret in the path, or verify the signature"}
	}
	if u.Fragment != "" {
		return &URLError{"callback_url must not have a fragment (#...)"}
	}
	addrs, err := p.lookup(ctx, u.Hostname())
	if err != nil {
		return &URLError{fmt.Sprintf("callback_url's host %q could not be resolved", u.Hostname())}
	}
	for _, a := range addrs {
		if !p.Permits(a) {
			return &URLError{fmt.Sprintf("callback_url's host resolves to %s, which is loopback, private, link-local "+
				"or otherwise not public; callbacks go to public addresses only", a.Unmap())}
		}
	}
	return nil
}

func (p Policy) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = fmt.Errorf("no address for %s", host)
	}
	return addrs, err
}

// Control is a net.Dialer's Control hook that refuses to connect to an address the policy
// does not permit. It sees the address actually dialed, after every look-up, so a host that
// resolved to a public address at initiate and to a private one now (DNS rebinding) is
// refused at delivery.
func (p Policy) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s %s: %w", network, address, ErrAddressRefused)
	}
	if !p.Permits(ap.Addr()) {
		return fmt.Errorf("dial %s: %w", ap.Addr().Unmap(), ErrAddressRefused)
	}
	return nil
}

// Client is the HTTP client deliveries go through: every connection it makes passes
// Control, it follows no redirect (a redirect could lead anywhere; the receiver's answer is
// taken as it is), uses no proxy from the environment (the proxy's address would be the one
// checked), and gives each request at most timeout.
func (p Policy) Client(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: timeout, Control: p.Control}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   2,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
