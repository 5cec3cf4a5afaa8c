package bench

import (
	"bytes"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// WatchHeap samples the live heap as of the last garbage collection and
// keeps the heap profile of the largest: the profile of a run's end shows
// what survives it, not what made the resident set peak. The returned stop
// function ends the watch and returns that profile.
func WatchHeap() func() []byte {
	done := make(chan struct{})
	out := make(chan []byte)
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		var best []byte
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				out <- best
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > peak+peak/20 {
				var b bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
					peak, best = live, b.Bytes()
				}
			}
		}
	}()
	return func() []byte { close(done); return <-out }
}
