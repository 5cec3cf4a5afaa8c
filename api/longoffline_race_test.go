//go:build race

package api_test

// The size of TestLongOffline under the race detector, which makes each
// push several times slower: the same shape scaled down to a third, in
// batches of 250 so that the growth check still compares six pushes.
const (
	longOfflineMutations   = 1500
	longOfflineBatch       = 250
	longOfflineEvery       = 5
	longOfflineOthersBatch = 50
)
