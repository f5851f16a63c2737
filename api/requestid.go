package api

import (
	"net/netip"

	"github.com/gin-gonic/gin"
	"github.com/longhaul-dev/longhaul/requestid"
)

// requestIDs gives every request an id, in its context (so that every log line of it carries
// the id, and the job it creates too) and in the X-Request-ID of its answer. A trusted proxy
// names the request itself, so that its log and ours share the id; from anyone else the
// header changes nothing, as X-Forwarded-For does not.
func requestIDs(trusted []netip.Prefix) gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(requestid.Header)
		if !requestid.Valid(id) || !fromTrusted(c.RemoteIP(), trusted) {
			id = requestid.New()
		}
		c.Header(requestid.Header, id)
		c.Request = c.Request.WithContext(requestid.With(c.Request.Context(), id))
	}
}

// fromTrusted reports whether the peer at ip is one of the trusted proxies.
func fromTrusted(ip string, trusted []netip.Prefix) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// prefixesOf reads trusted proxies as the configuration gives them: addresses and CIDR
// ranges. The configuration reader has checked them; one that does not parse trusts nobody.
func prefixesOf(proxies []string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range proxies {
		if prefix, err := netip.ParsePrefix(p); err == nil {
			out = append(out, prefix.Masked())
		} else if addr, err := netip.ParseAddr(p); err == nil {
			addr = addr.Unmap()
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
		}
	}
	return out
}
