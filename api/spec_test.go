package api_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync"
	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
)

// echoParam matches an Echo path parameter such as ":id".
var echoParam = regexp.MustCompile(`:([A-Za-z_][A-Za-z0-9_]*)`)

// TestSpecMatchesRoutes keeps openapi.yaml and api/routes.go in step: every
// route the router serves has an operation in the spec, and every operation
// in the spec is served.
func TestSpecMatchesRoutes(t *testing.T) {
	srv := api.New(api.Deps{Spec: fieldsync.OpenAPI})
	served := map[string]bool{}
	for _, r := range srv.Handler().Routes() {
		// Echo registers internal catch-alls (method "echo_route_not_found")
		// for groups with middleware; they are not part of the API.
		if !isHTTPMethod(r.Method) {
			continue
		}
		served[r.Method+" "+echoParam.ReplaceAllString(r.Path, "{$1}")] = true
	}

	doc, err := apitest.LoadSpec()
	if err != nil {
		t.Fatal(err)
	}
	specified := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			specified[method+" "+path] = true
		}
	}

	for _, r := range sortedKeys(served) {
		if !specified[r] {
			t.Errorf("route %s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range sortedKeys(specified) {
		if !served[r] {
			t.Errorf("operation %s is in openapi.yaml but not served", r)
		}
	}
	if len(served) == 0 {
		t.Fatal("the router serves no routes")
	}
}

func isHTTPMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestSpecIsValid checks openapi.yaml is a valid OpenAPI 3.0 document.
func TestSpecIsValid(t *testing.T) {
	doc, err := apitest.LoadSpec() // loads and validates
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if got, want := doc.OpenAPI, "3.0.3"; got != want {
		t.Errorf("openapi = %q, want %q", got, want)
	}

	// House rules every operation follows, so that a new one cannot
	// quietly drop them: every response names X-Request-ID, every error is
	// a problem document, and every authenticated operation lists 401.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.Security != nil && len(*op.Security) > 0 && op.Responses.Status(http.StatusUnauthorized) == nil {
				t.Errorf("%s requires a token but lists no 401", name)
			}
			for status, ref := range op.Responses.Map() {
				r := ref.Value
				if r.Headers["X-Request-ID"] == nil {
					t.Errorf("%s %s: no X-Request-ID header", name, status)
				}
				if status[0] != '4' && status[0] != '5' {
					continue
				}
				if len(r.Content) != 1 || r.Content.Get("application/problem+json") == nil {
					t.Errorf("%s %s: an error must be application/problem+json only", name, status)
				}
				if status == "401" && r.Headers["WWW-Authenticate"] == nil {
					t.Errorf("%s 401: no WWW-Authenticate header", name)
				}
				if status == "429" && r.Headers["Retry-After"] == nil {
					t.Errorf("%s 429: no Retry-After header", name)
				}
			}
		}
	}
}

// TestSpecServedAndChecked serves the spec, and sends a few representative
// calls whose responses apitest checks against it.
func TestSpecServedAndChecked(t *testing.T) {
	env := apitest.New(t, apitest.Options{})

	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/openapi.yaml"})
	apitest.Expect(t, res, http.StatusOK)
	if !bytes.Equal(res.Body, fieldsync.OpenAPI) {
		t.Errorf("GET /openapi.yaml served %d bytes that differ from openapi.yaml (%d bytes)", len(res.Body), len(fieldsync.OpenAPI))
	}
	if got, want := res.Header.Get("Content-Type"), "application/yaml"; got != want {
		t.Errorf("Content-Type = %q, want %q", got, want)
	}

	// Each call below is checked against openapi.yaml by env.Do.
	s := env.Login("rep1@demo.test")
	res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/me", Token: s.Access})
	apitest.Expect(t, res, http.StatusOK)

	for _, tc := range []struct {
		name   string
		req    apitest.Request
		status int
		code   string
	}{
		// A body that is not JSON is malformed.
		{"malformed login", apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: `{"email":`}, http.StatusBadRequest, "malformed"},
		// A login that names no device is invalid and says which field.
		{"invalid login", apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{"email": "rep1@demo.test", "password": "x"}}, http.StatusUnprocessableEntity, "invalid"},
		// No token: 401 with a WWW-Authenticate challenge (required by the spec).
		{"no token", apitest.Request{Method: http.MethodGet, Path: "/v1/me"}, http.StatusUnauthorized, "unauthorized"},
		// A rep may not create users.
		{"rep creates user", apitest.Request{Method: http.MethodPost, Path: "/v1/users", Token: s.Access, Body: map[string]any{}}, http.StatusForbidden, "forbidden"},
		// Someone outside the caller's scope does not exist.
		{"unknown user", apitest.Request{Method: http.MethodGet, Path: "/v1/users/00000000-0000-4000-8000-000000000000", Token: s.Access}, http.StatusNotFound, "not_found"},
		// A path the server does not have is skipped by the route check but must be a problem.
		{"no such route", apitest.Request{Method: http.MethodGet, Path: "/nope"}, http.StatusNotFound, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := env.Do(tc.req)
			apitest.Expect(t, res, tc.status)
			if got := res.Problem(t).Code; got != tc.code {
				t.Errorf("code = %q, want %q", got, tc.code)
			}
		})
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodGet, Path: path}), http.StatusOK)
	}
	res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/users", Token: s.Access})
	apitest.Expect(t, res, http.StatusOK)
	res = env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/teams", Token: s.Access})
	apitest.Expect(t, res, http.StatusOK)
}

// recorder stands in for a *testing.T, so a test can watch CheckSpec fail.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.failures = append(r.failures, "FATAL "+fmt.Sprintf(format, args...))
}

// TestCheckSpecCatches shows CheckSpec fails responses that do not conform
// to openapi.yaml, and passes one that does.
func TestCheckSpecCatches(t *testing.T) {
	const me = "/v1/me"
	user := `{"id":"6f1c7a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b","org_id":"7a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d",` +
		`"email":"rep1@demo.test","name":"Rep One","role":"rep","team_id":null,"active":true,"time_zone":"UTC",` +
		`"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}`
	jsonHeader := func(extra ...string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"req-1"}}
		for i := 0; i+1 < len(extra); i += 2 {
			h.Set(extra[i], extra[i+1])
		}
		return h
	}
	problem := `{"type":"urn:fieldsync:problem:unauthorized","title":"Unauthorized","status":401,"detail":"missing bearer token","code":"unauthorized","instance":"/v1/me"}`
	problemHeader := http.Header{"Content-Type": {"application/problem+json"}, "X-Request-Id": {"req-1"}}

	for _, tc := range []struct {
		name     string
		method   string
		path     string
		status   int
		header   http.Header
		body     string
		wantFail string // a substring of the failure; empty for none
	}{
		// A conforming response passes.
		{"conforming", http.MethodGet, me, 200, jsonHeader(), user, ""},
		// A required field missing from the body.
		{"missing field", http.MethodGet, me, 200, jsonHeader(), strings.Replace(user, `"name":"Rep One",`, "", 1), "name"},
		// A field of the wrong type.
		{"wrong type", http.MethodGet, me, 200, jsonHeader(), strings.Replace(user, `"active":true`, `"active":"yes"`, 1), "active"},
		// A field the spec does not know.
		{"extra field", http.MethodGet, me, 200, jsonHeader(), strings.Replace(user, `"role":"rep"`, `"role":"rep","password_hash":"x"`, 1), "password_hash"},
		// An id that is not a UUID.
		{"bad uuid", http.MethodGet, me, 200, jsonHeader(), strings.Replace(user, `"6f1c7a2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b"`, `"42"`, 1), "uuid"},
		// No X-Request-ID.
		{"no request id", http.MethodGet, me, 200, http.Header{"Content-Type": {"application/json"}}, user, "X-Request-ID"},
		// A status the operation does not list.
		{"undocumented status", http.MethodGet, me, 418, jsonHeader(), user, "status"},
		// An error that is not a problem document.
		{"plain error", http.MethodGet, me, 401, jsonHeader("WWW-Authenticate", `Bearer realm="fieldsync"`), `{"error":"no"}`, "Content-Type"},
		// A 401 without its challenge header.
		{"401 without challenge", http.MethodGet, me, 401, problemHeader, problem, "WWW-Authenticate"},
		// A problem whose code contradicts its status.
		{"wrong code", http.MethodGet, me, 401, withHeader(problemHeader, "WWW-Authenticate", `Bearer realm="fieldsync"`), strings.Replace(problem, `"code":"unauthorized"`, `"code":"forbidden"`, 1), "code"},
		// A route the spec does not describe.
		{"unknown route", http.MethodGet, "/v1/secret", 200, jsonHeader(), `{}`, "not in openapi.yaml"},
		// An unknown route the server also does not have is skipped.
		{"unrouted 404", http.MethodGet, "/v1/secret", 404, problemHeader, strings.NewReplacer("unauthorized", "not_found", "401", "404").Replace(problem), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, "http://127.0.0.1:1"+tc.path, nil)
			res := &apitest.Response{
				Response: &http.Response{StatusCode: tc.status, Header: tc.header, Request: req},
				Body:     []byte(tc.body),
			}
			rec := &recorder{TB: t}
			apitest.CheckSpec(rec, req, nil, res)
			for _, f := range rec.failures {
				t.Log(f)
			}
			switch {
			case tc.wantFail == "" && len(rec.failures) > 0:
				t.Errorf("CheckSpec failed a conforming response:\n%s", strings.Join(rec.failures, "\n"))
			case tc.wantFail != "" && len(rec.failures) == 0:
				t.Errorf("CheckSpec passed a response it should fail (%s)", tc.wantFail)
			case tc.wantFail != "" && !strings.Contains(strings.Join(rec.failures, "\n"), tc.wantFail):
				t.Errorf("CheckSpec failure does not mention %q:\n%s", tc.wantFail, strings.Join(rec.failures, "\n"))
			}
		})
	}
}

func withHeader(h http.Header, k, v string) http.Header {
	h = h.Clone()
	h.Set(k, v)
	return h
}
