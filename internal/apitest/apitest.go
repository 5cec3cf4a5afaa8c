// Package apitest runs the real router over a real, fresh database for
// HTTP tests, seeds the demo organisation, and checks every response it
// receives against openapi.yaml.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/auth"
	"github.com/fieldsync/fieldsync/demo"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/store"
	"github.com/fieldsync/fieldsync/store/storetest"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// Secret is the JWT secret test servers sign with.
const Secret = "test-secret-test-secret-test-secret-0123"

// Clock is a settable clock shared by the server and the test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now reads the clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Options tune New.
type Options struct {
	// Deps is applied over the defaults before the server is built.
	Deps func(*api.Deps)
	// NoSeed skips seeding the demo organisation.
	NoSeed bool
	// BaseContext, if set, is every request's parent context, as
	// http.Server.BaseContext.
	BaseContext func() context.Context
	// BusyTimeout is SQLite's wait for another process's write lock; 0
	// keeps the store's default.
	BusyTimeout time.Duration
	// PushWait is the store's push slot hook (store.Options.PushWait).
	PushWait func(time.Duration)
	// PushShareWait is how long a push beyond its user's share of the
	// push slots waits before it is refused; 0 keeps the store's default.
	PushShareWait time.Duration
	// DatabaseURL, if set, rewrites the URL the store opens
	// (storetest.Wire.URL).
	DatabaseURL func(string) string
}

// Env is a running test server.
type Env struct {
	T         testing.TB
	DB        *store.DB
	Clock     *Clock
	Server    *httptest.Server
	Passwords *auth.Passwords
	Tokens    *auth.Tokens
}

// New starts the real router on a fresh database with the demo
// organisation seeded (passwords demo.Password).
func New(t testing.TB, opt Options) *Env {
	t.Helper()
	clock := NewClock(time.Now().UTC().Truncate(time.Second))
	db := storetest.MustOpenDBWith(t, storetest.Options{Now: clock.Now, BusyTimeout: opt.BusyTimeout, PushWait: opt.PushWait, PushShareWait: opt.PushShareWait,
		URL: opt.DatabaseURL})
	pw := auth.NewPasswords(auth.TestArgon2)
	tokens, err := auth.NewTokens(Secret, nil, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	if !opt.NoSeed {
		if _, err := demo.Seed(context.Background(), db, pw, clock.Now()); err != nil {
			t.Fatalf("seed demo: %v", err)
		}
	}
	d := api.Deps{
		Store: db.People(), Sync: engine.New(db.Feed(), sales.Entities(), clock.Now, nil), WatermelonStore: db.Feed(),
		Notifications: db.Outbox(), Idempotency: db.Idempotency(), Audit: db.AuditLog(), Reports: db.Reports(), Tokens: tokens, Passwords: pw, Now: clock.Now, Spec: specBytes(t),
		Ready: db.Ready,
	}
	if opt.Deps != nil {
		opt.Deps(&d)
	}
	srv := httptest.NewUnstartedServer(api.New(d).Handler())
	if opt.BaseContext != nil {
		srv.Config.BaseContext = func(net.Listener) context.Context { return opt.BaseContext() }
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return &Env{T: t, DB: db, Clock: clock, Server: srv, Passwords: pw, Tokens: tokens}
}

// Response is a received response with its body read.
type Response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v, failing the test if it cannot.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v\n%s", r.Request.URL.Path, err, r.Body)
	}
}

// Problem decodes a problem+json body.
func (r *Response) Problem(t testing.TB) api.Problem {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s %s: Content-Type = %q, want application/problem+json; body %s", r.Request.Method, r.Request.URL.Path, ct, r.Body)
	}
	var p api.Problem
	r.JSON(t, &p)
	return p
}

// Request describes one call. Body may be a string or []byte (sent as is)
// or any other value (sent as JSON).
type Request struct {
	Method, Path string
	Token        string
	Body         any
	Header       http.Header
}

// Do sends a request, checks the response against openapi.yaml, and
// returns it with its body read.
func (e *Env) Do(r Request) *Response {
	e.T.Helper()
	var body io.Reader
	var raw []byte
	switch b := r.Body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			e.T.Fatalf("encode body: %v", err)
		}
	}
	if raw != nil {
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(context.Background(), r.Method, e.Server.URL+r.Path, body)
	if err != nil {
		e.T.Fatalf("new request: %v", err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	res, err := e.Server.Client().Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.T.Fatalf("read body: %v", err)
	}
	res.Request = req
	out := &Response{Response: res, Body: b}
	CheckSpec(e.T, req, raw, out)
	return out
}

// Session is a logged-in user on one device.
type Session struct {
	Access, Refresh string
	UserID          uuid.UUID
	DeviceID        uuid.UUID
}

// Login logs email in with the demo password on a new device.
func (e *Env) Login(email string) Session {
	e.T.Helper()
	return e.LoginDevice(email, uuid.New())
}

// LoginDevice logs email in with the demo password on a given device.
func (e *Env) LoginDevice(email string, device uuid.UUID) Session {
	e.T.Helper()
	res := e.Do(Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: map[string]any{
		"email": email, "password": demo.Password, "device_id": device.String(),
	}})
	if res.StatusCode != http.StatusOK {
		e.T.Fatalf("login %s: status %d: %s", email, res.StatusCode, res.Body)
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		User         struct {
			ID uuid.UUID `json:"id"`
		} `json:"user"`
	}
	res.JSON(e.T, &tr)
	return Session{Access: tr.AccessToken, Refresh: tr.RefreshToken, UserID: tr.User.ID, DeviceID: device}
}

// Expect fails the test unless res has the wanted status.
func Expect(t testing.TB, res *Response, status int) {
	t.Helper()
	if res.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body %s", res.Request.Method, res.Request.URL.Path,
			res.StatusCode, status, strings.TrimSpace(string(res.Body)))
	}
}
