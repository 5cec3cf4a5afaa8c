package storetest

import (
	"encoding/binary"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
)

// Wire counts what a store sends PostgreSQL, read off the wire by a proxy
// between them (Options.URL = w.URL): statements executed and the round
// trips that executed them. It sees every statement, whichever way the
// store sends it (GORM, database/sql, a pgx pipeline), and nothing of the
// test's own admin connections.
type Wire struct {
	// Statements counts Execute messages and simple queries; RoundTrips
	// counts the Syncs that followed an Execute, and simple queries.
	// A Sync after a Parse alone (pgx preparing a statement the first
	// time a connection sees it) is not counted.
	Statements, RoundTrips atomic.Int64
	// target is the proxy's address; upstream the server's, set by URL
	// while the proxy may be accepting, so read and written under mu.
	target   string
	mu       sync.Mutex
	upstream string
}

// NewWire starts a proxy to the server of PostgreSQL URLs, closed when
// the test ends.
func NewWire(t testing.TB) *Wire {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &Wire{}
	var wg sync.WaitGroup
	var conns []net.Conn
	t.Cleanup(func() {
		_ = ln.Close()
		w.mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		w.mu.Unlock()
		wg.Wait()
	})
	w.target = ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.mu.Lock()
			server, err := net.Dial("tcp", w.upstream)
			if err != nil {
				w.mu.Unlock()
				_ = c.Close()
				continue
			}
			conns = append(conns, c, server)
			w.mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(c, server); _ = c.Close() }()
			go func() { defer wg.Done(); w.count(c, server); _ = server.Close() }()
		}
	}()
	return w
}

// URL points u at the proxy, remembering u's server as the upstream.
func (w *Wire) URL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	w.mu.Lock()
	w.upstream = p.Host
	w.mu.Unlock()
	p.Host = w.target
	return p.String()
}

// Reset zeroes the counts.
func (w *Wire) Reset() { w.Statements.Store(0); w.RoundTrips.Store(0) }

// count copies the client's messages to the server, counting them. The
// startup message has no type byte; every later message is a type byte
// and a length that counts itself.
func (w *Wire) count(client io.Reader, server io.Writer) {
	var head [5]byte
	if _, err := io.ReadFull(client, head[:4]); err != nil {
		return
	}
	n := int(binary.BigEndian.Uint32(head[:4]))
	if _, err := server.Write(head[:4]); err != nil {
		return
	}
	if _, err := io.CopyN(server, client, int64(n-4)); err != nil {
		return
	}
	executed := false
	for {
		if _, err := io.ReadFull(client, head[:]); err != nil {
			return
		}
		switch head[0] {
		case 'Q':
			w.Statements.Add(1)
			w.RoundTrips.Add(1)
		case 'E':
			w.Statements.Add(1)
			executed = true
		case 'S':
			if executed {
				w.RoundTrips.Add(1)
			}
			executed = false
		}
		if _, err := server.Write(head[:]); err != nil {
			return
		}
		if _, err := io.CopyN(server, client, int64(binary.BigEndian.Uint32(head[1:]))-4); err != nil {
			return
		}
	}
}
