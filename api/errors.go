package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// statusOf is the one table from error code to HTTP status. Every code
// declared in models has a row (TestEveryCodeHasAStatus), so no code
// answers 500 by omission. The rejection codes of a sync push normally
// travel inside a 200, one per mutation; they are here for the handler
// that returns one as its error.
var statusOf = map[string]int{
	models.CodeInvalid:           http.StatusUnprocessableEntity,
	models.CodeMalformed:         http.StatusBadRequest,
	models.CodeNotFound:          http.StatusNotFound,
	models.CodeConflict:          http.StatusConflict,
	models.CodeUnauthorized:      http.StatusUnauthorized,
	models.CodeForbidden:         http.StatusForbidden,
	models.CodeRateLimited:       http.StatusTooManyRequests,
	models.CodeTooLarge:          http.StatusRequestEntityTooLarge,
	models.CodeUnsupportedSchema: http.StatusBadRequest,
	models.CodeUnavailable:       http.StatusServiceUnavailable,
	models.CodeInternal:          http.StatusInternalServerError,
	models.CodeUnsupportedMedia:  http.StatusUnsupportedMediaType,
	models.CodeMethodNotAllowed:  http.StatusMethodNotAllowed,

	models.CodeInvalidValue:      http.StatusUnprocessableEntity,
	models.CodeUnknownField:      http.StatusUnprocessableEntity,
	models.CodeServerOwned:       http.StatusUnprocessableEntity,
	models.CodeReadOnly:          http.StatusUnprocessableEntity,
	models.CodeMissingRequired:   http.StatusUnprocessableEntity,
	models.CodeUnknownEntity:     http.StatusUnprocessableEntity,
	models.CodeDependencyRefused: http.StatusUnprocessableEntity,
	// The request is sound but the record's state refuses it.
	models.CodeInvalidTransition: http.StatusConflict,
	models.CodeLocked:            http.StatusConflict,
	// Not 429: that tells clients to back off and retry, and a quota
	// (kudos per month) does not come back within any Retry-After worth
	// waiting for; not 403: the caller has the right, just not the
	// allowance left. Like a rejected push, it is final as sent.
	models.CodeLimitReached: http.StatusUnprocessableEntity,
	// The device numbered a new mutation with a seq it already used: the
	// request clashes with the device's state on the server.
	models.CodeSeqReused: http.StatusConflict,
}

// Problem is an RFC 9457 problem document with fieldsync's stable code and
// the fields at fault.
type Problem struct {
	Type     string              `json:"type"`
	Title    string              `json:"title"`
	Status   int                 `json:"status"`
	Detail   string              `json:"detail"`
	Code     string              `json:"code"`
	Instance string              `json:"instance,omitempty"`
	Errors   []models.FieldError `json:"errors,omitempty"`
}

// problemOf turns any error a handler returns into a problem document.
func problemOf(err error) (Problem, *models.Error) {
	var me *models.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &me):
	case errors.As(err, &he):
		me = fromHTTPError(he)
	default:
		me = errInternal
	}
	status, ok := statusOf[me.Code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return Problem{
		Type:   "urn:fieldsync:problem:" + me.Code,
		Title:  http.StatusText(status),
		Status: status,
		Detail: me.Message,
		Code:   me.Code,
		Errors: me.Fields,
	}, me
}

// errInternal hides a bug's details from the caller; handleError logs them.
var errInternal = models.Errorf(models.CodeInternal, "internal error; it has been logged")

func fromHTTPError(he *echo.HTTPError) *models.Error {
	msg := http.StatusText(he.Code)
	if s, ok := he.Message.(string); ok {
		msg = s
	}
	switch he.Code {
	case http.StatusNotFound:
		return models.Errorf(models.CodeNotFound, "no such route")
	case http.StatusMethodNotAllowed:
		return models.Errorf(models.CodeMethodNotAllowed, "method not allowed on this route")
	case http.StatusRequestEntityTooLarge:
		return models.Errorf(models.CodeTooLarge, "request body too large")
	case http.StatusUnauthorized:
		return models.Errorf(models.CodeUnauthorized, "%s", msg)
	case http.StatusServiceUnavailable:
		return models.Errorf(models.CodeUnavailable, "%s", msg)
	case http.StatusUnsupportedMediaType:
		return models.Errorf(models.CodeUnsupportedMedia, "%s", msg)
	}
	if he.Code >= 400 && he.Code < 500 {
		return models.Errorf(models.CodeMalformed, "%s", msg)
	}
	return errInternal
}

// handleError is Echo's HTTPErrorHandler: every error leaves as
// problem+json, and internal ones are logged here, once, with the request id.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if cause := context.Cause(c.Request().Context()); errors.Is(err, context.Canceled) && cause != nil {
		// The server cancelled the request (a shutdown past its drain
		// limit) and said why: answer that, not a cancellation.
		var me *models.Error
		if errors.As(cause, &me) {
			err = cause
		}
	}
	if clientClosed(c, err) {
		// The client hung up (a phone's own timeout, lost signal): nobody
		// reads the answer, and it is no fault of the server's. 499 is
		// nginx's "client closed request", so the access log and the
		// request counter tell it apart from a 500.
		s.log.InfoContext(c.Request().Context(), "client closed the request",
			slog.String("request_id", requestID(c)), slog.String("route", c.Path()), slog.Any("err", err))
		c.Response().WriteHeader(StatusClientClosed)
		return
	}
	p, me := problemOf(err)
	p.Instance = c.Request().URL.Path
	if p.Status >= 500 {
		s.log.ErrorContext(c.Request().Context(), "request failed",
			slog.String("request_id", requestID(c)), slog.String("route", c.Path()), slog.Any("err", err))
	}
	h := c.Response().Header()
	if p.Status == http.StatusUnauthorized {
		// error="invalid_token" is for a presented token that failed (RFC
		// 6750); a wrong password or a missing token gets the bare challenge.
		if c.Request().Header.Get(echo.HeaderAuthorization) != "" {
			h.Set("WWW-Authenticate", `Bearer realm="fieldsync", error="invalid_token"`)
		} else {
			h.Set("WWW-Authenticate", `Bearer realm="fieldsync"`)
		}
	}
	switch {
	case me.RetryAfterSeconds > 0:
		h.Set("Retry-After", strconv.Itoa(me.RetryAfterSeconds))
	case p.Status == http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryUnavailable))
	}
	h.Set(echo.HeaderContentType, "application/problem+json")
	c.Response().WriteHeader(p.Status)
	if c.Request().Method == http.MethodHead {
		return
	}
	if err := jsonEncode(c.Response(), p); err != nil {
		s.log.WarnContext(c.Request().Context(), "write problem", slog.Any("err", err))
	}
}

// retryUnavailable is the Retry-After, in seconds, of a 503 that names
// none of its own: long enough for a replica to restart or a lock to
// clear, short enough that a phone syncs soon.
const retryUnavailable = 2

// StatusClientClosed is the status logged and counted for a request whose
// client went away before the answer.
const StatusClientClosed = 499

// clientClosed tells an error caused by the client hanging up: the
// request's own context was cancelled, and the error says so.
func clientClosed(c echo.Context, err error) bool {
	return errors.Is(c.Request().Context().Err(), context.Canceled) && errors.Is(err, context.Canceled)
}
