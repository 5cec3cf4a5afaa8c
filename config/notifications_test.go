package config_test

import (
	"io"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync/config"
)

func TestLoadFirebase(t *testing.T) {
	tests := []struct {
		name      string
		vars      map[string]string
		args      []string
		creds     string
		project   string
		endpoint  string
		errSubstr string
	}{
		{name: "none: the log sender"},
		{name: "fieldsync's variables", vars: map[string]string{"FIELDSYNC_FIREBASE_CREDENTIALS_FILE": "/run/secrets/sa.json", "FIELDSYNC_FIREBASE_PROJECT_ID": "acme"},
			creds: "/run/secrets/sa.json", project: "acme"},
		{name: "GOOGLE_APPLICATION_CREDENTIALS as a fallback", vars: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/gcp/key.json"},
			creds: "/gcp/key.json"},
		{name: "fieldsync's variable wins", vars: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/gcp/key.json", "FIELDSYNC_FIREBASE_CREDENTIALS_FILE": "/mine.json"},
			creds: "/mine.json"},
		{name: "the flag wins", vars: map[string]string{"FIELDSYNC_FIREBASE_CREDENTIALS_FILE": "/mine.json"}, args: []string{"--firebase-credentials-file", "/flag.json"},
			creds: "/flag.json"},
		{name: "an endpoint", vars: map[string]string{"FIELDSYNC_FCM_ENDPOINT": "http://localhost:9099"}, endpoint: "http://localhost:9099"},
		{name: "an endpoint that is not a URL", vars: map[string]string{"FIELDSYNC_FCM_ENDPOINT": "localhost:9099"}, errSubstr: "fcm-endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"FIELDSYNC_JWT_SECRET": "0123456789abcdef0123456789abcdef"}
			for k, v := range tt.vars {
				vars[k] = v
			}
			c, err := config.Load(tt.args, func(k string) string { return vars[k] }, io.Discard)
			if tt.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSubstr) {
					t.Fatalf("err = %v, want it to name %s", err, tt.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.FirebaseCredentialsFile != tt.creds || c.FirebaseProjectID != tt.project || c.FCMEndpoint != tt.endpoint {
				t.Errorf("got %q %q %q, want %q %q %q", c.FirebaseCredentialsFile, c.FirebaseProjectID, c.FCMEndpoint, tt.creds, tt.project, tt.endpoint)
			}
		})
	}
}
