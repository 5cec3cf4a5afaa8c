package api_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// FuzzWatermelonPush posts any body to the WatermelonDB push through the
// real router, on a real database (SQLite unless
// FIELDSYNC_TEST_DATABASE_URL names PostgreSQL) holding the demo
// organisation, as a logged-in rep or manager with the timestamp of their
// own real pull. In a body, $REP_ID and $ACCOUNT_ID stand for the rep's id
// and an account the rep may see, so seeds write real records.
// Properties: no panic (a recovered one answers 500) and no 5xx, whatever
// the body, as JSON or as the text/plain fetch() sends; and every answer
// conforms to openapi.yaml (apitest checks each one). Seeds:
// testdata/fuzz/FuzzWatermelonPush.
func FuzzWatermelonPush(f *testing.F) {
	env := apitest.New(f, apitest.Options{})
	type session struct {
		token, path string
	}
	var account string
	login := func(email string) (apitest.Session, session) {
		s := env.Login(email)
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/watermelondb?schema_version=1&last_pulled_at=null", Token: s.Access})
		apitest.Expect(f, res, http.StatusOK)
		var pulled struct {
			Changes map[string]struct {
				Created []struct {
					ID string `json:"id"`
				} `json:"created"`
			} `json:"changes"`
			Timestamp int64 `json:"timestamp"`
		}
		res.JSON(f, &pulled)
		if accounts := pulled.Changes["accounts"].Created; account == "" && len(accounts) > 0 {
			account = accounts[0].ID
		}
		return s, session{s.Access, "/v1/sync/watermelondb?schema_version=1&last_pulled_at=" + strconv.FormatInt(pulled.Timestamp, 10)}
	}
	rep, asRep := login("rep1@demo.test")
	_, asManager := login("manager1@demo.test")
	if account == "" {
		f.Fatal("the rep's first pull has no account")
	}
	vars := strings.NewReplacer("$REP_ID", rep.UserID.String(), "$ACCOUNT_ID", account)
	f.Fuzz(func(t *testing.T, body []byte, textPlain, manager bool) {
		env.T = t // Env reports through the running input's T
		s := asRep
		if manager {
			s = asManager
		}
		body = []byte(vars.Replace(string(body)))
		req := apitest.Request{Method: http.MethodPost, Path: s.path, Token: s.token, Body: body}
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
