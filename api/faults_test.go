package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/api"
	"github.com/fieldsync/fieldsync/internal/apitest"
)

// fieldMessages maps each field a problem names to its message.
func fieldMessages(p api.Problem) map[string]string {
	out := map[string]string{}
	for _, e := range p.Errors {
		out[e.Field] = e.Message
	}
	return out
}

// TestEveryFaultAtOnce: a body with several wrong fields is answered with
// all of them, each under its full path, so an app developer fixes them in
// one round and not one per request.
func TestEveryFaultAtOnce(t *testing.T) {
	d := newDemo(t)
	env := d.env
	admin := env.Login("admin@demo.test")

	t.Run("login", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/login", Body: `{"email":1,"password":true,"device_id":[]}`})
		p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "email", "password", "device_id")
	})
	t.Run("contest", func(t *testing.T) {
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/contests", Token: admin.Access,
			Body: `{"name":5,"grace_hours":"two days","colour":"red","starts_at":"2026-12-20","ends_at":"2026-12-31"}`})
		p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "name", "grace_hours", "colour")
	})
	t.Run("report without from and to", func(t *testing.T) {
		p := expectProblem(t, env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/reports/productivity", Token: admin.Access}),
			http.StatusUnprocessableEntity, "invalid")
		expectFields(t, p, "from", "to")
	})
}

// TestNumberFaults: a number that does not fit says which numbers do,
// instead of "must be a number, not number 1e20". A seq is the batch's
// envelope (the batch is refused, under the full path); a clock belongs to
// its mutation (that mutation is rejected, naming hlc.ms).
func TestNumberFaults(t *testing.T) {
	d := newDemo(t)
	mutation := func(seq, ms string) string {
		return `{"seq":` + seq + `,"entity":"visits","id":"` + uuid.NewString() + `","op":"upsert","hlc":{"ms":` + ms + `,"counter":0},"fields":{}}`
	}
	const want = "must be an integer between 1 and 9007199254740991"
	for _, tt := range []struct {
		name, body, field string
		batch             bool
	}{
		{"seq past 2^63", `{"schema_version":1,"mutations":[` + mutation("1", "1") + `,` + mutation("2", "1") + `,` + mutation("3", "1") + `,` + mutation("99999999999999999999999", "1") + `]}`,
			"mutations[3].seq", true},
		{"seq past 2^53", `{"schema_version":1,"mutations":[` + mutation("9007199254740992", "1") + `]}`, "mutations[0].seq", true},
		{"seq not whole", `{"schema_version":1,"mutations":[` + mutation("1.5", "1") + `]}`, "mutations[0].seq", true},
		{"hlc.ms 1e20", `{"schema_version":1,"mutations":[` + mutation("1", "1e20") + `]}`, "hlc.ms", false},
		{"hlc.ms past 2^53", `{"schema_version":1,"mutations":[` + mutation("1", "9007199254740992") + `]}`, "hlc.ms", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := d.env.Login("rep1@demo.test") // a fresh device: seq 1 is new
			res := d.env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/sync/push", Token: rep.Access, Body: tt.body})
			if tt.batch {
				p := expectProblem(t, res, http.StatusUnprocessableEntity, "invalid")
				if got, ok := fieldMessages(p)[tt.field]; !ok || !strings.HasPrefix(got, want) {
					t.Errorf("fields %v, want %s: %s…", fieldMessages(p), tt.field, want)
				}
				return
			}
			apitest.Expect(t, res, http.StatusOK)
			var r struct {
				Results []struct {
					Status string `json:"status"`
					Error  struct {
						Field   string `json:"field"`
						Message string `json:"message"`
					} `json:"error"`
				} `json:"results"`
			}
			res.JSON(t, &r)
			if len(r.Results) != 1 || r.Results[0].Status != "rejected" || r.Results[0].Error.Field != tt.field || !strings.Contains(r.Results[0].Error.Message, want) {
				t.Errorf("results %+v, want one rejected on %s: %s", r.Results, tt.field, want)
			}
		})
	}
}
