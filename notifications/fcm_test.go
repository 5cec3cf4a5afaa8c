package notifications_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/fieldsync/fieldsync/models"
	"github.com/fieldsync/fieldsync/notifications"
)

// TestFCMDeliversWhatTheNotificationSays runs the real Firebase SDK against
// the local fake: the fake must see the device's token, the title and body,
// the deep-link data with the notification id, and the contest's collapse
// key for Android and iOS.
func TestFCMDeliversWhatTheNotificationSays(t *testing.T) {
	f := newFixture(t)
	fcm := newFakeFCM(t)
	rep := f.user("rep1@demo.test")
	f.register("rep1@demo.test", "token-rep1-pixel")
	contest := uuid.New()
	n := models.OvertakenNotification(contest, "Spring Blitz", "Jordan Lee", 4, f.now()).To(rep.ID)
	id := f.notify(n)[0]

	st := f.runOnce(f.dispatcher(fcm.sender(t)))
	if st.Sent != 1 {
		t.Fatalf("stats %+v, want one sent", st)
	}
	got := fcm.deliveredTo("token-rep1-pixel")
	if len(got) != 1 {
		t.Fatalf("fake received %d messages for the token, want 1", len(got))
	}
	m := got[0]
	if m.Notification["title"] != "Jordan Lee just passed you" || m.Notification["body"] != "You're now #4 in Spring Blitz. A call or two could win it back." {
		t.Errorf("notification %v", m.Notification)
	}
	wantData := map[string]string{"type": models.NotificationOvertaken, "contest_id": contest.String(), "rank": "4", "notification_id": id.String()}
	for k, v := range wantData {
		if m.Data[k] != v {
			t.Errorf("data[%s] = %q, want %q (data %v)", k, m.Data[k], v, m.Data)
		}
	}
	ck := models.StandingsCollapseKey(contest)
	if m.Android.CollapseKey != ck || m.Android.Notification["tag"] != ck || m.APNS.Headers["apns-collapse-id"] != ck {
		t.Errorf("collapse keys android=%q tag=%q apns=%q, want %q", m.Android.CollapseKey, m.Android.Notification["tag"], m.APNS.Headers["apns-collapse-id"], ck)
	}
	if fcm.authz[0] != "Bearer fieldsync-local" {
		t.Errorf("Authorization %q, want the static token", fcm.authz[0])
	}
	d := f.wantStatus(id, notifications.StatusSent)
	if d.SentAt == nil || !d.SentAt.Equal(f.now()) || d.Attempts != 1 {
		t.Errorf("delivery %+v, want sent now after one attempt", d)
	}
	// Nothing is sent twice.
	if st := f.runOnce(f.dispatcher(fcm.sender(t))); st.Claimed != 0 {
		t.Errorf("second run claimed %d", st.Claimed)
	}
}

// TestFCMUnregisteredTokenIsDeleted: a token FCM calls UNREGISTERED (or
// invalid) is deleted at once, and the other device still gets the push.
func TestFCMUnregisteredTokenIsDeleted(t *testing.T) {
	f := newFixture(t)
	fcm := newFakeFCM(t)
	f.register("rep1@demo.test", "token-old-phone")
	f.register("rep1@demo.test", "token-new-phone")
	f.register("rep2@demo.test", "token-garbage")
	fcm.answer("token-old-phone", http.StatusNotFound)
	fcm.answer("token-garbage", http.StatusBadRequest)
	ids := f.notify(f.note("rep1@demo.test", models.CategoryCoaching), f.note("rep2@demo.test", models.CategoryCoaching))

	st := f.runOnce(f.dispatcher(fcm.sender(t)))
	if st.TokensRemoved != 2 {
		t.Errorf("stats %+v, want 2 tokens removed", st)
	}
	if got := f.tokens("rep1@demo.test"); !slices.Equal(got, []string{"token-new-phone"}) {
		t.Errorf("rep1's tokens %q, want only the new phone's", got)
	}
	if got := f.tokens("rep2@demo.test"); len(got) != 0 {
		t.Errorf("rep2's tokens %q, want none", got)
	}
	f.wantStatus(ids[0], notifications.StatusSent)
	// rep2 had no other device: the notification stays in the inbox.
	f.wantStatus(ids[1], notifications.StatusInboxOnly)
	if n := len(fcm.deliveredTo("token-new-phone")); n != 1 {
		t.Errorf("new phone got %d pushes, want 1", n)
	}
}

// TestFCMRetries: a 500 is retried with backoff and the push is delivered
// once; a 503 is retried by the SDK itself within the send; a 429 waits at
// least its Retry-After.
func TestFCMRetries(t *testing.T) {
	f := newFixture(t)
	fcm := newFakeFCM(t)
	f.register("rep1@demo.test", "t500")
	f.register("rep2@demo.test", "t503")
	f.register("rep3@demo.test", "t429")
	fcm.answer("t500", http.StatusInternalServerError)
	fcm.answer("t503", http.StatusServiceUnavailable)
	fcm.answer("t429", http.StatusTooManyRequests)
	ids := f.notify(f.note("rep1@demo.test", models.CategoryCoaching), f.note("rep2@demo.test", models.CategoryCoaching),
		f.note("rep3@demo.test", models.CategoryCoaching))
	d := f.dispatcher(fcm.sender(t))

	st := f.runOnce(d)
	if st.Sent != 1 || st.Retried != 2 {
		t.Fatalf("first run %+v, want 1 sent (the 503, retried by the SDK) and 2 to retry", st)
	}
	f.wantStatus(ids[1], notifications.StatusSent)
	r500 := f.wantStatus(ids[0], notifications.StatusPending)
	// Attempt 1 with zero jitter: half of the 30 s base.
	if want := f.now().Add(15 * time.Second); r500.Next == nil || !r500.Next.Equal(want) {
		t.Errorf("500: next attempt %v, want %v", r500.Next, want)
	}
	r429 := f.wantStatus(ids[2], notifications.StatusPending)
	if want := f.now().Add(120 * time.Second); r429.Next == nil || !r429.Next.Equal(want) {
		t.Errorf("429: next attempt %v, want %v (Retry-After)", r429.Next, want)
	}

	if st := f.runOnce(d); st.Claimed != 0 {
		t.Errorf("before the backoff ends: claimed %d", st.Claimed)
	}
	f.advance(20 * time.Second)
	if st := f.runOnce(d); st.Sent != 1 || st.Claimed != 1 {
		t.Errorf("after the 500's backoff: %+v, want its retry sent", st)
	}
	f.advance(2 * time.Minute)
	if st := f.runOnce(d); st.Sent != 1 {
		t.Errorf("after Retry-After: %+v, want the 429's retry sent", st)
	}
	for _, tok := range []string{"t500", "t503", "t429"} {
		if n := len(fcm.deliveredTo(tok)); n != 1 {
			t.Errorf("%s: delivered %d times, want once", tok, n)
		}
	}
	if requests, _ := fcm.counts(); requests != 6 {
		t.Errorf("fake saw %d requests, want 6 (3 failures, 3 successes)", requests)
	}
	for _, id := range ids {
		f.wantStatus(id, notifications.StatusSent)
	}
}

// TestFCMGivesUpAfterMaxAttempts marks a row dead after repeated failures.
func TestFCMGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t)
	fcm := newFakeFCM(t)
	f.register("rep1@demo.test", "always-500")
	fcm.answer("always-500", http.StatusInternalServerError, http.StatusInternalServerError, http.StatusInternalServerError)
	id := f.notify(f.note("rep1@demo.test", models.CategoryCoaching))[0]
	d := f.dispatcher(fcm.sender(t))
	d.MaxAttempts = 3
	for i := 0; i < 3; i++ {
		f.runOnce(d)
		f.advance(time.Hour)
	}
	got := f.wantStatus(id, notifications.StatusDead)
	if got.Attempts != 3 || got.LastError == "" {
		t.Errorf("delivery %+v, want 3 attempts and the last error", got)
	}
	if _, delivered := fcm.counts(); delivered != 0 {
		t.Errorf("delivered %d", delivered)
	}
}

// hangingSender is FCM hanging until the send timeout: each send takes the
// whole timeout on the clock, then fails in a way worth retrying.
type hangingSender struct {
	f     *fixture
	took  time.Duration
	sends int
}

func (h *hangingSender) Send(_ context.Context, msgs []notifications.Message) []notifications.Result {
	h.f.advance(h.took)
	h.sends += len(msgs)
	out := make([]notifications.Result, len(msgs))
	for i := range out {
		out[i] = notifications.Result{Err: errors.New("context deadline exceeded"), Retryable: true}
	}
	return out
}

// TestRetryCountsFromTheFailure: with FCM hanging for the 30 s send
// timeout, the retry waits its backoff after the failure, not from before
// the send (when a 15–30 s backoff would already be over), so a hanging
// FCM is not hammered.
func TestRetryCountsFromTheFailure(t *testing.T) {
	f := newFixture(t)
	f.register("rep1@demo.test", "tok")
	id := f.notify(f.note("rep1@demo.test", models.CategoryCoaching))[0]
	h := &hangingSender{f: f}
	d := f.dispatcher(h)
	h.took = d.SendTimeout

	if st := f.runOnce(d); st.Retried != 1 {
		t.Fatalf("first run %+v, want one to retry", st)
	}
	failed := f.now()
	got := f.wantStatus(id, notifications.StatusPending)
	// Attempt 1 with zero jitter: half of the 30 s base, after the failure.
	if want := failed.Add(15 * time.Second); got.Next == nil || !got.Next.Equal(want) {
		t.Errorf("next attempt %v, want %v (15 s after the failure at %v)", got.Next, want, failed)
	}
	if st := f.runOnce(d); st.Claimed != 0 || h.sends != 1 {
		t.Errorf("right after the failure: claimed %d, %d sends; want nothing due", st.Claimed, h.sends)
	}
	if d.Lease <= d.SendTimeout {
		t.Errorf("lease %v does not outlast the send timeout %v", d.Lease, d.SendTimeout)
	}
}

// TestResendReplacesOnThePhone: every push carries a key derived from its
// notification (so from its dedupe key): a resend after a lost answer
// replaces the first on the phone instead of showing twice.
func TestResendReplacesOnThePhone(t *testing.T) {
	f := newFixture(t)
	fcm := newFakeFCM(t)
	f.register("rep1@demo.test", "tok")
	id := f.notify(f.note("rep1@demo.test", models.CategoryCoaching))[0]
	if st := f.runOnce(f.dispatcher(fcm.sender(t))); st.Sent != 1 {
		t.Fatalf("stats %+v, want sent", st)
	}
	m := fcm.deliveredTo("tok")[0]
	if m.Android.Notification["tag"] != id.String() || m.APNS.Headers["apns-collapse-id"] != id.String() {
		t.Errorf("android tag %q, apns-collapse-id %q, want both %s", m.Android.Notification["tag"], m.APNS.Headers["apns-collapse-id"], id)
	}
}
