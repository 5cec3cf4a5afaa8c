package api_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
)

// Tests of issue 11, "Sync that real apps live with": what a real app's
// schema and a real network do to a sync, on both protocols.

// TestWatermelonPushSchemaVersionOptional holds that a push without
// schema_version is taken (WatermelonDB's pushChanges has none to send),
// while one naming another version is still refused.
func TestWatermelonPushSchemaVersionOptional(t *testing.T) {
	d := newDemo(t)
	dev := newWMDevice(d.env, "rep1@demo.test")
	dev.pull(t)
	visit := uuid.New()
	body := map[string]any{"changes": wmTables("visits", wmCreated(wmVisit(visit, d.north[0], d.ms, nil)))}
	path := "/v1/sync/watermelondb?last_pulled_at=" + fmt.Sprint(dev.last)

	res := d.env.Do(apitest.Request{Method: http.MethodPost, Path: path, Token: dev.Access, Body: body})
	apitest.Expect(t, res, http.StatusOK)
	if got := dev.pull(t).where("visits", visit); got != "updated" {
		t.Errorf("visit pushed without schema_version: pulled as %q, want updated", got)
	}

	res = d.env.Do(apitest.Request{Method: http.MethodPost, Path: path + "&schema_version=2", Token: dev.Access, Body: body})
	expectProblem(t, res, http.StatusBadRequest, "unsupported_schema")
}
