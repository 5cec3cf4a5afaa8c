package api_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// FuzzWatermelonPush posts any body to the WatermelonDB push through the
// real router, on a real database (SQLite unless
// FIELDSYNC_TEST_DATABASE_URL names PostgreSQL) holding the demo
// organisation, as a logged-in rep with the timestamp of a real pull.
// Properties: no panic (a recovered one answers 500) and no 5xx, whatever
// the body, as JSON or as the text/plain fetch() sends; and every answer
// conforms to openapi.yaml (apitest checks each one). Seeds:
// testdata/fuzz/FuzzWatermelonPush.
func FuzzWatermelonPush(f *testing.F) {
	env := apitest.New(f, apitest.Options{})
	rep := env.Login("rep1@demo.test")
	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/watermelondb?schema_version=1&last_pulled_at=null", Token: rep.Access})
	apitest.Expect(f, res, http.StatusOK)
	var pulled struct {
		Timestamp int64 `json:"timestamp"`
	}
	res.JSON(f, &pulled)
	path := "/v1/sync/watermelondb?schema_version=1&last_pulled_at=" + strconv.FormatInt(pulled.Timestamp, 10)
	f.Fuzz(func(t *testing.T, body []byte, textPlain bool) {
		env.T = t // Env reports through the running input's T
		req := apitest.Request{Method: http.MethodPost, Path: path, Token: rep.Access, Body: body}
		if textPlain {
			req.Header = http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}
		}
		res := env.Do(req)
		if res.StatusCode >= 500 {
			t.Fatalf("status %d for body %q: %s", res.StatusCode, clip(body), res.Body)
		}
	})
}

func clip(b []byte) []byte {
	if len(b) > 512 {
		return b[:512]
	}
	return b
}
