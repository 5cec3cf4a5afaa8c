package models

import (
	"time"

	"github.com/google/uuid"
)

// IdempotencyKeyTTL is how long the answer to a request sent with an
// Idempotency-Key is kept.
const IdempotencyKeyTTL = 24 * time.Hour

// IdempotentRequest names one request sent with an Idempotency-Key: the
// user's key, and a hash of what the request was (method, path, body).
type IdempotentRequest struct {
	OrgID, UserID uuid.UUID
	Key           string
	Hash          string
}

// StoredAnswer is the answer kept under a key. Status 0 means the first
// request with the key is still running.
type StoredAnswer struct {
	Hash        string
	Status      int
	ContentType string
	Body        []byte
}
