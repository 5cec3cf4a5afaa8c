package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// IdempotencyStore keeps the answers to requests sent with an
// Idempotency-Key (in store, store.Idempotency).
type IdempotencyStore interface {
	Claim(ctx context.Context, r models.IdempotentRequest) (*models.StoredAnswer, error)
	Finish(ctx context.Context, r models.IdempotentRequest, a models.StoredAnswer) error
	Release(ctx context.Context, r models.IdempotentRequest) error
}

// maxIdempotencyKey bounds the header; a UUID is 36.
const maxIdempotencyKey = 255

// idempotent honours Idempotency-Key on a POST: the first request with a
// key runs and its answer is kept for 24 hours; a retry with the same key
// and body gets that answer again (Idempotent-Replayed: true), one with
// the same key and another body 422, and one while the first still runs
// 409. Keys are the caller's own: two users never share one. A 5xx is not
// kept, so a retry after a failure runs again.
func (s *Server) idempotent(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		key := c.Request().Header.Get("Idempotency-Key")
		if key == "" || s.idem == nil {
			return next(c)
		}
		if len(key) > maxIdempotencyKey || !printableASCII(key) {
			return models.FieldInvalid("Idempotency-Key", "must be 1 to %d printable ASCII characters, e.g. a UUID", maxIdempotencyKey)
		}
		req := c.Request()
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return jsonError(err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		p := principal(c)
		h := sha256.New()
		io.WriteString(h, req.Method+" "+req.URL.Path+"\n")
		h.Write(body)
		r := models.IdempotentRequest{OrgID: p.OrgID, UserID: p.UserID, Key: key, Hash: hex.EncodeToString(h.Sum(nil))}

		stored, err := s.idem.Claim(req.Context(), r)
		switch {
		case err != nil:
			return err
		case stored == nil:
			return s.runKept(c, next, r)
		case stored.Hash != r.Hash:
			return models.FieldInvalid("Idempotency-Key", "was used for another request in the last 24 hours; use a new key for a new request")
		case stored.Status == 0:
			e := models.Errorf(models.CodeConflict, "the first request with this Idempotency-Key is still running; retry shortly")
			e.RetryAfterSeconds = 1
			return e
		}
		c.Response().Header().Set("Idempotent-Replayed", "true")
		return c.Blob(stored.Status, stored.ContentType, stored.Body)
	}
}

// runKept runs the request that claimed r and keeps its answer.
func (s *Server) runKept(c echo.Context, next echo.HandlerFunc, r models.IdempotentRequest) error {
	rec := &recorder{ResponseWriter: c.Response().Writer}
	c.Response().Writer = rec
	if err := next(c); err != nil {
		c.Error(err)
	}
	// Whatever happens to the client, the outcome is recorded.
	ctx := context.WithoutCancel(c.Request().Context())
	status := c.Response().Status
	if status >= 500 || status == StatusClientClosed {
		if err := s.idem.Release(ctx, r); err != nil {
			s.log.WarnContext(ctx, "release idempotency key", "err", err)
		}
		return nil
	}
	a := models.StoredAnswer{Hash: r.Hash, Status: status, ContentType: c.Response().Header().Get(echo.HeaderContentType), Body: rec.body.Bytes()}
	if err := s.idem.Finish(ctx, r, a); err != nil {
		s.log.WarnContext(ctx, "keep idempotent answer", "err", err)
	}
	return nil
}

// recorder keeps a copy of what is written.
type recorder struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func printableASCII(s string) bool {
	for i := range len(s) {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
