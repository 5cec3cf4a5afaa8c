package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// quickstart returns the shell blocks of README's sync quickstart, in
// order, as one script.
func quickstart(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	start := strings.Index(readme, "\n## Sync quickstart\n")
	if start < 0 {
		t.Fatal("README has no \"## Sync quickstart\" section")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var script strings.Builder
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		script.WriteString(m[1])
	}
	if script.Len() == 0 {
		t.Fatal("the sync quickstart has no sh blocks")
	}
	return script.String()
}

// TestREADMESyncQuickstart runs README's sync quickstart, as written,
// against serve --demo: a new user following it gets the conflict it
// promises, so the walk-through cannot rot.
func TestREADMESyncQuickstart(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the quickstart needs %s: %v", tool, err)
		}
	}
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "qs.db")
	s := startServe(t, env{"FIELDSYNC_DATABASE_URL": dbURL, "FIELDSYNC_JWT_SECRET": testSecret}, "--demo")
	script := strings.ReplaceAll(quickstart(t), "localhost:8080", strings.TrimPrefix(s.base, "http://"))

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("quickstart failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}

	// Its outputs, in order: two applied visits, the pull, the tablet's
	// push, the phone's merged push, and the conflict list.
	dec := json.NewDecoder(&stdout)
	var outs []map[string]any
	for dec.More() {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("quickstart printed something that is not JSON: %v", err)
		}
		outs = append(outs, v)
	}
	if len(outs) != 5 {
		t.Fatalf("quickstart printed %d JSON documents, want 5: %v", len(outs), outs)
	}
	statuses := func(v map[string]any) []string {
		var out []string
		for _, r := range v["results"].([]any) {
			out = append(out, r.(map[string]any)["status"].(string))
		}
		return out
	}
	if got := strings.Join(statuses(outs[0]), ","); got != "applied,applied" {
		t.Errorf("the first push: %s, want both visits applied", got)
	}
	if got := strings.Join(statuses(outs[3]), ","); got != "merged" {
		t.Errorf("the phone's later edit: %s, want merged", got)
	}
	conflicts, _ := outs[4]["conflicts"].([]any)
	if len(conflicts) != 1 {
		t.Fatalf("conflicts %v, want the one on notes", outs[4])
	}
	c := conflicts[0].(map[string]any)
	if c["field"] != "notes" || c["kept"] != "client" || c["server_value"] != "Left a sample" || c["client_value"] != "Buyer back Tuesday 10:00" {
		t.Errorf("conflict %v, want notes: the phone's later value kept over the tablet's", c)
	}
}
