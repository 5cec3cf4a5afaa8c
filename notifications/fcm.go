package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"golang.org/x/oauth2"
	"google.golang.org/api/option"
)

// FCMConfig configures the Firebase Cloud Messaging sender.
type FCMConfig struct {
	// CredentialsFile is a service-account JSON key. Without it, Endpoint
	// must be set and requests carry a static placeholder token (for a
	// local fake or an emulator).
	CredentialsFile string
	// ProjectID is the Firebase project; empty takes the key's project_id.
	ProjectID string
	// Endpoint is an FCM v1 base URL ("http://localhost:9099"), "/v1"
	// appended unless present; empty is Google's.
	Endpoint string
}

// staticToken is the bearer token sent to an FCM endpoint override when no
// credentials are configured. A fake or emulator accepts anything.
const staticToken = "fieldsync-local"

// FCMSender sends through the Firebase Admin SDK's messaging client.
type FCMSender struct {
	client    *messaging.Client
	ProjectID string
	Endpoint  string // empty for Google's
}

// NewFCMSender builds the sender. It always passes an auth option, so the
// SDK never goes looking for default credentials or the cloud metadata
// server.
func NewFCMSender(ctx context.Context, cfg FCMConfig) (*FCMSender, error) {
	project := cfg.ProjectID
	var opts []option.ClientOption
	switch {
	case cfg.CredentialsFile != "":
		b, err := os.ReadFile(cfg.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("firebase credentials: %w", err)
		}
		var key struct {
			Type      string `json:"type"`
			ProjectID string `json:"project_id"`
		}
		if err := json.Unmarshal(b, &key); err != nil || key.Type == "" {
			return nil, fmt.Errorf("firebase credentials %s: not a Google credentials JSON file", cfg.CredentialsFile)
		}
		if project == "" {
			project = key.ProjectID
		}
		opts = append(opts, option.WithCredentialsJSON(b))
	case cfg.Endpoint != "":
		opts = append(opts, option.WithTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: staticToken, TokenType: "Bearer"})))
	default:
		return nil, errors.New("firebase: set a credentials file or an FCM endpoint")
	}
	if project == "" {
		if cfg.CredentialsFile != "" {
			return nil, errors.New("firebase: the credentials file names no project_id; set FIELDSYNC_FIREBASE_PROJECT_ID")
		}
		project = "fieldsync-local"
	}
	endpoint := strings.TrimRight(cfg.Endpoint, "/")
	if endpoint != "" {
		endpoint = strings.TrimSuffix(endpoint, "/v1")
		opts = append(opts, option.WithEndpoint(endpoint+"/v1"))
	}
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: project}, opts...)
	if err != nil {
		return nil, fmt.Errorf("firebase app: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("firebase messaging: %w", err)
	}
	return &FCMSender{client: client, ProjectID: project, Endpoint: endpoint}, nil
}

// fcmBatch is the most messages one SendEach call takes.
const fcmBatch = 500

// Send sends msgs with SendEach, up to 500 at a time.
func (s *FCMSender) Send(ctx context.Context, msgs []Message) []Result {
	out := make([]Result, len(msgs))
	for start := 0; start < len(msgs); start += fcmBatch {
		part := msgs[start:min(start+fcmBatch, len(msgs))]
		batch := make([]*messaging.Message, len(part))
		for i, m := range part {
			batch[i] = fcmMessage(m)
		}
		res, err := s.client.SendEach(ctx, batch)
		if err != nil || res == nil || len(res.Responses) != len(part) {
			if err == nil {
				err = errors.New("fcm: SendEach answered a different number of responses")
			}
			for i := range part {
				out[start+i] = Result{Err: fmt.Errorf("fcm send: %w", err), Retryable: true}
			}
			continue
		}
		for i, r := range res.Responses {
			out[start+i] = fcmResult(r)
		}
	}
	return out
}

// fcmMessage is m as FCM v1 wants it: a notification (title and body) the
// OS shows, the deep-link data, and collapse keys for Android (collapse
// key and notification tag, which replaces a shown notification) and iOS
// (apns-collapse-id).
func fcmMessage(m Message) *messaging.Message {
	data := make(map[string]string, len(m.Data)+1)
	for k, v := range m.Data {
		data[k] = v
	}
	data["notification_id"] = m.NotificationID.String()
	msg := &messaging.Message{
		Token:        m.Token,
		Notification: &messaging.Notification{Title: m.Title, Body: m.Body},
		Data:         data,
		Android:      &messaging.AndroidConfig{Priority: "high"},
	}
	// A push with no collapse key of its own is keyed by its notification,
	// whose id comes from its dedupe key: a resend (a lost answer, a lease
	// that lapsed mid-send) replaces the first on the phone instead of
	// showing twice. Android gets that key only as the notification tag: FCM
	// keeps at most four collapse keys per offline device, and one key per
	// notification would make it drop some.
	key := m.NotificationID.String()
	if m.CollapseKey != "" {
		key = m.CollapseKey
		msg.Android.CollapseKey = m.CollapseKey
	}
	msg.Android.Notification = &messaging.AndroidNotification{Tag: key}
	msg.APNS = &messaging.APNSConfig{Headers: map[string]string{"apns-collapse-id": key}}
	return msg
}

// fcmResult classifies one SendEach response. UNREGISTERED, an invalid
// argument (FCM's answer to a malformed token; our payloads pass the
// SDK's validation first) and a sender-id mismatch (a token of another
// project) mean the token is dead. Anything else — 429 quota, 500, 503
// after the SDK's own retries, network errors, auth trouble on our side —
// is retried with backoff, honouring Retry-After.
func fcmResult(r *messaging.SendResponse) Result {
	if r.Success {
		return Result{ID: r.MessageID}
	}
	err := r.Error
	if err == nil {
		return Result{Err: errors.New("fcm: failure without an error"), Retryable: true}
	}
	res := Result{Err: err}
	switch {
	case messaging.IsUnregistered(err), messaging.IsInvalidArgument(err), errorutils.IsInvalidArgument(err), messaging.IsSenderIDMismatch(err):
		res.TokenInvalid = true
	default:
		res.Retryable = true
		if hr := errorutils.HTTPResponse(err); hr != nil {
			res.RetryAfter = retryAfter(hr.Header.Get("Retry-After"), time.Now())
		}
	}
	return res
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Settings choose the sender, from the server's configuration.
type Settings struct {
	// CredentialsFile is FIELDSYNC_FIREBASE_CREDENTIALS_FILE, else
	// GOOGLE_APPLICATION_CREDENTIALS.
	CredentialsFile string
	ProjectID       string
	Endpoint        string
}

// NewSender returns the FCM sender when credentials or an endpoint are
// configured, and the log sender otherwise; describe says which, for the
// startup log.
func NewSender(ctx context.Context, s Settings, log *slog.Logger) (Sender, []any, error) {
	if s.CredentialsFile == "" && s.Endpoint == "" {
		return LogSender{Log: log}, []any{"sender", "log", "hint", "set FIELDSYNC_FIREBASE_CREDENTIALS_FILE to push through Firebase"}, nil
	}
	f, err := NewFCMSender(ctx, FCMConfig(s))
	if err != nil {
		return nil, nil, err
	}
	endpoint := f.Endpoint
	if endpoint == "" {
		endpoint = "https://fcm.googleapis.com"
	}
	auth := "service account"
	if s.CredentialsFile == "" {
		auth = "static token"
	}
	return f, []any{"sender", "fcm", "project", f.ProjectID, "endpoint", endpoint, "auth", auth}, nil
}
