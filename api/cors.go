package api

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
)

// cors lets pages on the configured extra origins call the API from a browser. The
// server's own page needs none of it; with no extra origins this adds nothing.
func cors(allowed []string) gin.HandlerFunc {
	origins := map[string]bool{}
	for _, o := range allowed {
		origins[strings.TrimRight(strings.ToLower(o), "/")] = true
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || !origins[strings.ToLower(origin)] {
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "ETag, Location, Retry-After")
		if c.Request.Method == http.MethodOptions && c.GetHeader("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
			h.Set("Access-Control-Allow-Headers", "Content-Type, If-None-Match, Idempotency-Key, Last-Event-ID")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
		}
	}
}
