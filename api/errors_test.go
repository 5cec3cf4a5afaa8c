package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/fieldsync/fieldsync"
	"github.com/fieldsync/fieldsync/models"
)

// modelCodes returns every error code models declares (the string constants
// named Code…), by parsing its source, so a code added there without a row
// in statusOf fails TestEveryCodeHasAStatus rather than answering 500.
func modelCodes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "models", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{} // code → constant name
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Errorf("models.%s is not a string literal; this test cannot read it", name.Name)
						continue
					}
					code, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					codes[code] = name.Name
				}
			}
		}
	}
	if len(codes) < 10 {
		t.Fatalf("found %d codes in models; the parse is not looking at models/errors.go", len(codes))
	}
	return codes
}

// TestEveryCodeHasAStatus: every code models declares has an HTTP status,
// and statusOf maps no code that models does not declare.
func TestEveryCodeHasAStatus(t *testing.T) {
	codes := modelCodes(t)
	for code, name := range codes {
		if _, ok := statusOf[code]; !ok {
			t.Errorf("models.%s (%q) has no status in statusOf: add one to api/errors.go", name, code)
		}
	}
	listed := map[string]bool{}
	for _, code := range models.Codes {
		listed[code] = true
		if _, ok := codes[code]; !ok {
			t.Errorf("models.Codes lists %q, which models does not declare", code)
		}
	}
	for code, name := range codes {
		if !listed[code] {
			t.Errorf("models.%s (%q) is missing from models.Codes", name, code)
		}
	}
	for code := range statusOf {
		if _, ok := codes[code]; !ok {
			t.Errorf("statusOf maps %q, which models does not declare", code)
		}
	}
}

// TestProblemOfNewCodes: the rejection codes a push can produce answer
// their status, not 500, when a handler returns one.
func TestProblemOfNewCodes(t *testing.T) {
	for _, tc := range []struct {
		code   string
		status int
	}{
		{"invalid_value", http.StatusUnprocessableEntity},
		{"unknown_field", http.StatusUnprocessableEntity},
		{"server_owned_field", http.StatusUnprocessableEntity},
		{"read_only_entity", http.StatusUnprocessableEntity},
		{"missing_required_field", http.StatusUnprocessableEntity},
		{"invalid_transition", http.StatusConflict},
		{"locked", http.StatusConflict},
		{"limit_reached", http.StatusUnprocessableEntity},
	} {
		p, _ := problemOf(models.Errorf(tc.code, "no"))
		if p.Status != tc.status || p.Code != tc.code {
			t.Errorf("%s: got %d %q, want %d %q", tc.code, p.Status, p.Code, tc.status, tc.code)
		}
	}
}

// specErrorRow is a row of the errors table in openapi.yaml's description:
// | 422 | `invalid` | meaning |, or several codes of one status:
// | 409 | `invalid_transition`, `locked` | meaning |.
var (
	specErrorRow  = regexp.MustCompile("(?m)^\\s*\\| (\\d{3}) \\| (`[a-z_]+`(?:, `[a-z_]+`)*) \\|")
	specErrorCode = regexp.MustCompile("`([a-z_]+)`")
)

// TestSpecErrorTable keeps openapi.yaml's table of error codes in step with
// statusOf: each row's status is the code's, and every code has a row.
func TestSpecErrorTable(t *testing.T) {
	rows := specErrorRow.FindAllStringSubmatch(string(fieldsync.OpenAPI), -1)
	if len(rows) < 10 {
		t.Fatalf("found %d rows of the errors table in openapi.yaml; has its format changed?", len(rows))
	}
	listed := map[string]bool{}
	for _, r := range rows {
		status, _ := strconv.Atoi(r[1])
		for _, m := range specErrorCode.FindAllStringSubmatch(r[2], -1) {
			code := m[1]
			listed[code] = true
			if want, ok := statusOf[code]; !ok {
				t.Errorf("openapi.yaml lists %q, which statusOf does not map", code)
			} else if status != want {
				t.Errorf("openapi.yaml: %q answers %d, statusOf says %d", code, status, want)
			}
		}
	}
	var missing []string
	for code := range statusOf {
		if !listed[code] {
			missing = append(missing, code)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("openapi.yaml's errors table lacks %v", missing)
	}
}
