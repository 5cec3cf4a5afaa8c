package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/fieldsync/fieldsync"
)

func specBytes(testing.TB) []byte { return fieldsync.OpenAPI }

// contract is openapi.yaml, loaded and validated once per test binary.
type contract struct {
	doc    *openapi3.T
	router routers.Router
	opts   *openapi3filter.Options
	err    error
}

var (
	contractOnce sync.Once
	theContract  contract
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// LoadSpec returns openapi.yaml parsed and validated. The document's
// servers are dropped, so that routes match on the path alone whatever
// host and port the test server listens on.
func LoadSpec() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(fieldsync.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("validate openapi.yaml: %w", err)
	}
	doc.Servers = nil
	return doc, nil
}

func loadContract() *contract {
	contractOnce.Do(func() {
		doc, err := LoadSpec()
		if err != nil {
			theContract.err = err
			return
		}
		router, err := legacy.NewRouter(doc)
		if err != nil {
			theContract.err = fmt.Errorf("route openapi.yaml: %w", err)
			return
		}
		theContract = contract{
			doc:    doc,
			router: router,
			opts: &openapi3filter.Options{
				// Tests send bad requests on purpose: only responses must
				// conform. Requests are never validated.
				ExcludeRequestBody:        true,
				ExcludeRequestQueryParams: true,
				AuthenticationFunc:        openapi3filter.NoopAuthenticationFunc,
				// A status the operation does not list is a failure too.
				IncludeResponseStatus: true,
				MultiError:            true,
				SchemaValidationOptions: []openapi3.SchemaValidationOption{
					openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidPattern.String())),
					// The failure prints the whole body; the schema dump adds only noise.
					openapi3.DisableSchemaErrorDetails(),
				},
			},
		}
	})
	return &theContract
}

// CheckSpec validates the response to req against openapi.yaml and fails
// the test (without stopping it) when the response does not conform: its
// status is not listed for the operation, a required header is missing or
// malformed, or its body does not match the schema of its content type.
// A request whose route openapi.yaml does not describe is a failure too,
// except when the server also answered that there is no such route (404),
// no such method (405), or refused the request before routing could tell
// (401 under /v1, where authentication runs before Echo's not-found
// handler); those answers must still be problem documents.
//
// Requests are not validated: tests send malformed ones on purpose.
// reqBody only makes failure messages easier to read.
func CheckSpec(t testing.TB, req *http.Request, reqBody []byte, res *Response) {
	t.Helper()
	c := loadContract()
	if c.err != nil {
		t.Fatalf("openapi.yaml: %v", c.err)
		return
	}
	if err := c.check(req, res); err != nil {
		t.Errorf("%s %s answered %d, which does not conform to openapi.yaml:\n%v\nrequest body: %s\nresponse headers: %v\nresponse body: %s",
			req.Method, req.URL.RequestURI(), res.StatusCode, err, clip(reqBody), res.Header, clip(res.Body))
	}
}

func (c *contract) check(req *http.Request, res *Response) error {
	if req.Method == http.MethodOptions && req.Header.Get("Access-Control-Request-Method") != "" {
		// CORS preflights are described once, in the document's
		// introduction, not per operation.
		return nil
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if !unrouted(req, res, err) {
			return fmt.Errorf("the route is not in openapi.yaml (%v)", err)
		}
		return c.checkProblem(res)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    req,
			PathParams: params,
			Route:      route,
			Options:    c.opts,
		},
		Status:  res.StatusCode,
		Header:  res.Header,
		Body:    io.NopCloser(bytes.NewReader(res.Body)),
		Options: c.opts,
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("operation %s %s: %w", route.Method, route.Path, err)
	}
	return nil
}

// unrouted reports whether a request that openapi.yaml has no operation
// for got an answer saying the server has none either.
func unrouted(req *http.Request, res *Response, routeErr error) bool {
	var re *routers.RouteError
	if !errors.As(routeErr, &re) {
		return false
	}
	switch res.StatusCode {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return true
	case http.StatusUnauthorized:
		return strings.HasPrefix(req.URL.Path, "/v1/")
	}
	return false
}

// checkProblem checks an answer to an unrouted request is a problem
// document with a request id.
func (c *contract) checkProblem(res *Response) error {
	if res.Header.Get("X-Request-ID") == "" {
		return errors.New("no X-Request-ID header")
	}
	if res.Request != nil && res.Request.Method == http.MethodHead {
		return nil
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		return fmt.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var v any
	if err := json.Unmarshal(res.Body, &v); err != nil {
		return fmt.Errorf("problem body: %w", err)
	}
	if err := c.doc.Components.Schemas["Problem"].Value.VisitJSON(v, openapi3.VisitAsResponse(), openapi3.MultiErrors()); err != nil {
		return fmt.Errorf("problem body does not match schema Problem: %w", err)
	}
	return nil
}

func clip(b []byte) string {
	const max = 4 << 10
	if len(b) == 0 {
		return "(none)"
	}
	if len(b) > max {
		return string(b[:max]) + "…"
	}
	return string(b)
}
