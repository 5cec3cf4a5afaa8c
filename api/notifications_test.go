package api_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/internal/apitest"
	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/sales"
	"github.com/fieldsync/fieldsync/sync/engine"
)

// pushTokens lists the tokens registered to a user.
func pushTokens(t *testing.T, env *apitest.Env, email string) []string {
	t.Helper()
	u, err := env.DB.People().UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := env.DB.Outbox().PushTokens(context.Background(), u.OrgID, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tk := range ts {
		out = append(out, tk.Token)
	}
	return out
}

func putToken(env *apitest.Env, token string, body any) *apitest.Response {
	return env.Do(apitest.Request{Method: http.MethodPut, Path: "/v1/devices/current/push-token", Token: token, Body: body})
}

func TestPushToken(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	rep1 := env.Login("rep1@demo.test")

	t.Run("register and rotate", func(t *testing.T) {
		apitest.Expect(t, putToken(env, rep1.Access, map[string]string{"token": "fcm-a", "platform": "android"}), http.StatusNoContent)
		apitest.Expect(t, putToken(env, rep1.Access, map[string]string{"token": "fcm-a", "platform": "android"}), http.StatusNoContent)
		apitest.Expect(t, putToken(env, rep1.Access, map[string]string{"token": "fcm-b", "platform": "android"}), http.StatusNoContent)
		if got := pushTokens(t, env, "rep1@demo.test"); !slices.Equal(got, []string{"fcm-b"}) {
			t.Errorf("tokens %q, want the rotated one only", got)
		}
	})

	t.Run("422 names the fields", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			body   any
			fields []string
		}{
			{"missing both", map[string]string{}, []string{"token", "platform"}},
			{"unknown platform", map[string]string{"token": "x", "platform": "blackberry"}, []string{"platform"}},
			{"spaces in token", map[string]string{"token": "a b", "platform": "ios"}, []string{"token"}},
			{"too long", map[string]string{"token": strings.Repeat("x", 4097), "platform": "ios"}, []string{"token"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := putToken(env, rep1.Access, tc.body)
				apitest.Expect(t, res, http.StatusUnprocessableEntity)
				var got []string
				for _, e := range res.Problem(t).Errors {
					got = append(got, e.Field)
				}
				if !slices.Equal(got, tc.fields) {
					t.Errorf("fields %q, want %q", got, tc.fields)
				}
			})
		}
	})

	t.Run("401 without a token", func(t *testing.T) {
		apitest.Expect(t, putToken(env, "", map[string]string{"token": "x", "platform": "ios"}), http.StatusUnauthorized)
	})

	t.Run("a token moved to another user leaves the old one", func(t *testing.T) {
		rep2 := env.Login("rep2@demo.test")
		apitest.Expect(t, putToken(env, rep1.Access, map[string]string{"token": "reinstalled", "platform": "ios"}), http.StatusNoContent)
		apitest.Expect(t, putToken(env, rep2.Access, map[string]string{"token": "reinstalled", "platform": "ios"}), http.StatusNoContent)
		if got := pushTokens(t, env, "rep1@demo.test"); len(got) != 0 {
			t.Errorf("rep1 still has %q", got)
		}
		if got := pushTokens(t, env, "rep2@demo.test"); !slices.Equal(got, []string{"reinstalled"}) {
			t.Errorf("rep2 has %q", got)
		}
	})

	t.Run("a shared phone belongs to who registered last", func(t *testing.T) {
		// One install, one FCM token: whoever registers it last gets it.
		phone := uuid.New()
		a := env.LoginDevice("rep3@demo.test", phone)
		apitest.Expect(t, putToken(env, a.Access, map[string]string{"token": "shared-2", "platform": "android"}), http.StatusNoContent)
		b := env.LoginDevice("manager1@demo.test", phone)
		apitest.Expect(t, putToken(env, b.Access, map[string]string{"token": "shared-2", "platform": "android"}), http.StatusNoContent)
		if got := pushTokens(t, env, "rep3@demo.test"); len(got) != 0 {
			t.Errorf("rep3 still has %q", got)
		}
		if got := pushTokens(t, env, "manager1@demo.test"); !slices.Equal(got, []string{"shared-2"}) {
			t.Errorf("manager1 has %q", got)
		}
		// rep3 logging out of the phone does not take manager1's token.
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/logout", Token: a.Access}), http.StatusNoContent)
		if got := pushTokens(t, env, "manager1@demo.test"); !slices.Equal(got, []string{"shared-2"}) {
			t.Errorf("after rep3's logout manager1 has %q", got)
		}
	})

	// A device id is no credential: a rep who logs in with a manager's
	// device id and registers their own token gets a row of their own,
	// and the manager's token stays the manager's (issue 13.11).
	t.Run("another user's device id takes nothing", func(t *testing.T) {
		phone := uuid.New()
		m := env.LoginDevice("manager2@demo.test", phone)
		apitest.Expect(t, putToken(env, m.Access, map[string]string{"token": "managers-phone", "platform": "ios"}), http.StatusNoContent)
		r := env.LoginDevice("rep5@demo.test", phone)
		apitest.Expect(t, putToken(env, r.Access, map[string]string{"token": "reps-phone", "platform": "ios"}), http.StatusNoContent)
		if got := pushTokens(t, env, "manager2@demo.test"); !slices.Equal(got, []string{"managers-phone"}) {
			t.Errorf("manager2 has %q, want their own token still", got)
		}
		if got := pushTokens(t, env, "rep5@demo.test"); !slices.Equal(got, []string{"reps-phone"}) {
			t.Errorf("rep5 has %q, want only the token they registered", got)
		}
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodDelete, Path: "/v1/devices/current/push-token", Token: r.Access}), http.StatusNoContent)
		if got := pushTokens(t, env, "manager2@demo.test"); !slices.Equal(got, []string{"managers-phone"}) {
			t.Errorf("after rep5's delete manager2 has %q", got)
		}
	})

	t.Run("delete and logout remove it", func(t *testing.T) {
		s := env.Login("rep4@demo.test")
		apitest.Expect(t, putToken(env, s.Access, map[string]string{"token": "to-delete", "platform": "web"}), http.StatusNoContent)
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodDelete, Path: "/v1/devices/current/push-token", Token: s.Access}), http.StatusNoContent)
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodDelete, Path: "/v1/devices/current/push-token", Token: s.Access}), http.StatusNoContent)
		if got := pushTokens(t, env, "rep4@demo.test"); len(got) != 0 {
			t.Errorf("after delete: %q", got)
		}
		apitest.Expect(t, putToken(env, s.Access, map[string]string{"token": "to-logout", "platform": "web"}), http.StatusNoContent)
		apitest.Expect(t, env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/auth/logout", Token: s.Access}), http.StatusNoContent)
		if got := pushTokens(t, env, "rep4@demo.test"); len(got) != 0 {
			t.Errorf("after logout: %q", got)
		}
	})
}

type wirePrefs struct {
	Categories map[string]bool `json:"categories"`
	QuietHours *struct {
		Start string `json:"start"`
		End   string `json:"end"`
	} `json:"quiet_hours"`
	DailyCap int `json:"daily_cap"`
}

func TestNotificationPreferences(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	s := env.Login("rep1@demo.test")
	get := func() wirePrefs {
		t.Helper()
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/me/notification-preferences", Token: s.Access})
		apitest.Expect(t, res, http.StatusOK)
		var p wirePrefs
		res.JSON(t, &p)
		return p
	}
	put := func(body any) *apitest.Response {
		return env.Do(apitest.Request{Method: http.MethodPut, Path: "/v1/me/notification-preferences", Token: s.Access, Body: body})
	}

	p := get()
	if len(p.Categories) != 6 || !p.Categories["standings"] || p.QuietHours == nil || p.QuietHours.Start != "20:00" || p.QuietHours.End != "07:00" || p.DailyCap != 12 {
		t.Errorf("defaults %+v", p)
	}

	res := put(map[string]any{"categories": map[string]bool{"standings": false, "coaching": true}, "quiet_hours": map[string]string{"start": "21:30", "end": "06:00"}, "daily_cap": 5})
	apitest.Expect(t, res, http.StatusOK)
	p = get()
	if p.Categories["standings"] || !p.Categories["coaching"] || !p.Categories["reminders"] || p.QuietHours.Start != "21:30" || p.DailyCap != 5 {
		t.Errorf("after PUT %+v", p)
	}

	apitest.Expect(t, put(map[string]any{"quiet_hours": nil}), http.StatusOK)
	p = get()
	if p.QuietHours != nil || !p.Categories["standings"] || p.DailyCap != 12 {
		t.Errorf("after PUT with no quiet hours: %+v (omitted members take their defaults)", p)
	}

	for _, tc := range []struct {
		name   string
		body   any
		fields []string
	}{
		{"unknown category", map[string]any{"categories": map[string]bool{"memes": false}}, []string{"categories.memes"}},
		{"bad times and cap", map[string]any{"quiet_hours": map[string]string{"start": "25:00", "end": "7"}, "daily_cap": 101},
			[]string{"quiet_hours.start", "quiet_hours.end", "daily_cap"}},
		{"quiet hours not an object", map[string]any{"quiet_hours": "night"}, []string{"quiet_hours"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := put(tc.body)
			apitest.Expect(t, res, http.StatusUnprocessableEntity)
			var got []string
			for _, e := range res.Problem(t).Errors {
				got = append(got, e.Field)
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
		})
	}
	apitest.Expect(t, put(`{"daily_cap": "many"}`), http.StatusUnprocessableEntity)
	apitest.Expect(t, put(`{`), http.StatusBadRequest)
}

type wireNotification struct {
	ID       uuid.UUID         `json:"id"`
	Version  int64             `json:"version"`
	UserID   uuid.UUID         `json:"user_id"`
	Category string            `json:"category"`
	Type     string            `json:"type"`
	Title    string            `json:"title"`
	Body     string            `json:"body"`
	Data     map[string]string `json:"data"`
	ReadAt   *time.Time        `json:"read_at"`
}

type wireNotificationList struct {
	Notifications []wireNotification `json:"notifications"`
	NextCursor    string             `json:"next_cursor"`
}

func TestInbox(t *testing.T) {
	env := apitest.New(t, apitest.Options{})
	ctx := context.Background()
	rep := env.Login("rep1@demo.test")
	other := env.Login("rep2@demo.test")
	u, err := env.DB.People().UserByEmail(ctx, "rep1@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	en := engine.New(env.DB.Feed(), sales.Entities(), env.Clock.Now, nil)
	contest := uuid.New()
	var ids []uuid.UUID
	for i, n := range []models.Notification{
		models.ContestStartedNotification(contest, "Spring Blitz", env.Clock.Now().Add(72*time.Hour)),
		models.EnteredTop3Notification(contest, "Spring Blitz", 3),
		models.ReachedFirstNotification(contest, "Spring Blitz"),
	} {
		if i > 0 {
			env.Clock.Advance(time.Minute)
		}
		err := en.Server(ctx, models.Principal{OrgID: u.OrgID}, func(c *engine.Context) error { return sales.Notify(c, n.To(u.ID)) })
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sales.NotificationID(u.OrgID, u.ID, n.DedupeKey))
	}
	list := func(token, query string, status int) wireNotificationList {
		t.Helper()
		res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/notifications" + query, Token: token})
		apitest.Expect(t, res, status)
		var l wireNotificationList
		if status == http.StatusOK {
			res.JSON(t, &l)
		}
		return l
	}

	// Newest first, two a page.
	page := list(rep.Access, "?limit=2", http.StatusOK)
	if len(page.Notifications) != 2 || page.Notifications[0].ID != ids[2] || page.Notifications[1].ID != ids[1] || page.NextCursor == "" {
		t.Fatalf("first page %+v", page)
	}
	first, second := page.Notifications[0], page.Notifications[1]
	if first.Type != models.NotificationReachedFirst || first.Category != "standings" || first.Title != "You're #1" ||
		first.Data["contest_id"] != contest.String() || first.ReadAt != nil || first.UserID != u.ID {
		t.Errorf("notification %+v", first)
	}
	page = list(rep.Access, "?limit=2&cursor="+page.NextCursor, http.StatusOK)
	if len(page.Notifications) != 1 || page.Notifications[0].ID != ids[0] || page.NextCursor != "" {
		t.Fatalf("second page %+v", page)
	}
	if l := list(other.Access, "", http.StatusOK); len(l.Notifications) != 0 {
		t.Errorf("another rep sees %d notifications", len(l.Notifications))
	}
	list(rep.Access, "?cursor=nonsense", http.StatusUnprocessableEntity)
	list(rep.Access, "?limit=0", http.StatusUnprocessableEntity)
	list(rep.Access, "?unread=maybe", http.StatusUnprocessableEntity)
	list("", "", http.StatusUnauthorized)

	// Mark one read: 200 with read_at, idempotent, 404 for others.
	read := func(token, id string, status int) wireNotification {
		t.Helper()
		res := env.Do(apitest.Request{Method: http.MethodPost, Path: "/v1/notifications/" + id + "/read", Token: token})
		apitest.Expect(t, res, status)
		var n wireNotification
		if status == http.StatusOK {
			res.JSON(t, &n)
		}
		return n
	}
	got := read(rep.Access, ids[1].String(), http.StatusOK)
	if got.ReadAt == nil || got.Version <= second.Version {
		t.Errorf("read: %+v", got)
	}
	env.Clock.Advance(time.Minute)
	again := read(rep.Access, ids[1].String(), http.StatusOK)
	if again.ReadAt == nil || !again.ReadAt.Equal(*got.ReadAt) || again.Version != got.Version {
		t.Errorf("read again: %+v, want the first read kept", again)
	}
	read(other.Access, ids[1].String(), http.StatusNotFound)
	read(rep.Access, uuid.NewString(), http.StatusNotFound)
	read(rep.Access, "not-a-uuid", http.StatusUnprocessableEntity)

	if l := list(rep.Access, "?unread=true", http.StatusOK); len(l.Notifications) != 2 {
		t.Errorf("unread: %d, want 2", len(l.Notifications))
	}

	// Phones see the inbox, and the read, in pull.
	res := env.Do(apitest.Request{Method: http.MethodGet, Path: "/v1/sync/pull?limit=1000", Token: rep.Access})
	apitest.Expect(t, res, http.StatusOK)
	var pull struct {
		Changes []struct {
			Entity string           `json:"entity"`
			ID     uuid.UUID        `json:"id"`
			Data   wireNotification `json:"data"`
		} `json:"changes"`
	}
	res.JSON(t, &pull)
	seen := 0
	for _, ch := range pull.Changes {
		if ch.Entity != "notifications" {
			continue
		}
		seen++
		if ch.ID == ids[1] && ch.Data.ReadAt == nil {
			t.Error("pull: the read notification has no read_at")
		}
	}
	if seen != 3 {
		t.Errorf("pull: %d notifications, want 3", seen)
	}
}
