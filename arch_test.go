package fieldsync_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsPointInward keeps the layering of DESIGN.md: models imports
// nothing of ours; the sync engine knows no storage, HTTP or field-sales
// rules; the rules (sales) and the WatermelonDB protocol sit on the
// engine's public API and know no storage or HTTP; notifications know no
// engine; api knows no GORM; only telemetry imports Prometheus; and
// nothing but the command (and the HTTP test harness) imports api.
func TestImportsPointInward(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "github.com/fieldsync/fieldsync"
	// Prometheus is telemetry's alone: the rest report through hooks and
	// interfaces, so a metric is defined, named and bounded in one place.
	const prom = "github.com/prometheus/"
	rules := []struct {
		pkg    string
		banned []string
	}{
		{mod + "/models", []string{mod + "/", "gorm.io/", "github.com/labstack/echo", prom}},
		{mod + "/sync/engine", []string{mod + "/store", mod + "/api", mod + "/notifications", mod + "/sales", mod + "/sync/watermelondb", mod + "/telemetry", "gorm.io/", "github.com/labstack/echo", prom}},
		{mod + "/sync/watermelondb", []string{mod + "/store", mod + "/api", mod + "/notifications", mod + "/sales", mod + "/telemetry", "gorm.io/", "github.com/labstack/echo", prom}},
		{mod + "/sales", []string{mod + "/store", mod + "/api", mod + "/notifications", mod + "/sync/watermelondb", mod + "/telemetry", "gorm.io/", "github.com/labstack/echo", prom}},
		{mod + "/notifications", []string{mod + "/store", mod + "/api", mod + "/sync/", mod + "/sales", mod + "/telemetry", "gorm.io/", "github.com/labstack/echo", prom}},
		{mod + "/store", []string{mod + "/api", mod + "/telemetry", prom}},
		{mod + "/api", []string{mod + "/store", mod + "/telemetry", "gorm.io/", prom}},
		{mod + "/telemetry", []string{mod + "/store", mod + "/api", mod + "/sales", "gorm.io/", "github.com/labstack/echo"}},
	}
	mayImportAPI := map[string]bool{mod + "/cmd/fieldsync": true, mod + "/internal/apitest": true}
	checked, ruled := 0, map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, ":")
		for _, imp := range strings.Fields(imports) {
			if imp == mod+"/api" && !mayImportAPI[pkg] {
				t.Errorf("%s imports api; only cmd/fieldsync may", pkg)
			}
			for _, r := range rules {
				if pkg != r.pkg {
					continue
				}
				ruled[pkg] = true
				for _, b := range r.banned {
					if strings.HasPrefix(imp, b) && imp != pkg {
						t.Errorf("%s imports %s", pkg, imp)
					}
				}
			}
		}
		checked++
	}
	if checked < 8 {
		t.Fatalf("go list saw %d packages; the check is not looking at the module", checked)
	}
	for _, r := range rules {
		if !ruled[r.pkg] {
			t.Errorf("no package %s imports anything: the rule names a package that moved", r.pkg)
		}
	}
}
