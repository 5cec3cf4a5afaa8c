package api

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
)

// Every list answers in one shape: its items and next_cursor, empty on the
// last page. A client asks for at most limit items and pages on with
// cursor=next_cursor.
const (
	defaultPageLimit = 50
	maxPageLimit     = 500
)

// paginate returns the page of items the request asks for (limit, cursor),
// in the order of key, and the cursor of the page after it. key must be
// unique per item and sort in the list's order (see the key helpers below);
// the cursor is the last item's key, so an item added or removed between
// pages neither shifts nor repeats the others.
//
// The lists paged here are small by nature — an organisation's users and
// teams, its contests, one contest's standings, one rep's score entries —
// so they are read whole and paged in memory.
func paginate[T any](c echo.Context, items []T, key func(T) string) ([]T, string, error) {
	limit, err := intParam(c, "limit", defaultPageLimit, 1, maxPageLimit)
	if err != nil {
		return nil, "", err
	}
	after := ""
	if raw := c.QueryParam("cursor"); raw != "" {
		b, err := base64.RawURLEncoding.DecodeString(raw)
		if err != nil || len(b) == 0 {
			return nil, "", models.FieldInvalid("cursor", "must be the next_cursor of a previous page")
		}
		after = string(b)
	}
	keys := make([]string, len(items))
	idx := make([]int, len(items))
	for i, it := range items {
		keys[i], idx[i] = key(it), i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return strings.Compare(keys[a], keys[b]) })
	start, _ := slices.BinarySearchFunc(idx, after, func(i int, k string) int {
		if keys[i] <= k {
			return -1
		}
		return 1
	})
	end := min(start+limit, len(idx))
	page := make([]T, 0, end-start)
	for _, i := range idx[start:end] {
		page = append(page, items[i])
	}
	next := ""
	if end < len(idx) {
		next = base64.RawURLEncoding.EncodeToString([]byte(keys[idx[end-1]]))
	}
	return page, next, nil
}

// Key parts: each sorts, as a string, in the order it stands for.

// ascInt orders integers ascending (ranks, versions).
func ascInt(n int64) string { return fmt.Sprintf("%020d", uint64(n)^(1<<63)) }

// ascTime and descTime order instants.
func ascTime(t time.Time) string { return ascInt(t.UnixNano()) }
func descTime(t time.Time) string {
	return ascInt(math.MaxInt64 - t.UnixNano())
}

// keyOf joins parts with NUL, which sorts before every other character, so
// "Ann"+id sorts before "Anna"+id as the tuple (name, id) would.
func keyOf(parts ...string) string { return strings.Join(parts, "\x00") }
