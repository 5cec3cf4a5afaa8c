package notifications_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/notifications"
)

// serviceAccount writes a service-account key file (never used to reach
// Google: the tests only build senders from it).
func serviceAccount(t *testing.T, project string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: must(x509.MarshalPKCS8PrivateKey(key))})
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": project, "private_key_id": "k1", "private_key": string(pemKey),
		"client_email": "fieldsync@" + project + ".iam.gserviceaccount.com", "client_id": "1",
		"token_uri": "https://oauth2.googleapis.com/token",
	})
	path := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestNewSender(t *testing.T) {
	withProject := serviceAccount(t, "acme-field-sales")
	noProject := serviceAccount(t, "")
	notJSON := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(notJSON, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name     string
		settings notifications.Settings
		describe string // the startup log's attributes, space-joined
		err      string
	}{
		{"nothing configured: the log sender", notifications.Settings{},
			"sender log hint set FIELDSYNC_FIREBASE_CREDENTIALS_FILE to push through Firebase", ""},
		{"an endpoint alone: FCM with a static token", notifications.Settings{Endpoint: "http://localhost:9099/"},
			"sender fcm project fieldsync-local endpoint http://localhost:9099 auth static token", ""},
		{"an endpoint given with /v1", notifications.Settings{Endpoint: "http://localhost:9099/v1", ProjectID: "p"},
			"sender fcm project p endpoint http://localhost:9099 auth static token", ""},
		{"a service account: its project", notifications.Settings{CredentialsFile: withProject},
			"sender fcm project acme-field-sales endpoint https://fcm.googleapis.com auth service account", ""},
		{"a service account and a project", notifications.Settings{CredentialsFile: withProject, ProjectID: "other"},
			"sender fcm project other endpoint https://fcm.googleapis.com auth service account", ""},
		{"a key without a project", notifications.Settings{CredentialsFile: noProject}, "", "names no project_id"},
		{"not a key", notifications.Settings{CredentialsFile: notJSON}, "", "not a Google credentials JSON file"},
		{"no such file", notifications.Settings{CredentialsFile: filepath.Join(t.TempDir(), "missing.json")}, "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, describe, err := notifications.NewSender(context.Background(), tt.settings, log)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want it to say %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var parts []string
			for _, a := range describe {
				parts = append(parts, a.(string))
			}
			if got := strings.Join(parts, " "); got != tt.describe {
				t.Errorf("got %q, want %q", got, tt.describe)
			}
		})
	}
}
