//go:build !race

package api_test

import "github.com/fieldsync/fieldsync/sync/engine"

// The size of TestLongOffline without the race detector.
const (
	// longOfflineMutations are pending on the phone that comes back; it
	// pushes them longOfflineBatch at a time (the server's largest batch).
	longOfflineMutations = 5000
	longOfflineBatch     = engine.MaxBatch
	// Every longOfflineEvery days each of three other devices pushes
	// longOfflineOthersBatch calls.
	longOfflineEvery       = 5
	longOfflineOthersBatch = 150
)
