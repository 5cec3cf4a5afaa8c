// Package models holds fieldsync's domain types, their invariants and the
// error codes every layer speaks. It does no I/O and imports nothing of ours:
// the sync engine, the notification outbox and the HTTP layer all depend on
// it, never the other way round.
package models
