package api

import "github.com/gin-gonic/gin"

// Test hooks, compiled into the package's tests only: what api_test needs to hold the OpenAPI
// document against the code.

// RoutesOf lists the routes s registers.
func RoutesOf(s *Server) gin.RoutesInfo { return s.router.Routes() }

// OpenAPIYAML is the document as written, with the line numbers validation errors name.
func OpenAPIYAML() []byte { return openAPIYAML }

// OpenAPIJSON is the document as /openapi.json serves it.
func OpenAPIJSON() ([]byte, error) { return openAPIJSON() }

// Handshakes is how many live connections the API sets up at once.
const Handshakes = handshakesDefault
