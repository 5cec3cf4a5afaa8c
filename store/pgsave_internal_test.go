package store

import (
	"slices"
	"testing"
)

// TestJoinedColumnKeepsEachText: texts joined by recordSep go as one
// parameter only when splitting it gives them back; a text that holds
// the separator itself (valid JSON never does, a corrupted stored value
// might) sends them all as an array, each text whole.
func TestJoinedColumnKeepsEachText(t *testing.T) {
	join := func(texts ...string) ([]byte, []int) {
		var b []byte
		var ends []int
		for i, s := range texts {
			if i > 0 {
				b = append(b, recordSep)
			}
			b = append(b, s...)
			ends = append(ends, len(b))
		}
		return b, ends
	}
	b, ends := join(`{"a":1}`, `{}`, `{"b":"\u001e"}`)
	if c := joinedColumn("doc", b, ends); !c.joined || c.vals != string(b) {
		t.Fatalf("clean texts: got %+v, want one joined text", c)
	}
	texts := []string{`{"a":1}`, "{\"b\":\"\x1e\"}", `{}`}
	b, ends = join(texts...)
	c := joinedColumn("doc", b, ends)
	if c.joined || c.array != "text[]" {
		t.Fatalf("a text holding the separator: got %+v, want a text[]", c)
	}
	if got := c.vals.([]string); !slices.Equal(got, texts) {
		t.Fatalf("texts: got %q, want %q", got, texts)
	}
}
