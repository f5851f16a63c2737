package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/longhaul-dev/longhaul/api"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/schema_validation"
	"github.com/pb33f/libopenapi-validator/strict"
	"github.com/pb33f/libopenapi/datamodel/high/base"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// contract is the API's OpenAPI document (api/openapi.yaml) as the tests hold the code to it:
// env.do checks every request a test sends, and its answer, against it.
type contract struct {
	doc       libopenapi.Document
	model     *v3.Document
	validator validator.Validator
	options   *config.ValidationOptions
}

// everyAnswer are the headers that go on every answer (securityHeaders, the CORS
// middleware), which the document describes once rather than on each of them.
var everyAnswer = []string{
	"X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy", "Content-Security-Policy",
	"Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
}

// newContract reads the document. Its validator is strict: a body field or a response header
// that the document does not name fails, though the document's schemas stay open for growth.
func newContract(t testing.TB) *contract {
	t.Helper()
	doc, err := libopenapi.NewDocument(api.OpenAPIYAML())
	if err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	model, err := doc.BuildV3Model()
	if err != nil {
		t.Fatalf("openapi.yaml is not a usable OpenAPI 3 model: %v", err)
	}
	opts := []config.Option{config.WithFormatAssertions(), config.WithStrictMode(),
		config.WithStrictIgnoredHeadersExtra(everyAnswer...)}
	v := validator.NewValidatorFromV3Model(&model.Model, opts...)
	v.SetDocument(doc)
	return &contract{doc: doc, model: &model.Model, validator: v, options: config.NewValidationOptions(opts...)}
}

// check reports, as errors of t, every way in which a request and its answer depart from the
// document. Both bodies have been read already, so they are passed as bytes.
func (c *contract) check(t testing.TB, req *http.Request, reqBody string, resp *http.Response, respBody []byte) {
	t.Helper()
	switch {
	case req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "":
		return // a CORS preflight is the browser's, answered on any path: no operation of the API
	case strings.HasPrefix(req.URL.Path, "/monitoring/"):
		// The dashboard's pages and API are asynqmon's, and the validator's router takes
		// /monitoring/ for /monitoring; TestDocumentNamesEveryRoute holds its routes.
		return
	}
	sent := func() *http.Request {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(strings.NewReader(reqBody))
		return r
	}
	answer := *resp
	answer.Body = io.NopCloser(bytes.NewReader(respBody))
	// ValidateHttpRequestResponse in its two halves, so that each finding is known to be the
	// request's or the answer's.
	_, asked := c.validator.ValidateHttpRequest(sent())
	_, answered := c.validator.ValidateHttpResponse(sent(), &answer)
	for _, p := range c.departures(req, resp, respBody, asked, answered) {
		t.Errorf("%s %s answered %d, which departs from api/openapi.yaml: %s", req.Method, req.URL.RequestURI(), resp.StatusCode, p)
	}
}

// departures sorts the validator's findings into what the contract allows and what it does
// not:
//   - A path the document lacks is a route it fails to describe, unless the API answered as
//     it does for any unknown path: 404 not_found under /v1/ and /ws/; other paths are the
//     dashboard's own, which the document does not cover.
//   - A method the document lacks on a path it has must be refused with 405, its Allow
//     naming the methods the document has there.
//   - A request the document calls invalid may be one a test sends on purpose: the API must
//     then refuse it with a 4xx. Accepting it means the document forbids what the code takes.
//     A query parameter the operation does not name is no such request: the API ignores
//     those, as the document says.
//   - Anything else wrong with the answer is drift.
func (c *contract) departures(req *http.Request, resp *http.Response, body []byte, asked, answered []*verrors.ValidationError) []string {
	var found []string
	for _, e := range answered {
		p := req.URL.Path
		switch {
		case e.IsOperationMissingError() && resp.StatusCode == http.StatusMethodNotAllowed:
			if allow, want := resp.Header.Get("Allow"), c.allowed(p); allow != want {
				found = append(found, fmt.Sprintf("405 with Allow %q, but the document's methods here are %q", allow, want))
			}
		case e.IsPathMissingError() || e.IsOperationMissingError():
			if (strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/ws/")) && !answersUnknownPath(resp, body) {
				found = append(found, "the document has no "+req.Method+" "+p+", yet it is routed: "+describe(e))
			}
		case e.ValidationType == verrors.StrictValidationType && req.URL.Path == "/openapi.json":
			// The document's own body: its schema does not spell out OpenAPI's, which
			// TestOpenAPIDocumentIsValid holds it to.
		default:
			found = append(found, describe(e))
		}
	}
	for _, e := range asked {
		refused := resp.StatusCode >= 400 && resp.StatusCode < 500
		ignored := e.ValidationType == verrors.StrictValidationType && e.ValidationSubType == verrors.StrictSubTypeQuery
		if !e.IsPathMissingError() && !e.IsOperationMissingError() && !refused && !ignored {
			found = append(found, "the API took a request the document calls invalid: "+describe(e))
		}
	}
	return found
}

// allowed is the Allow header the document implies for a request path: the methods of every
// path template it matches (the router's patterns overlap, as /v1/download/{job_id} and
// /v1/download/initiate do), HEAD beside every GET, in the router's order.
func (c *contract) allowed(path string) string {
	methods := map[string]bool{}
	for template, item := range c.model.Paths.PathItems.FromOldest() {
		if !matchesTemplate(template, path) {
			continue
		}
		for method := range item.GetOperations().FromOldest() {
			methods[strings.ToUpper(method)] = true
			if strings.EqualFold(method, http.MethodGet) && !liveChannel(template) {
				methods[http.MethodHead] = true
			}
		}
	}
	var allow []string
	for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"} {
		if methods[m] {
			allow = append(allow, m)
		}
	}
	return strings.Join(allow, ", ")
}

// liveChannel reports whether a path template is one of the two live channels, the only
// GETs that do not answer HEAD.
func liveChannel(template string) bool {
	return strings.HasSuffix(template, "/events") || strings.HasPrefix(template, "/ws/")
}

// matchesTemplate reports whether path fits a path template of the document, segment by
// segment, a {parameter} standing for any one segment.
func matchesTemplate(template, path string) bool {
	want, got := strings.Split(template, "/"), strings.Split(path, "/")
	if len(want) != len(got) {
		return false
	}
	for i, w := range want {
		if w != got[i] && !(strings.HasPrefix(w, "{") && w != "" && got[i] != "") {
			return false
		}
	}
	return true
}

// answersUnknownPath reports whether an answer is the API's to a path it does not route.
func answersUnknownPath(resp *http.Response, body []byte) bool {
	var got struct {
		Error struct{ Code string } `json:"error"`
	}
	return resp.StatusCode == http.StatusNotFound && json.Unmarshal(body, &got) == nil && got.Error.Code == api.CodeNotFound
}

// describe is one finding of the validator, with the lines of the document it names.
func describe(e *verrors.ValidationError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s)", e.Message, e.Reason)
	if e.SpecLine > 0 {
		fmt.Fprintf(&b, " [openapi.yaml line %d]", e.SpecLine)
	}
	for _, f := range e.SchemaValidationErrors {
		fmt.Fprintf(&b, "; %s", f.Reason)
		if f.FieldPath != "" {
			fmt.Fprintf(&b, " at %s", f.FieldPath)
		}
		if f.Line > 0 {
			fmt.Fprintf(&b, " [openapi.yaml line %d]", f.Line)
		}
	}
	return b.String()
}

// schema is the component schema of the document named name.
func (c *contract) schema(t testing.TB, name string) *base.Schema {
	t.Helper()
	proxy := c.model.Components.Schemas.GetOrZero(name)
	if proxy == nil {
		t.Fatalf("the document has no schema %s", name)
	}
	s, err := proxy.BuildSchema()
	if err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	return s
}

// checkMessage reports how one JSON message (a live event, an error frame) departs from the
// document's schema named name, strictly: a field the schema does not name fails too.
func (c *contract) checkMessage(t testing.TB, name string, msg []byte) {
	t.Helper()
	s := c.schema(t, name)
	if ok, errs := schema_validation.NewSchemaValidator(config.WithFormatAssertions()).ValidateSchemaBytes(s, msg); !ok {
		for _, e := range errs {
			t.Errorf("%s does not match schema %s: %s", msg, name, describe(e))
		}
		return
	}
	var decoded any
	if err := json.Unmarshal(msg, &decoded); err != nil {
		t.Fatalf("%s: %v", msg, err)
	}
	result := strict.ValidateBody(s, decoded, strict.DirectionResponse, c.options, 3.1)
	for _, u := range result.UndeclaredValues {
		t.Errorf("%s has %s (%s), which schema %s does not name", msg, u.Name, u.Path, name)
	}
}
