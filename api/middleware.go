package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

const (
	ctxRequestID = "fieldsync.request_id"
	ctxPrincipal = "fieldsync.principal"
)

// withRequestID takes a sane X-Request-ID from the client or makes one, and
// echoes it in the response so a phone's bug report can name it.
func withRequestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if id == "" || len(id) > 64 || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
			id = uuid.NewString()
		}
		c.Set(ctxRequestID, id)
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

func requestID(c echo.Context) string {
	id, _ := c.Get(ctxRequestID).(string)
	return id
}

// recoverPanics turns a panic into a 500 problem, logged with its stack by
// the error handler.
func recoverPanics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				err = errors.Join(errors.New("panic"), errorFromPanic(r))
			}
		}()
		return next(c)
	}
}

func errorFromPanic(r any) error {
	if err, ok := r.(error); ok {
		return err
	}
	return errors.New(strings.TrimSpace(strings.ReplaceAll(stringOf(r), "\n", " ")))
}

func stringOf(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return "non-error panic value"
}

// limitBody refuses bodies over the limit before reading them, and caps the
// reader for bodies whose length is not declared.
func (s *Server) limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.ContentLength > s.bodyLimit {
			return models.Errorf(models.CodeTooLarge, "request body is larger than %d bytes", s.bodyLimit)
		}
		req.Body = http.MaxBytesReader(c.Response(), req.Body, s.bodyLimit)
		return next(c)
	}
}

// deadline gives the request's context a deadline — pushTimeout on
// pushRoutes, requestTimeout elsewhere — whose cause is errDeadline. The
// store's waits end with it (on PostgreSQL the transaction's
// statement_timeout and lock_timeout are set from it too), its transaction
// rolls back (database/sql never commits a transaction whose context has
// ended), and the request answers 503 with Retry-After instead of
// committing after the client has given up or the write timeout has
// closed the connection. A handler's own 4xx verdict stands.
func (s *Server) deadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		d := s.requestTimeout
		if pushRoutes[[2]string{c.Request().Method, c.Path()}] {
			d = s.pushTimeout
		}
		req := c.Request()
		ctx, cancel := context.WithTimeoutCause(req.Context(), d, errDeadline)
		defer cancel()
		c.SetRequest(req.WithContext(ctx))
		err := next(c)
		// The error handler and the access log run on the request as it
		// came, whose context this cancel does not end.
		c.SetRequest(c.Request().WithContext(req.Context()))
		if err == nil || req.Context().Err() != nil || !errors.Is(context.Cause(ctx), errDeadline) {
			return err
		}
		var me *models.Error
		if errors.As(err, &me) && me.Code != models.CodeInternal && me.Code != models.CodeUnavailable {
			return err
		}
		s.log.WarnContext(req.Context(), "request deadline passed", slog.String("request_id", requestID(c)),
			slog.String("route", c.Path()), slog.Duration("deadline", d), slog.Any("err", err))
		return errDeadline
	}
}

// errDeadline is the cause of a request context's end at its deadline: the
// server's doing, a 503 the client retries, unlike a client that hung up
// (499).
var errDeadline = models.Errorf(models.CodeUnavailable, "the request did not finish within its deadline (the database is busy); retry")

// accessLog logs one line per request and records its metrics. It runs the
// error handler itself so the status it logs is the one sent.
func (s *Server) accessLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		took := time.Since(start)
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		status := c.Response().Status
		s.metrics.Request(c.Request().Method, route, status, took)
		attrs := []slog.Attr{
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Request().Method),
			slog.String("route", route),
			slog.Int("status", status),
			// Milliseconds as a number: slog writes a Duration in JSON
			// as integer nanoseconds, which no dashboard reads as is.
			slog.Float64("latency_ms", float64(took.Microseconds())/1000),
			slog.Int64("bytes", c.Response().Size),
			slog.String("client", c.RealIP()),
		}
		if p, ok := c.Get(ctxPrincipal).(models.Principal); ok {
			attrs = append(attrs, slog.String("user", p.UserID.String()), slog.String("org", p.OrgID.String()))
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		}
		s.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
		return nil
	}
}

// requireAuth verifies the bearer token and that its session is live, and
// stores the caller as the request's principal.
func (s *Server) requireAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// Whatever it answers, an authenticated route's answer is the
		// caller's alone: no cache may keep it.
		c.Response().Header().Set("Cache-Control", "no-store")
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, raw, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "" {
			return models.Errorf(models.CodeUnauthorized, "missing bearer token")
		}
		v, err := s.tokens.Verify(strings.TrimSpace(raw))
		if err != nil {
			return err
		}
		p, err := s.store.LivePrincipal(c.Request().Context(), v.OrgID, v.SessionID, v.UserID)
		if err != nil {
			return err
		}
		c.Set(ctxPrincipal, p)
		// The store stamps the audit rows it writes for this request
		// with the caller (models.ActorFrom).
		c.SetRequest(c.Request().WithContext(models.WithActor(c.Request().Context(), p.UserID)))
		return next(c)
	}
}

// securityHeaders sets the headers every answer carries: no MIME
// sniffing, no Referer to other sites, HSTS when configured, and CORS
// headers for a listed origin. It runs before routing, so 404s and
// preflights carry them too.
func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		if s.hsts != "" {
			h.Set("Strict-Transport-Security", s.hsts)
		}
		if origin := c.Request().Header.Get("Origin"); len(s.cors) > 0 {
			h.Add("Vary", "Origin")
			if s.cors[origin] {
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Expose-Headers", "X-Request-ID, Retry-After, WWW-Authenticate")
			}
		}
		return next(c)
	}
}

// corsPreflight answers a CORS preflight from a listed origin with 204 and
// what it may send. Credentials mode is not allowed: the API takes bearer
// tokens, not cookies. Preflights from other origins, or with no origins
// listed, go on to the router and get no CORS headers, which the browser
// reads as a refusal.
func (s *Server) corsPreflight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if req.Method != http.MethodOptions || req.Header.Get("Access-Control-Request-Method") == "" || !s.cors[req.Header.Get("Origin")] {
			return next(c)
		}
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		return c.NoContent(http.StatusNoContent)
	}
}

func principal(c echo.Context) models.Principal {
	p, _ := c.Get(ctxPrincipal).(models.Principal)
	return p
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
