package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// FuzzPushDecode feeds any body to the native push's decoding: the strict
// JSON decoder, the per-mutation conversion (mutations) and the envelope
// check (CheckBatch), which is everything the handler does before the
// engine reads the database. Properties: no panic; every refusal is a
// *models.Error answered with a 4xx; a batch that passes has one mutation
// per element, each a mutation or a 4xx rejection of its own; and the
// handler's one-pass decoding (decodeWellFormed), where it succeeds,
// reads the very mutations the two passes read. Seeds: testdata/fuzz/FuzzPushDecode.
func FuzzPushDecode(f *testing.F) {
	now := time.Date(2026, 12, 6, 9, 30, 0, 0, time.UTC)
	en := engine.New(nil, sales.Entities(), func() time.Time { return now }, nil)
	e := echo.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/sync/push", bytes.NewReader(body))
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		c := e.NewContext(req, httptest.NewRecorder())
		err := func() error {
			var pr pushRequest
			if err := decodeJSON(c, &pr); err != nil {
				return err
			}
			if pr.SchemaVersion == nil {
				return models.FieldInvalid("schema_version", "is required")
			}
			muts, err := mutations(pr)
			if err != nil {
				return err
			}
			if len(muts) != len(pr.Mutations) {
				t.Fatalf("%d mutations from %d elements", len(muts), len(pr.Mutations))
			}
			malformed := false
			for _, m := range muts {
				if m.Malformed != nil {
					malformed = true
					requireClientError(t, body, m.Malformed)
				}
			}
			if wf, ok := decodeWellFormed(body); ok {
				if malformed {
					t.Fatalf("one pass decoded %q, whose mutations do not all decode", body)
				}
				one := make([]engine.Mutation, len(wf.Mutations))
				for i, m := range wf.Mutations {
					one[i] = m.mutation()
				}
				if *wf.SchemaVersion != *pr.SchemaVersion || !reflect.DeepEqual(one, muts) {
					t.Fatalf("one pass read %+v, two passes %+v", one, muts)
				}
			}
			return en.CheckBatch(*pr.SchemaVersion, muts)
		}()
		if err != nil {
			requireClientError(t, body, err)
		}
	})
}

// requireClientError fails unless err is a *models.Error the API answers
// with a 4xx.
func requireClientError(t *testing.T, body []byte, err error) {
	t.Helper()
	var me *models.Error
	if !errors.As(err, &me) {
		t.Fatalf("body %q: error %T %v is not a *models.Error (it would answer 500)", clipFuzz(body), err, err)
	}
	if p, _ := problemOf(err); p.Status < 400 || p.Status > 499 {
		t.Fatalf("body %q: error %v answers %d, want a 4xx", clipFuzz(body), err, p.Status)
	}
}

func clipFuzz(b []byte) []byte {
	if len(b) > 512 {
		return b[:512]
	}
	return b
}
